//! Which database a server process works on, and the connection a request
//! gets: the embedded SQLite store (one connection behind a lock, the
//! default) or PostgreSQL (a pool of connections; several requests, and
//! several server processes, at once, kept apart by per-visit row locks).

use std::sync::{Condvar, Mutex, MutexGuard};

use kiemtra_core::{EvidenceHash, Session, Visit, VisitId};
use kiemtra_store::{
    DeviceRecord, EnrollmentRefusal, EvidenceRefusal, EvidenceStatus, FeedEntry, Receipts, Result,
    SignatureRecord, Store, VisitSummary,
};

use crate::pg::PgStore;
use crate::storage::{ChangeId, ServerStore};

/// The database of this process.
pub enum Backend {
    Sqlite(Box<Mutex<Store>>),
    Postgres(PgPool),
}

/// The PostgreSQL connections of this process: at most [`PG_CONNECTIONS`],
/// opened on demand and kept open (a new connection costs the database a
/// process); a request waits for a free one rather than opening more. Every
/// connection writes the feed under the process's one generation.
pub struct PgPool {
    url: String,
    generation: i64,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<PgStore>,
    /// Connections open, idle or in use.
    open: usize,
}

/// Most PostgreSQL connections one server process holds.
pub const PG_CONNECTIONS: usize = 16;

impl PgPool {
    /// Connects once (checking the schema, migrating it) and keeps that
    /// connection for the first request.
    pub fn open(url: &str) -> Result<Self> {
        let generation = crate::pg::new_generation();
        let first = PgStore::connect_as(url, generation)?;
        Ok(Self {
            url: url.to_owned(),
            generation,
            state: Mutex::new(PoolState {
                idle: vec![first],
                open: 1,
            }),
            freed: Condvar::new(),
        })
    }

    fn get(&self) -> Result<Box<PgStore>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = st.idle.pop() {
                return Ok(Box::new(c));
            }
            if st.open < PG_CONNECTIONS {
                st.open += 1;
                drop(st);
                return match PgStore::connect_as(&self.url, self.generation) {
                    Ok(c) => Ok(Box::new(c)),
                    Err(e) => {
                        self.state.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn put(&self, conn: Box<PgStore>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if conn.healthy() {
            st.idle.push(*conn);
        } else {
            // A connection that lost its server is closed; the next request
            // opens a new one.
            st.open -= 1;
            drop(st);
            drop(conn);
        }
        self.freed.notify_one();
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        // The blocking client must not be dropped on an async thread
        // (where the server's state ends): its connections close on a
        // thread of their own.
        let idle = std::mem::take(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()).idle);
        let _ = std::thread::spawn(move || drop(idle)).join();
    }
}

/// One request's connection; a PostgreSQL one goes back to the pool when
/// dropped (on the blocking thread that used it).
pub enum Conn<'a> {
    Sqlite(MutexGuard<'a, Store>),
    Postgres(&'a PgPool, Option<Box<PgStore>>),
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Conn::Postgres(pool, conn) = self
            && let Some(c) = conn.take()
        {
            pool.put(c);
        }
    }
}

impl Backend {
    /// A connection for one request. Call it on a blocking thread.
    pub fn conn(&self) -> Result<Conn<'_>> {
        match self {
            // A panic while holding the lock cannot leave SQLite
            // half-written (transactions roll back), so a poisoned lock is
            // still usable.
            Backend::Sqlite(m) => Ok(Conn::Sqlite(m.lock().unwrap_or_else(|p| p.into_inner()))),
            Backend::Postgres(pool) => Ok(Conn::Postgres(pool, Some(pool.get()?))),
        }
    }
}

/// Runs `$body` with `$s` bound to the connection's store, whichever it is.
macro_rules! on {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Conn::Sqlite(g) => {
                let $s: &mut Store = &mut *g;
                $body
            }
            Conn::Postgres(_, Some(b)) => {
                let $s: &mut PgStore = &mut *b;
                $body
            }
            Conn::Postgres(_, None) => unreachable!("a connection is held until dropped"),
        }
    };
}

impl ServerStore for Conn<'_> {
    fn session(&self) -> &Session {
        match self {
            Conn::Sqlite(g) => g.session(),
            Conn::Postgres(_, Some(s)) => ServerStore::session(&**s),
            Conn::Postgres(_, None) => unreachable!("a connection is held until dropped"),
        }
    }
    fn begin(&mut self) -> Result<()> {
        on!(self, s => ServerStore::begin(s))
    }
    fn commit(&mut self) -> Result<()> {
        on!(self, s => ServerStore::commit(s))
    }
    fn rollback(&mut self) {
        on!(self, s => ServerStore::rollback(s))
    }
    fn in_transaction(&self) -> bool {
        match self {
            Conn::Sqlite(g) => g.in_transaction(),
            Conn::Postgres(_, Some(s)) => ServerStore::in_transaction(&**s),
            Conn::Postgres(_, None) => false,
        }
    }
    fn summary(&mut self, id: &VisitId) -> Result<VisitSummary> {
        on!(self, s => ServerStore::summary(s, id))
    }
    fn lock_visit(&mut self, id: &VisitId) -> Result<()> {
        on!(self, s => ServerStore::lock_visit(s, id))
    }
    fn list_visits(&mut self) -> Result<Vec<VisitSummary>> {
        on!(self, s => ServerStore::list_visits(s))
    }
    fn visit(&mut self, id: &VisitId) -> Result<&Visit> {
        on!(self, s => ServerStore::visit(s, id))
    }
    fn stored_bytes(&mut self, id: &VisitId) -> Result<Vec<u8>> {
        on!(self, s => ServerStore::stored_bytes(s, id))
    }
    fn insert_loaded(&mut self, visit: Visit, bytes: &[u8]) -> Result<VisitSummary> {
        on!(self, s => ServerStore::insert_loaded(s, visit, bytes))
    }
    fn insert_summarised(
        &mut self,
        visit: Visit,
        bytes: &[u8],
        summary: VisitSummary,
    ) -> Result<VisitSummary> {
        on!(self, s => ServerStore::insert_summarised(s, visit, bytes, summary))
    }
    fn edit<T>(
        &mut self,
        id: &VisitId,
        f: impl FnOnce(&mut Visit) -> kiemtra_core::Result<T>,
    ) -> Result<T> {
        on!(self, s => ServerStore::edit(s, id, f))
    }
    fn record_signatures(&mut self, id: &VisitId, sigs: &[SignatureRecord]) -> Result<()> {
        on!(self, s => ServerStore::record_signatures(s, id, sigs))
    }
    fn signatures_of(&mut self, id: &VisitId) -> Result<Vec<SignatureRecord>> {
        on!(self, s => ServerStore::signatures_of(s, id))
    }
    fn signatures_covering(
        &mut self,
        id: &VisitId,
        changes: &[ChangeId],
    ) -> Result<Vec<SignatureRecord>> {
        on!(self, s => ServerStore::signatures_covering(s, id, changes))
    }
    fn feed_head(&mut self) -> Result<(u64, u64)> {
        on!(self, s => ServerStore::feed_head(s))
    }
    fn feed_cursor_valid(&mut self, seq: u64, nonce: u64) -> Result<bool> {
        on!(self, s => ServerStore::feed_cursor_valid(s, seq, nonce))
    }
    fn feed_since(&mut self, team: Option<&str>, after: u64, upto: u64) -> Result<Vec<FeedEntry>> {
        on!(self, s => ServerStore::feed_since(s, team, after, upto))
    }
    fn device(&mut self, device_id: &str) -> Result<Option<DeviceRecord>> {
        on!(self, s => ServerStore::device(s, device_id))
    }
    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRecord>> {
        on!(self, s => ServerStore::device_by_token(s, token_hash))
    }
    fn devices(&mut self) -> Result<Vec<DeviceRecord>> {
        on!(self, s => ServerStore::devices(s))
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
        on!(self, s => ServerStore::create_enrollment_code(s, code_hash, user_id, team, role, created_at, expires_at))
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
        on!(self, s => ServerStore::redeem_enrollment_code(s, code_hash, now, device_id, device_name, token_hash, public_key))
    }
    fn revoke_device(&mut self, device_id: &str, now: &str) -> Result<()> {
        on!(self, s => ServerStore::revoke_device(s, device_id, now))
    }
    fn admin_log(&mut self, after: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        on!(self, s => ServerStore::admin_log(s, after))
    }
    fn lock_admin_log(&mut self) -> Result<()> {
        on!(self, s => ServerStore::lock_admin_log(s))
    }
    fn append_admin_entry(&mut self, seq: u64, entry: &[u8]) -> Result<bool> {
        on!(self, s => ServerStore::append_admin_entry(s, seq, entry))
    }
    fn console_account(&mut self, user_id: &str) -> Result<Option<kiemtra_store::ConsoleAccount>> {
        on!(self, s => ServerStore::console_account(s, user_id))
    }
    fn set_console_password(&mut self, user_id: &str, hash: &str, at: &str) -> Result<()> {
        on!(self, s => ServerStore::set_console_password(s, user_id, hash, at))
    }
    fn console_sign_in_result(
        &mut self,
        user_id: &str,
        failed: u32,
        locked_until: Option<&str>,
    ) -> Result<()> {
        on!(self, s => ServerStore::console_sign_in_result(s, user_id, failed, locked_until))
    }
    fn create_console_session(
        &mut self,
        token_hash: &[u8],
        session: &kiemtra_store::ConsoleSession,
        created_at: &str,
    ) -> Result<()> {
        on!(self, s => ServerStore::create_console_session(s, token_hash, session, created_at))
    }
    fn console_session(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<kiemtra_store::ConsoleSession>> {
        on!(self, s => ServerStore::console_session(s, token_hash))
    }
    fn delete_console_session(&mut self, token_hash: &[u8], now: &str) -> Result<()> {
        on!(self, s => ServerStore::delete_console_session(s, token_hash, now))
    }
    fn evidence_status(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
    ) -> Result<Option<EvidenceStatus>> {
        on!(self, s => ServerStore::evidence_status(s, visit, hash))
    }
    fn receive_evidence(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        length: u64,
        offset: u64,
        piece: &[u8],
    ) -> Result<std::result::Result<EvidenceStatus, EvidenceRefusal>> {
        on!(self, s => ServerStore::receive_evidence(s, visit, hash, length, offset, piece))
    }
    fn evidence_bytes(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>> {
        on!(self, s => ServerStore::evidence_bytes(s, visit, hash, offset, len))
    }
    fn check_writable(&mut self) -> Result<()> {
        on!(self, s => ServerStore::check_writable(s))
    }
    fn change_receipts(
        &mut self,
        visit: &VisitId,
        index: &kiemtra_core::ChangeIndex,
    ) -> Result<Receipts> {
        on!(self, s => ServerStore::change_receipts(s, visit, index))
    }
}
