//! The PostgreSQL backend of [`ServerStore`]: the same model as the SQLite
//! store's server side, in tables made by numbered migrations
//! (`migrations-postgres/`), so that several stateless server processes can
//! share one database.
//!
//! - A [`PgStore`] is one connection (`postgres`, the blocking client: use
//!   it, and drop it, on a blocking thread, never on an async one).
//! - [`ServerStore::batch`] is one transaction. In it, a write to a stored
//!   visit first locks the visit's row (`lock_visit`, `FOR UPDATE`) until
//!   the transaction ends: two syncs writing to one visit, on any
//!   processes, run one after the other; reads take no lock, and syncs of
//!   different visits run side by side.
//! - Feed rows are written at the end of the transaction under a
//!   transaction-scoped advisory lock, with their `seq` taken from one
//!   sequence there: rows become visible in `seq` order, so a device that
//!   read up to a row never misses an earlier one committed later. Each
//!   process writes under a generation (nonce) of its own, as each start of
//!   an SQLite server does.
//! - Documents read in a transaction are dropped when it ends: nothing is
//!   kept between requests that another process could have changed.

use std::collections::HashMap;

use kiemtra_core::{ChangeHash, DeviceId, Editor, EvidenceHash, Session, UserId, Visit, VisitId};
use kiemtra_store::{
    COMPACT_AFTER, ConsoleAccount, ConsoleSession, DeviceRecord, EnrollmentRefusal, Error,
    EvidenceRefusal, EvidenceStatus, FeedEntry, PieceAction, Result, SignatureRecord, VisitSummary,
};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Row};

use crate::storage::{ChangeId, ServerStore};

/// The migrations, in order; the database records the last one applied.
const MIGRATIONS: [(i32, &str); 5] = [
    (1, include_str!("../migrations-postgres/001_server.sql")),
    (2, include_str!("../migrations-postgres/002_evidence.sql")),
    (
        3,
        include_str!("../migrations-postgres/003_store_compressed_bytes_as_is.sql"),
    ),
    (4, include_str!("../migrations-postgres/004_admin_log.sql")),
    (5, include_str!("../migrations-postgres/005_console.sql")),
];
/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;
/// Advisory lock keys: migrations, and the feed's writers.
const MIGRATION_LOCK: i64 = 0x6b69_656d_0001;
const FEED_LOCK: i64 = 0x6b69_656d_0002;
/// The channel that announces stored feed rows (payload: the newest seq).
pub const FEED_CHANNEL: &str = "kiemtra_feed";

/// Hears, without polling, when any server process over the same database
/// stores changes: each committed write announces the newest feed `seq`
/// (PostgreSQL `LISTEN`/`NOTIFY`). For live views (the web console) and
/// for waking devices' long polls.
pub struct FeedListener {
    client: Client,
}

impl FeedListener {
    pub fn connect(url: &str) -> Result<Self> {
        let mut client = Client::connect(url, NoTls).map_err(db)?;
        client
            .batch_execute(&format!("LISTEN {FEED_CHANNEL}"))
            .map_err(db)?;
        Ok(Self { client })
    }

    /// Waits up to `timeout` for announcements; the newest `seq` heard
    /// (every announcement already waiting is read), or `None`.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Result<Option<u64>> {
        let mut notes = self.client.notifications();
        let first = notes.timeout_iter(timeout).next();
        let mut newest = match first.map_err(db)? {
            Some(n) => n.payload().parse::<u64>().ok(),
            None => return Ok(None),
        };
        let mut rest = notes.iter();
        while let Some(n) = rest.next().map_err(db)? {
            newest = newest.max(n.payload().parse::<u64>().ok());
        }
        Ok(newest)
    }
}

fn db(e: postgres::Error) -> Error {
    // The server's cause, kept in words; a database error is a failure of
    // the request (retried), not of the visit.
    let message = match e.as_db_error() {
        Some(d) => format!("PostgreSQL {}", d.code().code()),
        None => "PostgreSQL".to_owned(),
    };
    Error::database_cause(message, e)
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt(what.to_string())
}

/// One visit read in the current transaction, with the heads it was
/// stored at.
struct Open {
    visit: Visit,
    saved_heads: Vec<ChangeHash>,
    chunks: i64,
}

/// One connection to the server's PostgreSQL database.
pub struct PgStore {
    client: Client,
    session: Session,
    /// This process's feed generation.
    generation: i64,
    in_tx: bool,
    open: HashMap<VisitId, Open>,
    /// Feed rows to write when the transaction commits: (visit, team).
    feed: Vec<(String, String)>,
    /// Visits whose rows this transaction holds locked.
    locked: std::collections::HashSet<VisitId>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and brings the
    /// schema up to date; refuses a database written by a newer build.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_as(url, new_generation())
    }

    /// [`PgStore::connect`] writing the feed under `generation` (one per
    /// server process: its connections share it).
    pub fn connect_as(url: &str, generation: i64) -> Result<Self> {
        let mut client = Client::connect(url, NoTls).map_err(db)?;
        migrate(&mut client)?;
        let editor = Editor::new(UserId::parse("server")?, DeviceId::parse("server")?);
        Ok(Self {
            client,
            session: Session::new(editor),
            generation,
            in_tx: false,
            open: HashMap::new(),
            feed: Vec::new(),
            locked: std::collections::HashSet::new(),
        })
    }

    /// Whether the connection is still open (a dead one is not reused).
    pub fn healthy(&self) -> bool {
        !self.client.is_closed() && !self.in_tx
    }

    /// The schema version the database is at.
    pub fn schema_version(&mut self) -> Result<i32> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM kiemtra_migrations",
                &[],
            )
            .map_err(db)?;
        Ok(row.get(0))
    }

    /// Writes the feed rows of this transaction, in order, under the
    /// feed's lock (held until the commit that follows).
    fn flush_feed(&mut self) -> Result<()> {
        if self.feed.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.feed);
        self.client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
            .map_err(db)?;
        let mut last: HashMap<&str, &str> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (visit, team) in &rows {
            if last.insert(visit, team).is_none() {
                order.push(visit);
            }
        }
        let mut newest = 0i64;
        for visit in order {
            let team = last[visit];
            self.client
                .execute("DELETE FROM feed WHERE visit_id = $1", &[&visit])
                .map_err(db)?;
            let row = self
                .client
                .query_one(
                    "INSERT INTO feed (seq, visit_id, team, nonce)
                     VALUES (nextval('feed_seq'), $1, $2, $3) RETURNING seq",
                    &[&visit, &team, &self.generation],
                )
                .map_err(db)?;
            let seq: i64 = row.get(0);
            newest = newest.max(seq);
            self.client
                .execute(
                    "INSERT INTO feed_generations (nonce, first_seq, last_seq) VALUES ($1, $2, $2)
                     ON CONFLICT (nonce) DO UPDATE
                     SET last_seq = greatest(feed_generations.last_seq, excluded.last_seq)",
                    &[&self.generation, &seq],
                )
                .map_err(db)?;
        }
        // Delivered at commit to every process listening (FeedListener).
        self.client
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&FEED_CHANNEL, &newest.to_string()],
            )
            .map_err(db)?;
        Ok(())
    }

    fn exists(&mut self, id: &VisitId) -> Result<bool> {
        Ok(self
            .client
            .query_opt("SELECT 1 FROM visits WHERE id = $1", &[&id.as_str()])
            .map_err(db)?
            .is_some())
    }

    fn load(&mut self, id: &VisitId) -> Result<Open> {
        let rows = self
            .client
            .query(
                "SELECT data FROM visit_chunks WHERE visit_id = $1 ORDER BY seq",
                &[&id.as_str()],
            )
            .map_err(db)?;
        if rows.is_empty() {
            return Err(Error::UnknownVisit(id.clone()));
        }
        let chunks = rows.len() as i64;
        let bytes: Vec<u8> = rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(0)).collect();
        let visit = Visit::load(&bytes, &self.session)?;
        Ok(Open {
            saved_heads: visit.heads(),
            visit,
            chunks,
        })
    }

    fn opened(&mut self, id: &VisitId) -> Result<&mut Open> {
        // Outside a transaction every read is fresh; inside one the row
        // lock (taken by `summary`) keeps the copy current.
        if !self.in_tx {
            self.open.remove(id);
        }
        if !self.open.contains_key(id) {
            let open = self.load(id)?;
            let due = open.chunks > COMPACT_AFTER as i64 && self.in_tx;
            self.open.insert(id.clone(), open);
            if due {
                self.compact(id)?;
            }
        }
        self.open
            .get_mut(id)
            .ok_or_else(|| Error::UnknownVisit(id.clone()))
    }

    /// Replaces a visit's chunks with one snapshot of its whole history.
    fn compact(&mut self, id: &VisitId) -> Result<()> {
        let Some(open) = self.open.get_mut(id) else {
            return Ok(());
        };
        let snapshot = open.visit.save();
        self.client
            .execute(
                "DELETE FROM visit_chunks WHERE visit_id = $1",
                &[&id.as_str()],
            )
            .map_err(db)?;
        self.client
            .execute(
                "INSERT INTO visit_chunks (visit_id, kind, data) VALUES ($1, 'snapshot', $2)",
                &[&id.as_str(), &snapshot],
            )
            .map_err(db)?;
        if let Some(open) = self.open.get_mut(id) {
            open.saved_heads = open.visit.heads();
            open.chunks = 1;
        }
        Ok(())
    }

    fn write_summary(&mut self, s: &VisitSummary, insert: bool) -> Result<()> {
        let tally = serde_json::to_string(&s.tally).map_err(corrupt)?;
        let heads = s.heads.to_json();
        let sql = if insert {
            "INSERT INTO visits (id, unit_code, unit_name, unit_kind, campaign, team, scheduled_on,
                                 status, conflicts, tally, heads, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        } else {
            "UPDATE visits SET unit_code = $2, unit_name = $3, unit_kind = $4, campaign = $5,
                    team = $6, scheduled_on = $7, status = $8, conflicts = $9, tally = $10,
                    heads = $11, updated_at = $12
             WHERE id = $1"
        };
        self.client
            .execute(
                sql,
                &[
                    &s.id.as_str(),
                    &s.unit_code,
                    &s.unit_name,
                    &s.unit_kind,
                    &s.campaign,
                    &s.team,
                    &s.scheduled_on,
                    &s.status,
                    &i64::from(s.conflicts),
                    &tally,
                    &heads,
                    &s.updated_at,
                ],
            )
            .map_err(db)?;
        self.feed.push((s.id.to_string(), s.team.clone()));
        Ok(())
    }

    /// Stores a visit new to the database: its index row, its bytes as one
    /// chunk and its feed row.
    fn insert_new(
        &mut self,
        visit: Visit,
        bytes: &[u8],
        summary: VisitSummary,
    ) -> Result<VisitSummary> {
        let id = summary.id.clone();
        self.write_summary(&summary, true)?;
        self.client
            .execute(
                "INSERT INTO visit_chunks (visit_id, kind, data) VALUES ($1, 'snapshot', $2)",
                &[&id.as_str(), &bytes],
            )
            .map_err(db)?;
        if self.in_tx {
            self.open.insert(
                id,
                Open {
                    saved_heads: visit.heads(),
                    visit,
                    chunks: 1,
                },
            );
        }
        Ok(summary)
    }

    /// Appends what the open visit gained since it was stored as one chunk
    /// and refreshes its index row.
    fn persist(&mut self, id: &VisitId) -> Result<()> {
        let open = self
            .open
            .get_mut(id)
            .ok_or_else(|| Error::UnknownVisit(id.clone()))?;
        let bytes = open.visit.save_after(&open.saved_heads);
        if bytes.is_empty() {
            return Ok(());
        }
        let summary = VisitSummary::of(&open.visit)?;
        open.saved_heads = open.visit.heads();
        open.chunks += 1;
        self.client
            .execute(
                "INSERT INTO visit_chunks (visit_id, kind, data) VALUES ($1, 'changes', $2)",
                &[&id.as_str(), &bytes],
            )
            .map_err(db)?;
        self.write_summary(&summary, false)
    }

    fn in_one<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        ServerStore::batch(self, f)
    }

    /// A transaction ended: what it read and queued is dropped.
    fn end(&mut self) {
        self.in_tx = false;
        self.open.clear();
        self.feed.clear();
        self.locked.clear();
    }

    fn pieces(&mut self, visit: &VisitId, hash: &EvidenceHash) -> Result<Vec<(u64, Vec<u8>)>> {
        Ok(self
            .client
            .query(
                "SELECT at, data FROM evidence_pieces WHERE visit_id = $1 AND hash = $2 ORDER BY at",
                &[&visit.as_str(), &hash.as_str()],
            )
            .map_err(db)?
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vec<u8>>(1)))
            .collect())
    }

    fn drop_evidence(&mut self, visit: &VisitId, hash: &EvidenceHash) -> Result<()> {
        self.client
            .execute(
                "DELETE FROM evidence WHERE visit_id = $1 AND hash = $2",
                &[&visit.as_str(), &hash.as_str()],
            )
            .map_err(db)?;
        Ok(())
    }
}

/// A feed generation for a new server process (random, positive).
pub fn new_generation() -> i64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 1) as i64
}

fn migrate(client: &mut Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db)?;
    let outcome = (|| {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS kiemtra_migrations (
                     version     INTEGER PRIMARY KEY,
                     applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )
            .map_err(db)?;
        let found: i32 = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM kiemtra_migrations",
                &[],
            )
            .map_err(db)?
            .get(0);
        if found > PG_SCHEMA_VERSION {
            return Err(Error::NewerDatabase {
                path: "the PostgreSQL database".into(),
                found: found as usize,
                supported: PG_SCHEMA_VERSION as usize,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            let mut tx = client.transaction().map_err(db)?;
            tx.batch_execute(sql)
                .map_err(|e| Error::Migration(format!("PostgreSQL migration {version}: {e}")))?;
            tx.execute(
                "INSERT INTO kiemtra_migrations (version) VALUES ($1)",
                &[version],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(())
    })();
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(db);
    outcome.and(unlocked.map(|_| ()))
}

fn read_summary(r: &Row) -> Result<VisitSummary> {
    let id: String = r.get(0);
    let tally: String = r.get(9);
    let heads: String = r.get(10);
    Ok(VisitSummary {
        id: VisitId::parse(&id)?,
        unit_code: r.get(1),
        unit_name: r.get(2),
        unit_kind: r.get(3),
        campaign: r.get(4),
        team: r.get(5),
        scheduled_on: r.get(6),
        status: r.get(7),
        conflicts: u32::try_from(r.get::<_, i64>(8)).map_err(corrupt)?,
        tally: serde_json::from_str(&tally).map_err(corrupt)?,
        heads: kiemtra_core::Heads::from_json(&heads).map_err(corrupt)?,
        updated_at: r.get(11),
    })
}

const SUMMARY_COLUMNS: &str = "id, unit_code, unit_name, unit_kind, campaign, team, scheduled_on, \
     status, conflicts, tally, heads, updated_at";
const DEVICE_COLUMNS: &str =
    "device_id, user_id, team, role, name, enrolled_at, revoked_at, public_key";

fn read_device(r: &Row) -> DeviceRecord {
    DeviceRecord {
        device_id: r.get(0),
        user_id: r.get(1),
        team: r.get(2),
        role: r.get(3),
        name: r.get(4),
        enrolled_at: r.get(5),
        revoked_at: r.get(6),
        public_key: r.get(7),
    }
}

fn read_signature(r: &Row) -> Result<SignatureRecord> {
    Ok(SignatureRecord {
        signer: r.get(0),
        signature: r.get(1),
        received_at: r.get(2),
        ranges: kiemtra_store::ranges_from_json(&r.get::<_, String>(3))
            .ok_or_else(|| corrupt("a kept signature's ranges"))?,
    })
}

fn to_i64(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

impl ServerStore for PgStore {
    fn session(&self) -> &Session {
        &self.session
    }

    fn begin(&mut self) -> Result<()> {
        self.client.batch_execute("BEGIN").map_err(db)?;
        self.in_tx = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        let done = self
            .flush_feed()
            .and_then(|()| self.client.batch_execute("COMMIT").map_err(db));
        if done.is_err() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        self.end();
        done
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
        self.end();
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }

    fn summary(&mut self, id: &VisitId) -> Result<VisitSummary> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM visits WHERE id = $1");
        match self.client.query_opt(&sql, &[&id.as_str()]).map_err(db)? {
            Some(row) => read_summary(&row),
            None => Err(Error::UnknownVisit(id.clone())),
        }
    }

    fn lock_visit(&mut self, id: &VisitId) -> Result<()> {
        if !self.in_tx || self.locked.contains(id) {
            return Ok(());
        }
        self.client
            .query_opt(
                "SELECT 1 FROM visits WHERE id = $1 FOR UPDATE",
                &[&id.as_str()],
            )
            .map_err(db)?;
        // What was read before the lock may be older than what it guards.
        self.open.remove(id);
        self.locked.insert(id.clone());
        Ok(())
    }

    fn list_visits(&mut self) -> Result<Vec<VisitSummary>> {
        self.client
            .query(
                &format!("SELECT {SUMMARY_COLUMNS} FROM visits ORDER BY scheduled_on, id"),
                &[],
            )
            .map_err(db)?
            .iter()
            .map(read_summary)
            .collect()
    }

    fn visit(&mut self, id: &VisitId) -> Result<&Visit> {
        Ok(&self.opened(id)?.visit)
    }

    fn stored_bytes(&mut self, id: &VisitId) -> Result<Vec<u8>> {
        let rows = self
            .client
            .query(
                "SELECT data FROM visit_chunks WHERE visit_id = $1 ORDER BY seq",
                &[&id.as_str()],
            )
            .map_err(db)?;
        if rows.is_empty() {
            return Err(Error::UnknownVisit(id.clone()));
        }
        Ok(rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(0)).collect())
    }

    fn insert_loaded(&mut self, visit: Visit, bytes: &[u8]) -> Result<VisitSummary> {
        let summary = VisitSummary::of(&visit)?;
        self.insert_summarised(visit, bytes, summary)
    }

    fn insert_summarised(
        &mut self,
        visit: Visit,
        bytes: &[u8],
        summary: VisitSummary,
    ) -> Result<VisitSummary> {
        let id = visit.id()?;
        let summary =
            if summary.id != id || summary.heads != kiemtra_core::Heads::new(visit.heads()) {
                VisitSummary::of(&visit)?
            } else {
                summary
            };
        let bytes = bytes.to_vec();
        self.in_one(move |s| {
            if s.exists(&id)? {
                // Stored by another request meanwhile: merge into it.
                let open = s.opened(&id)?;
                open.visit.load_incremental(&bytes)?;
                s.persist(&id)?;
                return s.summary(&id);
            }
            s.insert_new(visit, &bytes, summary)
        })
    }

    fn edit<T>(
        &mut self,
        id: &VisitId,
        f: impl FnOnce(&mut Visit) -> kiemtra_core::Result<T>,
    ) -> Result<T> {
        let id = id.clone();
        self.in_one(move |s| {
            s.lock_visit(&id)?;
            let open = s.opened(&id)?;
            let out = f(&mut open.visit)?;
            s.persist(&id)?;
            Ok(out)
        })
    }

    fn record_signatures(&mut self, id: &VisitId, sigs: &[SignatureRecord]) -> Result<()> {
        self.in_one(|s| {
            for sig in sigs {
                s.client
                    .execute(
                        "INSERT INTO signatures (visit_id, signer, ranges, signature, received_at)
                         SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM signatures
                         WHERE visit_id = $1 AND signer = $2 AND ranges = $3 AND signature = $4)",
                        &[
                            &id.as_str(),
                            &sig.signer,
                            &kiemtra_store::ranges_json(&sig.ranges),
                            &sig.signature,
                            &sig.received_at,
                        ],
                    )
                    .map_err(db)?;
            }
            Ok(())
        })
    }

    fn signatures_of(&mut self, id: &VisitId) -> Result<Vec<SignatureRecord>> {
        self.client
            .query(
                "SELECT signer, signature, received_at, ranges FROM signatures
                 WHERE visit_id = $1 ORDER BY id",
                &[&id.as_str()],
            )
            .map_err(db)?
            .iter()
            .map(read_signature)
            .collect()
    }

    fn signatures_covering(
        &mut self,
        id: &VisitId,
        changes: &[ChangeId],
    ) -> Result<Vec<SignatureRecord>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT signer, signature, received_at, ranges FROM signatures
                 WHERE visit_id = $1 ORDER BY id DESC",
                &[&id.as_str()],
            )
            .map_err(db)?;
        kiemtra_store::covering_newest_first(rows.iter().map(read_signature), changes)
    }

    fn feed_head(&mut self) -> Result<(u64, u64)> {
        Ok(self
            .client
            .query_opt("SELECT seq, nonce FROM feed ORDER BY seq DESC LIMIT 1", &[])
            .map_err(db)?
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
            .unwrap_or((0, 0)))
    }

    fn feed_cursor_valid(&mut self, seq: u64, nonce: u64) -> Result<bool> {
        let (Some(seq), Some(nonce)) = (to_i64(seq), to_i64(nonce)) else {
            return Ok(false);
        };
        if seq == 0 {
            return Ok(false);
        }
        Ok(self
            .client
            .query_opt(
                "SELECT 1 FROM feed_generations WHERE nonce = $1 AND first_seq <= $2 AND $2 <= last_seq",
                &[&nonce, &seq],
            )
            .map_err(db)?
            .is_some())
    }

    fn feed_since(&mut self, team: Option<&str>, after: u64, upto: u64) -> Result<Vec<FeedEntry>> {
        let after = to_i64(after).unwrap_or(i64::MAX);
        let upto = to_i64(upto).unwrap_or(i64::MAX);
        Ok(self
            .client
            .query(
                "SELECT visit_id, seq, nonce FROM feed
                 WHERE ($1::TEXT IS NULL OR team = $1) AND seq > $2 AND seq <= $3
                 ORDER BY seq",
                &[&team, &after, &upto],
            )
            .map_err(db)?
            .iter()
            .map(|r| FeedEntry {
                visit_id: r.get(0),
                seq: r.get::<_, i64>(1) as u64,
                nonce: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    fn device(&mut self, device_id: &str) -> Result<Option<DeviceRecord>> {
        Ok(self
            .client
            .query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1"),
                &[&device_id],
            )
            .map_err(db)?
            .map(|r| read_device(&r)))
    }

    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRecord>> {
        Ok(self
            .client
            .query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token_hash = $1"),
                &[&token_hash],
            )
            .map_err(db)?
            .map(|r| read_device(&r)))
    }

    fn devices(&mut self) -> Result<Vec<DeviceRecord>> {
        Ok(self
            .client
            .query(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at, device_id"),
                &[],
            )
            .map_err(db)?
            .iter()
            .map(read_device)
            .collect())
    }

    fn create_enrollment_code(
        &mut self,
        code_hash: &[u8],
        user_id: &str,
        team: &str,
        role: &str,
        created_at: &str,
        expires_at: &str,
    ) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO enrollment_codes (code_hash, user_id, team, role, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&code_hash, &user_id, &team, &role, &created_at, &expires_at],
            )
            .map_err(db)?;
        Ok(())
    }

    fn redeem_enrollment_code(
        &mut self,
        code_hash: &[u8],
        now: &str,
        device_id: &str,
        device_name: &str,
        token_hash: &[u8],
        public_key: &[u8],
    ) -> Result<std::result::Result<(DeviceRecord, bool), EnrollmentRefusal>> {
        self.in_one(|s| {
            let Some(row) = s
                .client
                .query_opt(
                    "SELECT user_id, team, role, expires_at, used_at, device_id
                     FROM enrollment_codes WHERE code_hash = $1 FOR UPDATE",
                    &[&code_hash],
                )
                .map_err(db)?
            else {
                return Ok(Err(EnrollmentRefusal::Unknown));
            };
            let (user_id, team, role): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            let expires_at: String = row.get(3);
            let used_at: Option<String> = row.get(4);
            let used_by: Option<String> = row.get(5);
            if expires_at.as_str() <= now {
                return Ok(Err(if used_at.is_some() {
                    EnrollmentRefusal::Used
                } else {
                    EnrollmentRefusal::Expired
                }));
            }
            if used_at.is_some() {
                let enrolled = match used_by {
                    Some(id) => s.device(&id)?,
                    None => None,
                };
                let Some(record) = enrolled
                    .filter(|d| d.revoked_at.is_none() && d.public_key.as_slice() == public_key)
                else {
                    return Ok(Err(EnrollmentRefusal::Used));
                };
                s.client
                    .execute(
                        "UPDATE devices SET token_hash = $2 WHERE device_id = $1",
                        &[&record.device_id, &token_hash],
                    )
                    .map_err(db)?;
                return Ok(Ok((record, true)));
            }
            s.client
                .execute(
                    "UPDATE enrollment_codes SET used_at = $2, device_id = $3 WHERE code_hash = $1",
                    &[&code_hash, &now, &device_id],
                )
                .map_err(db)?;
            s.client
                .execute(
                    "INSERT INTO devices (device_id, user_id, team, role, name, token_hash,
                                          enrolled_at, public_key)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &device_id,
                        &user_id,
                        &team,
                        &role,
                        &device_name,
                        &token_hash,
                        &now,
                        &public_key,
                    ],
                )
                .map_err(db)?;
            Ok(Ok((
                DeviceRecord {
                    device_id: device_id.into(),
                    user_id,
                    team,
                    role,
                    name: device_name.into(),
                    enrolled_at: now.into(),
                    revoked_at: None,
                    public_key: public_key.to_vec(),
                },
                false,
            )))
        })
    }

    fn evidence_status(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
    ) -> Result<Option<EvidenceStatus>> {
        let sql = if self.in_tx {
            "SELECT length, received, complete FROM evidence
             WHERE visit_id = $1 AND hash = $2 FOR UPDATE"
        } else {
            "SELECT length, received, complete FROM evidence WHERE visit_id = $1 AND hash = $2"
        };
        Ok(self
            .client
            .query_opt(sql, &[&visit.as_str(), &hash.as_str()])
            .map_err(db)?
            .map(|r| EvidenceStatus {
                length: r.get::<_, i64>(0) as u64,
                received: r.get::<_, i64>(1) as u64,
                complete: r.get(2),
            }))
    }

    fn receive_evidence(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        length: u64,
        offset: u64,
        piece: &[u8],
    ) -> Result<std::result::Result<EvidenceStatus, EvidenceRefusal>> {
        let now = self.session.now().to_rfc3339();
        let Some(length_i) = to_i64(length) else {
            return Ok(Err(EvidenceRefusal::PastEnd {
                end: length,
                length: i64::MAX as u64,
            }));
        };
        self.in_one(|s| {
            let held = s.evidence_status(visit, hash)?;
            let plan = kiemtra_store::plan_piece(held, length, offset, piece.len());
            if plan.restart {
                s.drop_evidence(visit, hash)?;
            }
            let (fresh, at, skip, received, complete) = match plan.action {
                PieceAction::Refuse(r) => return Ok(Err(r)),
                PieceAction::Whole(status) => return Ok(Ok(status)),
                PieceAction::Append {
                    fresh,
                    at,
                    skip,
                    received,
                    complete,
                } => (fresh, at, skip, received, complete),
            };
            if fresh {
                s.client
                    .execute(
                        "INSERT INTO evidence (visit_id, hash, length, received, complete, created_at)
                         VALUES ($1, $2, $3, 0, false, $4)",
                        &[&visit.as_str(), &hash.as_str(), &length_i, &now],
                    )
                    .map_err(db)?;
            }
            if skip < piece.len() {
                s.client
                    .execute(
                        "INSERT INTO evidence_pieces (visit_id, hash, at, data) VALUES ($1, $2, $3, $4)",
                        &[&visit.as_str(), &hash.as_str(), &(at as i64), &&piece[skip..]],
                    )
                    .map_err(db)?;
            }

            if complete {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                for (_, data) in s.pieces(visit, hash)? {
                    ctx.update(&data);
                }
                let got = kiemtra_core::hex::encode(ctx.finish().as_ref());
                if got != hash.as_str() {
                    s.drop_evidence(visit, hash)?;
                    return Ok(Err(EvidenceRefusal::Mismatch {
                        hash: hash.to_string(),
                    }));
                }
            }
            s.client
                .execute(
                    "UPDATE evidence SET received = $3, complete = $4 WHERE visit_id = $1 AND hash = $2",
                    &[&visit.as_str(), &hash.as_str(), &(received as i64), &complete],
                )
                .map_err(db)?;
            Ok(Ok(EvidenceStatus {
                length,
                received,
                complete,
            }))
        })
    }

    fn evidence_bytes(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>> {
        match self.evidence_status(visit, hash)? {
            Some(s) if s.complete => {}
            _ => return Ok(None),
        }
        let end = offset.saturating_add(len);
        let mut out = Vec::new();
        for (at, data) in self.pieces(visit, hash)? {
            kiemtra_store::copy_range(&mut out, at, &data, offset, end);
        }
        Ok(Some(out))
    }

    fn check_writable(&mut self) -> Result<()> {
        let row = self
            .client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .map_err(db)?;
        if row.get::<_, bool>(0) {
            return Err(Error::database(
                "the PostgreSQL server is a read-only standby",
            ));
        }
        Ok(())
    }

    fn admin_log(&mut self, after: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = self
            .client
            .query(
                "SELECT seq, entry FROM admin_log WHERE seq > $1 ORDER BY seq",
                &[&(after as i64)],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vec<u8>>(1)))
            .collect())
    }
    fn lock_admin_log(&mut self) -> Result<()> {
        self.client
            .batch_execute("LOCK TABLE admin_log IN EXCLUSIVE MODE")
            .map_err(db)
    }
    fn append_admin_entry(&mut self, seq: u64, entry: &[u8]) -> Result<bool> {
        let n = self
            .client
            .execute(
                "INSERT INTO admin_log (seq, entry) VALUES ($1, $2) ON CONFLICT (seq) DO NOTHING",
                &[&(seq as i64), &entry],
            )
            .map_err(db)?;
        Ok(n == 1)
    }
    fn console_account(&mut self, user_id: &str) -> Result<Option<ConsoleAccount>> {
        let row = self
            .client
            .query_opt(
                "SELECT user_id, password, failed, locked_until FROM console_accounts WHERE user_id = $1",
                &[&user_id],
            )
            .map_err(db)?;
        Ok(row.map(|r| ConsoleAccount {
            user_id: r.get(0),
            password: r.get(1),
            failed: r.get::<_, i64>(2).clamp(0, i64::from(u32::MAX)) as u32,
            locked_until: r.get(3),
        }))
    }
    fn set_console_password(&mut self, user_id: &str, hash: &str, at: &str) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO console_accounts (user_id, password, failed, locked_until, set_at) \
                 VALUES ($1, $2, 0, NULL, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET password = $2, failed = 0, locked_until = NULL, set_at = $3",
                &[&user_id, &hash, &at],
            )
            .map_err(db)?;
        Ok(())
    }
    fn console_sign_in_result(
        &mut self,
        user_id: &str,
        failed: u32,
        locked_until: Option<&str>,
    ) -> Result<()> {
        self.client
            .execute(
                "UPDATE console_accounts SET failed = $2, locked_until = $3 WHERE user_id = $1",
                &[&user_id, &i64::from(failed), &locked_until],
            )
            .map_err(db)?;
        Ok(())
    }
    fn create_console_session(
        &mut self,
        token_hash: &[u8],
        session: &ConsoleSession,
        created_at: &str,
    ) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO console_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &token_hash,
                    &session.user_id,
                    &session.csrf,
                    &created_at,
                    &session.expires_at,
                ],
            )
            .map_err(db)?;
        Ok(())
    }
    fn console_session(&mut self, token_hash: &[u8]) -> Result<Option<ConsoleSession>> {
        let row = self
            .client
            .query_opt(
                "SELECT user_id, csrf, expires_at FROM console_sessions WHERE token_hash = $1",
                &[&token_hash],
            )
            .map_err(db)?;
        Ok(row.map(|r| ConsoleSession {
            user_id: r.get(0),
            csrf: r.get(1),
            expires_at: r.get(2),
        }))
    }
    fn delete_console_session(&mut self, token_hash: &[u8], now: &str) -> Result<()> {
        self.client
            .execute(
                "DELETE FROM console_sessions WHERE token_hash = $1 OR expires_at < $2",
                &[&token_hash, &now],
            )
            .map_err(db)?;
        Ok(())
    }
    fn revoke_device(&mut self, device_id: &str, now: &str) -> Result<()> {
        let n = self
            .client
            .execute(
                "UPDATE devices SET revoked_at = $2 WHERE device_id = $1 AND revoked_at IS NULL",
                &[&device_id, &now],
            )
            .map_err(db)?;
        if n == 0 {
            return Err(Error::Corrupt(format!("no active device {device_id}")));
        }
        Ok(())
    }
}
