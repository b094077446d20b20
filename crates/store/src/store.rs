//! [`Store`]: visits in SQLite, durable per edit.

use automerge::ChangeHash;
use kiemtra_core::{Editor, Heads, NewVisit, Session, Tally, Template, Visit, VisitId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::schema;

/// Incremental chunks a visit may collect before it is compacted into one
/// snapshot (when next opened from disk, or by [`Store::compact_all`]).
pub const COMPACT_AFTER: u32 = 64;
/// Visits kept open in memory by default.
const CACHE: usize = 32;
/// The setting where the sync client keeps its feed cursor. The store
/// clears it when it removes a received visit that failed to load, so that
/// the next sync is answered with every visit of the team the device does
/// not hold, that one included.
pub const CURSOR_SETTING: &str = "sync.cursor";

/// What [`Store::verify_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Visits loaded, checked and summarised from their documents.
    pub verified: usize,
    /// Visits whose received document was damaged, with the reason: removed,
    /// to be downloaded again.
    pub removed: Vec<(VisitId, String)>,
}

/// What a listing shows of a visit, read from the index without loading the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitSummary {
    pub id: VisitId,
    pub unit_code: String,
    pub unit_name: String,
    pub unit_kind: String,
    pub campaign: String,
    pub team: String,
    pub scheduled_on: String,
    pub status: String,
    pub conflicts: u32,
    pub tally: Tally,
    /// The document's heads.
    pub heads: Heads,
    pub updated_at: String,
}

struct OpenVisit {
    visit: Visit,
    saved_heads: Vec<ChangeHash>,
    chunks: u32,
}

/// A local store of visits: the phone's, or the server's.
///
/// One connection, the only writer. Every mutating call commits one SQLite
/// transaction before it returns.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    session: Session,
    open: HashMap<VisitId, OpenVisit>,
    cache: usize,
    /// The server's mode: the feed generation this store writes its feed
    /// rows under (a random nonce, new each time the store is opened).
    feed: Option<u64>,
}

/// Remembers changes this device made, until they are signed.
fn record_own(
    tx: &rusqlite::Savepoint<'_>,
    id: &VisitId,
    made: &[(ChangeHash, Vec<u8>, u64)],
) -> Result<()> {
    if made.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO own_changes (visit_id, hash, actor, seq) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (hash, actor, seq) in made {
        stmt.execute(params![id.as_str(), hash.0.as_slice(), actor, *seq as i64])?;
    }
    Ok(())
}

fn parse_heads(json: &str) -> Result<Heads> {
    Heads::from_json(json).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Store {
    /// Opens (creating if needed) the store at `path` for `editor`, with a
    /// fresh actor id for this session.
    pub fn open(path: impl AsRef<Path>, editor: Editor) -> Result<Self> {
        Self::open_with_session(path, Session::new(editor))
    }

    /// Opens the store with a given session (clock, actor).
    pub fn open_with_session(path: impl AsRef<Path>, session: Session) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        // The store holds the device's token and private key (phones,
        // desks) or every visit and device (the server): its folder and
        // files are the owner's alone, made so before SQLite opens them.
        schema::prepare_private(&path)?;
        let mut conn = Connection::open(&path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn, &path.display().to_string())?;
        Ok(Self {
            conn,
            path,
            session,
            open: HashMap::new(),
            cache: CACHE,
            feed: None,
        })
    }

    /// Keeps at most `visits` documents open in memory (at least 1).
    pub fn with_cache(mut self, visits: usize) -> Self {
        self.cache = visits.max(1);
        self
    }

    /// Records every stored update of a visit in the feed that devices
    /// follow with a cursor (the server's mode). The feed keeps each
    /// visit's latest update only; the rows written from here on belong to
    /// a new generation, whose nonce the cursors handed out carry.
    pub fn with_feed(mut self) -> Self {
        self.feed = Some(feed_generation());
        self
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn session(&self) -> &Session {
        &self.session
    }
    /// The database schema version (see the numbered migrations).
    pub fn schema_version(&self) -> Result<usize> {
        schema::user_version(&self.conn)
    }

    /// Creates a visit and stores it.
    pub fn create_visit(&mut self, new: NewVisit, template: &Template) -> Result<VisitSummary> {
        if self.exists(&new.visit_id)? {
            return Err(Error::VisitExists(new.visit_id));
        }
        let visit = Visit::create(new, template, &self.session)?;
        self.insert_new(visit)
    }

    /// Stores a whole visit document received from elsewhere (a sync peer, a file).
    pub fn import_visit(&mut self, bytes: &[u8]) -> Result<VisitSummary> {
        let visit = Visit::load(bytes, &self.session)?;
        self.insert_loaded(visit, bytes)
    }

    /// Stores a visit already loaded from `bytes` (a whole saved document),
    /// keeping those bytes as its snapshot rather than saving it again.
    /// If the visit is already stored, the bytes are merged into it.
    pub fn insert_loaded(&mut self, visit: Visit, bytes: &[u8]) -> Result<VisitSummary> {
        let id = visit.id()?;
        if self.exists(&id)? {
            return self.apply_remote(&id, bytes);
        }
        self.insert_with_snapshot(visit, bytes.to_vec())
    }

    /// Like [`Store::insert_loaded`] with the visit's summary worked out
    /// beforehand (by [`VisitSummary::of`], e.g. on another thread).
    pub fn insert_summarised(
        &mut self,
        visit: Visit,
        bytes: &[u8],
        summary: VisitSummary,
    ) -> Result<VisitSummary> {
        let id = visit.id()?;
        if self.exists(&id)? || summary.id != id || summary.heads != Heads::new(visit.heads()) {
            return self.insert_loaded(visit, bytes);
        }
        self.insert_with(visit, bytes.to_vec(), Some(summary))
    }

    /// Stores a visit received whole from the server **without loading
    /// it**: `summary` is the server's listing of it, heads included, and is
    /// what listings show until the visit is first opened. Opening it (any
    /// read, edit, merge or compaction, or [`Store::verify_pending`]) loads
    /// the document, checks that it is whole and of this visit, and
    /// replaces the summary with one worked out here; a document that fails
    /// is removed and downloaded again ([`Error::Refetch`]). So a phone
    /// loads only the visits it opens. Servers never store a document they
    /// have not loaded: a store with a feed refuses this.
    pub fn insert_unverified(&mut self, summary: &VisitSummary, bytes: &[u8]) -> Result<()> {
        if self.feed.is_some() {
            return Err(Error::Refused(
                "a server stores only documents it has loaded and checked".into(),
            ));
        }
        if bytes.is_empty() {
            return Err(Error::Visit(kiemtra_core::Error::NotAVisit(
                "an empty document".into(),
            )));
        }
        if self.exists(&summary.id)? {
            return Err(Error::VisitExists(summary.id.clone()));
        }
        let tx = self.conn.savepoint()?;
        write_summary(&tx, summary, true)?;
        tx.execute(
            "UPDATE visits SET verified = 0 WHERE id = ?1",
            [summary.id.as_str()],
        )?;
        tx.execute(
            "INSERT INTO visit_chunks (visit_id, kind, data) VALUES (?1, 'snapshot', ?2)",
            params![summary.id.as_str(), bytes],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Whether the visit is stored as received, not yet loaded here.
    pub fn is_unverified(&self, id: &VisitId) -> Result<bool> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT verified FROM visits WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match v {
            Some(v) => Ok(v == 0),
            None => Err(Error::UnknownVisit(id.clone())),
        }
    }

    /// Loads and checks every visit stored as received and not opened yet
    /// (for idle moments, like [`Store::compact_all`]).
    pub fn verify_pending(&mut self) -> Result<Verified> {
        let pending: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM visits WHERE verified = 0 ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        // One transaction (one disk sync) for all of them.
        self.batch(|store| {
            let mut out = Verified::default();
            for id in pending {
                let id = VisitId::parse(&id)?;
                match store.opened(&id) {
                    Ok(_) => out.verified += 1,
                    Err(Error::Refetch { id, reason }) => out.removed.push((id, reason)),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }

    /// Checks a visit stored as received against its loaded document and
    /// makes its summary the one worked out here; keeps only the received
    /// signatures whose ranges name changes the document holds.
    fn verify_received(&mut self, id: &VisitId, visit: &Visit) -> Result<()> {
        let of_visit = visit.id().map_err(|e| e.to_string());
        match of_visit {
            Ok(found) if found == *id => {}
            Ok(found) => return Err(self.drop_received(id, format!("it is visit {found}"))),
            Err(e) => return Err(self.drop_received(id, e)),
        }
        if !visit.missing_deps().is_empty() {
            return Err(self.drop_received(id, "changes are missing".into()));
        }
        let summary = match summarise(visit) {
            Ok(s) => s,
            Err(e) => return Err(self.drop_received(id, e.to_string())),
        };
        let index = visit.change_index().0;
        let unresolved = self.change_receipts(id, &index)?.unresolved;
        let tx = self.conn.savepoint()?;
        write_summary(&tx, &summary, false)?;
        tx.execute(
            "UPDATE visits SET verified = 1 WHERE id = ?1",
            [id.as_str()],
        )?;
        for s in &unresolved {
            tx.execute(
                "DELETE FROM signatures WHERE visit_id = ?1 AND signature = ?2",
                params![id.as_str(), s.signature],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes a received visit that failed its check and resets the
    /// cursor, so the next sync downloads it again; returns the error to
    /// report.
    fn drop_received(&mut self, id: &VisitId, reason: String) -> Error {
        tracing::warn!(visit = %id, %reason, "a received document is damaged; removed, to be downloaded again");
        self.open.remove(id);
        let removed = self
            .conn
            .execute("DELETE FROM visits WHERE id = ?1", [id.as_str()])
            .and_then(|_| {
                self.conn
                    .execute("DELETE FROM settings WHERE key = ?1", [CURSOR_SETTING])
            });
        match removed {
            Ok(_) => Error::Refetch {
                id: id.clone(),
                reason,
            },
            Err(e) => e.into(),
        }
    }

    fn insert_new(&mut self, visit: Visit) -> Result<VisitSummary> {
        let snapshot = visit.save();
        self.insert_with_snapshot(visit, snapshot)
    }

    fn insert_with_snapshot(&mut self, visit: Visit, snapshot: Vec<u8>) -> Result<VisitSummary> {
        self.insert_with(visit, snapshot, None)
    }

    fn insert_with(
        &mut self,
        mut visit: Visit,
        snapshot: Vec<u8>,
        summary: Option<VisitSummary>,
    ) -> Result<VisitSummary> {
        let id = visit.id()?;
        let summary = match summary {
            Some(s) => s,
            None => summarise(&visit)?,
        };
        let made = visit.take_made_here();
        let tx = self.conn.savepoint()?;
        write_summary(&tx, &summary, true)?;
        record_own(&tx, &id, &made)?;
        if let Some(generation) = self.feed {
            append_feed(&tx, &summary, generation)?;
        }
        tx.execute(
            "INSERT INTO visit_chunks (visit_id, kind, data) VALUES (?1, 'snapshot', ?2)",
            params![id.as_str(), snapshot],
        )?;
        tx.commit()?;
        self.remember(
            id,
            OpenVisit {
                saved_heads: visit.heads(),
                visit,
                chunks: 1,
            },
        );
        Ok(summary)
    }

    fn exists(&self, id: &VisitId) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM visits WHERE id = ?1", [id.as_str()], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    fn remember(&mut self, id: VisitId, open: OpenVisit) {
        if self.open.len() >= self.cache
            && !self.open.contains_key(&id)
            && let Some(k) = self.open.keys().next().cloned()
        {
            self.open.remove(&k);
        }
        self.open.insert(id, open);
    }

    fn load(&mut self, id: &VisitId) -> Result<OpenVisit> {
        let count = self.chunk_count(id)?;
        let received = self.is_unverified(id)?;
        let visit = match Visit::load(&self.stored_bytes(id)?, &self.session) {
            Ok(v) => v,
            Err(e) if received => return Err(self.drop_received(id, e.to_string())),
            Err(e) => return Err(e.into()),
        };
        if received {
            self.verify_received(id, &visit)?;
        }
        Ok(OpenVisit {
            saved_heads: visit.heads(),
            visit,
            chunks: count,
        })
    }

    fn opened(&mut self, id: &VisitId) -> Result<&mut OpenVisit> {
        // Another process sharing the database may have appended changes:
        // a cached copy whose heads differ from the index is reloaded.
        if let Some(open) = self.open.get(id) {
            let stored: Option<String> = self
                .conn
                .query_row(
                    "SELECT heads FROM visits WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let fresh = stored.is_some_and(|h| {
                parse_heads(&h).is_ok_and(|h| h == Heads::new(open.saved_heads.iter().copied()))
            });
            if !fresh {
                self.open.remove(id);
            }
        }
        if !self.open.contains_key(id) {
            let open = self.load(id)?;
            let due = open.chunks > COMPACT_AFTER;
            self.remember(id.clone(), open);
            if due {
                self.compact(id)?;
            }
        }
        self.open
            .get_mut(id)
            .ok_or_else(|| Error::UnknownVisit(id.clone()))
    }

    /// The visit, for reading.
    pub fn visit(&mut self, id: &VisitId) -> Result<&Visit> {
        Ok(&self.opened(id)?.visit)
    }

    /// Runs `f` on the visit and makes what it changed durable before
    /// returning. If `f` fails nothing is written; if writing fails the
    /// in-memory copy is dropped so that memory never runs ahead of disk.
    pub fn edit<T>(
        &mut self,
        id: &VisitId,
        f: impl FnOnce(&mut Visit) -> kiemtra_core::Result<T>,
    ) -> Result<T> {
        let open = self.opened(id)?;
        let out = f(&mut open.visit)?;
        if let Err(e) = self.persist(id) {
            self.open.remove(id);
            return Err(e);
        }
        Ok(out)
    }

    /// Merges bytes from another replica (a whole document or changes).
    pub fn apply_remote(&mut self, id: &VisitId, bytes: &[u8]) -> Result<VisitSummary> {
        let open = self.opened(id)?;
        open.visit.load_incremental(bytes)?;
        if open.visit.id()? != *id {
            self.open.remove(id);
            return Err(Error::Visit(kiemtra_core::Error::NotAVisit(format!(
                "bytes for another visit were applied to {id}"
            ))));
        }
        if let Err(e) = self.persist(id) {
            self.open.remove(id);
            return Err(e);
        }
        self.summary(id)
    }

    /// Appends what is new since the last save as one chunk and refreshes
    /// the summary row, in one transaction. Compaction is kept off this
    /// path (it saves the whole document): it runs when a visit with more
    /// than [`COMPACT_AFTER`] chunks is next opened from disk, or on request.
    fn persist(&mut self, id: &VisitId) -> Result<()> {
        let open = self
            .open
            .get_mut(id)
            .ok_or_else(|| Error::UnknownVisit(id.clone()))?;
        let bytes = open.visit.save_after(&open.saved_heads);
        if bytes.is_empty() {
            return Ok(());
        }
        let summary = summarise(&open.visit)?;
        let made = open.visit.take_made_here();
        let tx = self.conn.savepoint()?;
        tx.execute(
            "INSERT INTO visit_chunks (visit_id, kind, data) VALUES (?1, 'changes', ?2)",
            params![id.as_str(), bytes],
        )?;
        record_own(&tx, id, &made)?;
        write_summary(&tx, &summary, false)?;
        if let Some(generation) = self.feed {
            append_feed(&tx, &summary, generation)?;
        }
        tx.commit()?;
        open.saved_heads = open.visit.heads();
        open.chunks += 1;
        Ok(())
    }

    /// Replaces a visit's chunks with one snapshot holding the whole history.
    pub fn compact(&mut self, id: &VisitId) -> Result<()> {
        let open = self.opened(id)?;
        let snapshot = open.visit.save();
        let heads = open.visit.heads();
        let tx = self.conn.savepoint()?;
        tx.execute(
            "DELETE FROM visit_chunks WHERE visit_id = ?1",
            [id.as_str()],
        )?;
        tx.execute(
            "INSERT INTO visit_chunks (visit_id, kind, data) VALUES (?1, 'snapshot', ?2)",
            params![id.as_str(), snapshot],
        )?;
        // Own changes a kept signature covers need not be remembered.
        tx.execute(
            "DELETE FROM own_changes WHERE visit_id = ?1
             AND id <= coalesce((SELECT mark FROM own_signed WHERE visit_id = ?1), 0)",
            [id.as_str()],
        )?;
        tx.commit()?;
        if let Some(open) = self.open.get_mut(id) {
            open.saved_heads = heads;
            open.chunks = 1;
        }
        Ok(())
    }

    /// Compacts every visit with more than [`COMPACT_AFTER`] chunks; for
    /// idle moments (the app in the background, the server at night).
    /// Returns how many visits were compacted.
    pub fn compact_all(&mut self) -> Result<usize> {
        let due: Vec<String> = {
            let mut stmt = self.conn.prepare(
                "SELECT visit_id FROM visit_chunks GROUP BY visit_id HAVING count(*) > ?1",
            )?;
            stmt.query_map([COMPACT_AFTER], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in &due {
            self.compact(&VisitId::parse(id)?)?;
        }
        Ok(due.len())
    }

    /// The visit as stored: its chunks, concatenated (a snapshot and any
    /// incremental changes after it), loadable as a whole document. Cheaper
    /// than loading and saving the visit.
    pub fn stored_bytes(&self, id: &VisitId) -> Result<Vec<u8>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM visit_chunks WHERE visit_id = ?1 ORDER BY seq")?;
        let chunks: Vec<Vec<u8>> = stmt
            .query_map([id.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if chunks.is_empty() {
            return Err(Error::UnknownVisit(id.clone()));
        }
        Ok(chunks.concat())
    }

    /// Number of stored chunks of a visit (1 after compaction).
    pub fn chunk_count(&self, id: &VisitId) -> Result<u32> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM visit_chunks WHERE visit_id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )?)
    }

    /// Every visit's summary, newest schedule first, from the index alone.
    pub fn list_visits(&self) -> Result<Vec<VisitSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, unit_code, unit_name, unit_kind, campaign, team, scheduled_on, status,
                    conflicts, tally, heads, updated_at
             FROM visits ORDER BY scheduled_on DESC, unit_name",
        )?;
        let rows = stmt.query_map([], read_summary)?;
        rows.map(|r| r.map_err(Error::from).and_then(|x| x))
            .collect()
    }

    pub fn summary(&self, id: &VisitId) -> Result<VisitSummary> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, unit_code, unit_name, unit_kind, campaign, team, scheduled_on, status,
                    conflicts, tally, heads, updated_at
             FROM visits WHERE id = ?1",
        )?;
        stmt.query_row([id.as_str()], read_summary)
            .optional()?
            .ok_or_else(|| Error::UnknownVisit(id.clone()))?
    }

    /// Runs `f` as one SQLite transaction: everything it stores becomes
    /// durable together, with one disk sync, when it returns `Ok`; nothing
    /// of it is stored if it fails (and open visits are reloaded from disk).
    /// Used for a whole sync request or response.
    pub fn batch<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        self.begin()?;
        // A panic inside `f` must not leave the transaction open: every
        // later request on this connection would fail. It is rolled back
        // and reported as this request's error.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)))
            .unwrap_or_else(|_| {
                Err(Error::Corrupt(
                    "the request panicked; nothing of it was stored".into(),
                ))
            });
        match outcome {
            Ok(v) => self.commit().map(|()| v),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Begins a write transaction (what [`Store::batch`] does first).
    pub fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Commits the transaction [`Store::begin`] opened; rolled back when
    /// the commit fails.
    pub fn commit(&mut self) -> Result<()> {
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                self.rollback();
                Err(e.into())
            }
        }
    }

    /// Rolls the open transaction back; open visits are reloaded from disk.
    pub fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
        self.open.clear();
    }

    /// Writes a consistent copy of the whole database to `to` (which must
    /// not exist) while other connections go on reading and writing: one
    /// read transaction (`VACUUM INTO`).
    pub fn backup_to(&self, to: &Path) -> Result<()> {
        if to.exists() {
            return Err(Error::Refused(format!(
                "{} exists already; a backup never overwrites a file",
                to.display()
            )));
        }
        let target = to
            .to_str()
            .ok_or_else(|| Error::Refused(format!("{} is not a UTF-8 path", to.display())))?;
        self.conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// SQLite's own check of the file's structure (`PRAGMA quick_check`);
    /// a damaged file is refused with what SQLite found.
    pub fn check_integrity(&self) -> Result<()> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let found: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if found.len() == 1 && found[0] == "ok" {
            return Ok(());
        }
        Err(Error::Corrupt(format!(
            "{} is damaged ({}); restore it from a backup",
            self.path.display(),
            found.into_iter().take(3).collect::<Vec<_>>().join("; ")
        )))
    }

    /// Whether a transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Whether the database takes a write now: a write transaction is
    /// begun and rolled back. Fails while another transaction is open on
    /// this connection or the file cannot be written.
    pub fn check_writable(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK")?;
        Ok(())
    }

    /// Deletes a visit and everything stored about it.
    pub fn delete_visit(&mut self, id: &VisitId) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM visits WHERE id = ?1", [id.as_str()])?;
        self.open.remove(id);
        if n == 0 {
            return Err(Error::UnknownVisit(id.clone()));
        }
        Ok(())
    }

    /// The heads `peer` last confirmed holding of this visit.
    pub fn confirmed_heads(&self, id: &VisitId, peer: &str) -> Result<Option<Heads>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT confirmed_heads FROM sync_state WHERE visit_id = ?1 AND peer = ?2",
                params![id.as_str(), peer],
                |r| r.get(0),
            )
            .optional()?;
        json.map(|j| parse_heads(&j)).transpose()
    }

    /// Records that `peer` confirmed holding `heads` of this visit.
    pub fn set_confirmed_heads(
        &mut self,
        id: &VisitId,
        peer: &str,
        heads: &[ChangeHash],
    ) -> Result<()> {
        if !self.exists(id)? {
            return Err(Error::UnknownVisit(id.clone()));
        }
        self.conn.execute(
            "INSERT INTO sync_state (visit_id, peer, confirmed_heads, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (visit_id, peer) DO UPDATE SET confirmed_heads = excluded.confirmed_heads,
                                                        updated_at = excluded.updated_at",
            params![
                id.as_str(),
                peer,
                Heads::from(heads).to_json(),
                self.session.now().to_rfc3339()
            ],
        )?;
        Ok(())
    }

    /// Forgets what `peer` confirmed (forces a full exchange next time).
    pub fn clear_confirmed_heads(&mut self, peer: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM sync_state WHERE peer = ?1", [peer])?;
        Ok(())
    }
}

impl VisitSummary {
    /// What a listing shows of `visit`, worked out from its state.
    pub fn of(visit: &Visit) -> Result<Self> {
        summarise(visit)
    }
}

fn summarise(visit: &Visit) -> Result<VisitSummary> {
    let state = visit.state()?;
    let meta = &state.meta;
    Ok(VisitSummary {
        id: meta.visit_id.clone(),
        unit_code: meta.unit.code.to_string(),
        unit_name: meta.unit.name.clone(),
        unit_kind: meta.unit.kind.key().into(),
        campaign: meta.campaign.to_string(),
        team: meta.team.to_string(),
        scheduled_on: meta.scheduled_on.to_string(),
        status: state.status().key().into(),
        conflicts: state.conflicts().len() as u32,
        tally: state.tally(),
        heads: Heads::new(visit.heads()),
        updated_at: visit.session().now().to_rfc3339(),
    })
}

/// A random 63-bit nonce for a feed generation (positive as an SQLite integer).
fn feed_generation() -> u64 {
    uuid::Uuid::new_v4().as_u128() as u64 >> 1
}

/// Replaces the visit's feed row with one for this update (the feed keeps
/// one row per visit) and extends this generation's range to it.
fn append_feed(tx: &rusqlite::Savepoint<'_>, s: &VisitSummary, generation: u64) -> Result<()> {
    let nonce = generation as i64;
    // AUTOINCREMENT: the new row's seq is past every row ever written,
    // including the one dropped here.
    tx.prepare_cached("DELETE FROM feed WHERE visit_id = ?1")?
        .execute([s.id.as_str()])?;
    tx.prepare_cached("INSERT INTO feed (visit_id, team, nonce) VALUES (?1, ?2, ?3)")?
        .execute(params![s.id.as_str(), s.team, nonce])?;
    let seq = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO feed_generations (nonce, first_seq, last_seq) VALUES (?1, ?2, ?2)
         ON CONFLICT (nonce) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
    )?
    .execute(params![nonce, seq])?;
    Ok(())
}

fn write_summary(tx: &rusqlite::Savepoint<'_>, s: &VisitSummary, insert: bool) -> Result<()> {
    let tally = serde_json::to_string(&s.tally).map_err(|e| Error::Corrupt(e.to_string()))?;
    let heads = s.heads.to_json();
    let sql = if insert {
        "INSERT INTO visits (id, unit_code, unit_name, unit_kind, campaign, team, scheduled_on, status,
                             conflicts, tally, heads, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    } else {
        "UPDATE visits SET unit_code = ?2, unit_name = ?3, unit_kind = ?4, campaign = ?5, team = ?6,
                scheduled_on = ?7, status = ?8, conflicts = ?9, tally = ?10, heads = ?11, updated_at = ?12
         WHERE id = ?1"
    };
    tx.execute(
        sql,
        params![
            s.id.as_str(),
            s.unit_code,
            s.unit_name,
            s.unit_kind,
            s.campaign,
            s.team,
            s.scheduled_on,
            s.status,
            s.conflicts,
            tally,
            heads,
            s.updated_at
        ],
    )?;
    Ok(())
}

fn read_summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<VisitSummary>> {
    let id: String = r.get(0)?;
    let tally: String = r.get(9)?;
    let heads: String = r.get(10)?;
    let build = || -> Result<VisitSummary> {
        Ok(VisitSummary {
            id: VisitId::parse(&id)?,
            unit_code: r.get(1)?,
            unit_name: r.get(2)?,
            unit_kind: r.get(3)?,
            campaign: r.get(4)?,
            team: r.get(5)?,
            scheduled_on: r.get(6)?,
            status: r.get(7)?,
            conflicts: r.get(8)?,
            tally: serde_json::from_str(&tally).map_err(|e| Error::Corrupt(e.to_string()))?,
            heads: parse_heads(&heads)?,
            updated_at: r.get(11)?,
        })
    };
    Ok(build())
}
