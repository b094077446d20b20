//! The server's storage behind one interface, with two backends: the
//! embedded SQLite store (`kiemtra_store::Store`, the default) and
//! PostgreSQL ([`crate::pg::PgStore`]). The sync engine, the trust
//! rule and enrollment are written against [`ServerStore`] only; one
//! conformance suite (`crates/server/tests/conformance.rs`) holds both
//! backends to the same behaviour.
//!
//! A value of the trait is one connection. [`ServerStore::batch`] runs a
//! closure in one transaction: everything it wrote is kept, or nothing.
//! Outside a batch each call stands alone. Nothing is remembered between
//! transactions that another process could have changed: a visit read in
//! one is read again from the database in the next.

use kiemtra_core::{ChangeHash, EvidenceHash, Session, Visit, VisitId};
use kiemtra_store::{
    ConsoleAccount, ConsoleSession, DeviceRecord, EnrollmentRefusal, EvidenceRefusal,
    EvidenceStatus, FeedEntry, Receipts, Result, SignatureRecord, Store, VisitSummary,
};

/// A change named three ways: hash, actor, sequence number
/// (`Visit::change_ids`).
pub type ChangeId = (ChangeHash, Vec<u8>, u64);

/// What the server keeps: visits (documents as chunks, with an index row
/// each), the signatures kept with their changes, the feed devices follow,
/// devices and enrollment codes.
pub trait ServerStore {
    /// The server's session (its clock; the actor of documents it loads).
    fn session(&self) -> &Session;

    /// Begins a transaction.
    fn begin(&mut self) -> Result<()>;
    /// Commits it (rolled back when the commit fails).
    fn commit(&mut self) -> Result<()>;
    /// Rolls it back; nothing of it is kept.
    fn rollback(&mut self);
    /// Whether a transaction is open.
    fn in_transaction(&self) -> bool;

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled
    /// back (nothing of it kept) when it fails or panics. Nested calls run
    /// inside the outer transaction.
    fn batch<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T>
    where
        Self: Sized,
    {
        if self.in_transaction() {
            return f(self);
        }
        self.begin()?;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)))
            .unwrap_or_else(|_| {
                Err(kiemtra_store::Error::Corrupt(
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

    // ---- visits

    /// A visit's index row; `Error::UnknownVisit` when there is none.
    fn summary(&mut self, id: &VisitId) -> Result<VisitSummary>;
    /// Every visit's index row.
    fn list_visits(&mut self) -> Result<Vec<VisitSummary>>;
    /// Before a transaction writes to a stored visit: holds every other
    /// writer of that visit off until the transaction ends (PostgreSQL: its
    /// row, `FOR UPDATE`, and the visit is read afresh after). The embedded
    /// store has one writer and needs nothing.
    fn lock_visit(&mut self, _id: &VisitId) -> Result<()> {
        Ok(())
    }
    /// The visit's document, loaded from what is stored.
    fn visit(&mut self, id: &VisitId) -> Result<&Visit>;
    /// The stored chunks of a visit, concatenated: a loadable document.
    fn stored_bytes(&mut self, id: &VisitId) -> Result<Vec<u8>>;
    /// Stores a visit the server did not hold from the checked bytes it
    /// was loaded from (merged into the stored one if it exists by now).
    fn insert_loaded(&mut self, visit: Visit, bytes: &[u8]) -> Result<VisitSummary>;
    /// [`ServerStore::insert_loaded`] with its summary worked out already.
    fn insert_summarised(
        &mut self,
        visit: Visit,
        bytes: &[u8],
        summary: VisitSummary,
    ) -> Result<VisitSummary>;
    /// Runs `f` on the stored visit and stores what it added (one chunk),
    /// with the index row and the feed.
    fn edit<T>(
        &mut self,
        id: &VisitId,
        f: impl FnOnce(&mut Visit) -> kiemtra_core::Result<T>,
    ) -> Result<T>
    where
        Self: Sized;

    // ---- signatures

    /// Keeps signatures of a visit's changes; one already kept is not kept twice.
    fn record_signatures(&mut self, id: &VisitId, sigs: &[SignatureRecord]) -> Result<()>;
    /// Every kept signature of a visit, oldest first.
    fn signatures_of(&mut self, id: &VisitId) -> Result<Vec<SignatureRecord>>;
    /// The kept signatures covering any of `changes`, oldest first.
    fn signatures_covering(
        &mut self,
        id: &VisitId,
        changes: &[ChangeId],
    ) -> Result<Vec<SignatureRecord>>;

    // ---- the feed

    /// The newest feed row's `(seq, nonce)`; `(0, 0)` when empty.
    fn feed_head(&mut self) -> Result<(u64, u64)>;
    /// Whether a cursor names a row of a generation this database wrote.
    fn feed_cursor_valid(&mut self, seq: u64, nonce: u64) -> Result<bool>;
    /// Visits of `team` (every team for `None`) updated after `after` and
    /// no later than `upto`, oldest first; one row per visit.
    fn feed_since(&mut self, team: Option<&str>, after: u64, upto: u64) -> Result<Vec<FeedEntry>>;

    // ---- devices and enrollment

    fn device(&mut self, device_id: &str) -> Result<Option<DeviceRecord>>;
    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRecord>>;
    /// Every device, in order of enrollment.
    fn devices(&mut self) -> Result<Vec<DeviceRecord>>;
    fn create_enrollment_code(
        &mut self,
        code_hash: &[u8],
        user_id: &str,
        team: &str,
        role: &str,
        created_at: &str,
        expires_at: &str,
    ) -> Result<()>;
    /// Redeems a code (see `Store::redeem_enrollment_code`: a repeat with
    /// the same public key is the same device, with a new token).
    fn redeem_enrollment_code(
        &mut self,
        code_hash: &[u8],
        now: &str,
        device_id: &str,
        device_name: &str,
        token_hash: &[u8],
        public_key: &[u8],
    ) -> Result<std::result::Result<(DeviceRecord, bool), EnrollmentRefusal>>;
    fn revoke_device(&mut self, device_id: &str, now: &str) -> Result<()>;

    // ---- the administration log (`kiemtra_admin::log`)

    /// The entries after `after` (by sequence number), as stored, in order.
    fn admin_log(&mut self, after: u64) -> Result<Vec<(u64, Vec<u8>)>>;
    /// Holds every other appender off until the transaction ends
    /// (PostgreSQL: a table lock; the embedded store has one writer).
    fn lock_admin_log(&mut self) -> Result<()> {
        Ok(())
    }
    /// Appends entry `seq`; `false` (and nothing written) when an entry
    /// with that number is stored already.
    fn append_admin_entry(&mut self, seq: u64, entry: &[u8]) -> Result<bool>;

    // ---- web console accounts and sessions

    fn console_account(&mut self, user_id: &str) -> Result<Option<ConsoleAccount>>;
    /// Sets or replaces a user's password hash; clears failed sign-ins.
    fn set_console_password(&mut self, user_id: &str, hash: &str, at: &str) -> Result<()>;
    /// Records the failed sign-ins since the last good one, and until when
    /// sign-ins are refused.
    fn console_sign_in_result(
        &mut self,
        user_id: &str,
        failed: u32,
        locked_until: Option<&str>,
    ) -> Result<()>;
    fn create_console_session(
        &mut self,
        token_hash: &[u8],
        session: &ConsoleSession,
        created_at: &str,
    ) -> Result<()>;
    fn console_session(&mut self, token_hash: &[u8]) -> Result<Option<ConsoleSession>>;
    /// Ends a session, and every session expired before `now`.
    fn delete_console_session(&mut self, token_hash: &[u8], now: &str) -> Result<()>;

    // ---- evidence files

    /// How much of a file the server holds; `None` when nothing.
    fn evidence_status(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
    ) -> Result<Option<EvidenceStatus>>;
    /// Adds a piece of an upload (see `Store::receive_evidence`: pieces
    /// resume where the held bytes stop; a whole file is checked against its
    /// name and discarded when it does not match).
    fn receive_evidence(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        length: u64,
        offset: u64,
        piece: &[u8],
    ) -> Result<std::result::Result<EvidenceStatus, EvidenceRefusal>>;
    /// Up to `len` bytes of a file held whole, from `offset`; `None` when
    /// the file is not held whole.
    fn evidence_bytes(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>>;

    /// Whether the database takes writes now (a full disk, a read-only
    /// file or a lost connection says no).
    fn check_writable(&mut self) -> Result<()>;

    /// Every covered change of a visit with the first kept signature that
    /// named it, for audits (`index` is `Visit::change_index`).
    fn change_receipts(
        &mut self,
        visit: &VisitId,
        index: &kiemtra_core::ChangeIndex,
    ) -> Result<Receipts> {
        Ok(kiemtra_store::receipts_from(
            self.signatures_of(visit)?,
            index,
        ))
    }
}

impl ServerStore for Store {
    fn session(&self) -> &Session {
        Store::session(self)
    }
    fn begin(&mut self) -> Result<()> {
        Store::begin(self)
    }
    fn commit(&mut self) -> Result<()> {
        Store::commit(self)
    }
    fn rollback(&mut self) {
        Store::rollback(self)
    }
    fn in_transaction(&self) -> bool {
        Store::in_transaction(self)
    }
    fn summary(&mut self, id: &VisitId) -> Result<VisitSummary> {
        Store::summary(self, id)
    }
    fn list_visits(&mut self) -> Result<Vec<VisitSummary>> {
        Store::list_visits(self)
    }
    fn visit(&mut self, id: &VisitId) -> Result<&Visit> {
        Store::visit(self, id)
    }
    fn stored_bytes(&mut self, id: &VisitId) -> Result<Vec<u8>> {
        Store::stored_bytes(self, id)
    }
    fn insert_loaded(&mut self, visit: Visit, bytes: &[u8]) -> Result<VisitSummary> {
        Store::insert_loaded(self, visit, bytes)
    }
    fn insert_summarised(
        &mut self,
        visit: Visit,
        bytes: &[u8],
        summary: VisitSummary,
    ) -> Result<VisitSummary> {
        Store::insert_summarised(self, visit, bytes, summary)
    }
    fn edit<T>(
        &mut self,
        id: &VisitId,
        f: impl FnOnce(&mut Visit) -> kiemtra_core::Result<T>,
    ) -> Result<T> {
        Store::edit(self, id, f)
    }
    fn record_signatures(&mut self, id: &VisitId, sigs: &[SignatureRecord]) -> Result<()> {
        Store::record_signatures(self, id, sigs)
    }
    fn signatures_of(&mut self, id: &VisitId) -> Result<Vec<SignatureRecord>> {
        Store::signatures_of(self, id)
    }
    fn signatures_covering(
        &mut self,
        id: &VisitId,
        changes: &[ChangeId],
    ) -> Result<Vec<SignatureRecord>> {
        Store::signatures_covering(self, id, changes)
    }
    fn feed_head(&mut self) -> Result<(u64, u64)> {
        Store::feed_head(self)
    }
    fn feed_cursor_valid(&mut self, seq: u64, nonce: u64) -> Result<bool> {
        Store::feed_cursor_valid(self, seq, nonce)
    }
    fn feed_since(&mut self, team: Option<&str>, after: u64, upto: u64) -> Result<Vec<FeedEntry>> {
        Store::feed_since(self, team, after, upto)
    }
    fn device(&mut self, device_id: &str) -> Result<Option<DeviceRecord>> {
        Store::device(self, device_id)
    }
    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRecord>> {
        Store::device_by_token(self, token_hash)
    }
    fn devices(&mut self) -> Result<Vec<DeviceRecord>> {
        Store::devices(self)
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
        Store::create_enrollment_code(self, code_hash, user_id, team, role, created_at, expires_at)
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
        Store::redeem_enrollment_code(
            self,
            code_hash,
            now,
            device_id,
            device_name,
            token_hash,
            public_key,
        )
    }
    fn revoke_device(&mut self, device_id: &str, now: &str) -> Result<()> {
        Store::revoke_device(self, device_id, now)
    }
    fn admin_log(&mut self, after: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        Store::admin_log(self, after)
    }
    fn append_admin_entry(&mut self, seq: u64, entry: &[u8]) -> Result<bool> {
        Store::append_admin_entry(self, seq, entry)
    }
    fn console_account(&mut self, user_id: &str) -> Result<Option<ConsoleAccount>> {
        Store::console_account(self, user_id)
    }
    fn set_console_password(&mut self, user_id: &str, hash: &str, at: &str) -> Result<()> {
        Store::set_console_password(self, user_id, hash, at)
    }
    fn console_sign_in_result(
        &mut self,
        user_id: &str,
        failed: u32,
        locked_until: Option<&str>,
    ) -> Result<()> {
        Store::console_sign_in_result(self, user_id, failed, locked_until)
    }
    fn create_console_session(
        &mut self,
        token_hash: &[u8],
        session: &ConsoleSession,
        created_at: &str,
    ) -> Result<()> {
        Store::create_console_session(self, token_hash, session, created_at)
    }
    fn console_session(&mut self, token_hash: &[u8]) -> Result<Option<ConsoleSession>> {
        Store::console_session(self, token_hash)
    }
    fn delete_console_session(&mut self, token_hash: &[u8], now: &str) -> Result<()> {
        Store::delete_console_session(self, token_hash, now)
    }
    fn evidence_status(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
    ) -> Result<Option<EvidenceStatus>> {
        Store::evidence_status(self, visit, hash)
    }
    fn receive_evidence(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        length: u64,
        offset: u64,
        piece: &[u8],
    ) -> Result<std::result::Result<EvidenceStatus, EvidenceRefusal>> {
        Store::receive_evidence(self, visit, hash, length, offset, piece)
    }
    fn evidence_bytes(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>> {
        Store::evidence_bytes(self, visit, hash, offset, len)
    }
    fn check_writable(&mut self) -> Result<()> {
        Store::check_writable(self)
    }
    fn change_receipts(
        &mut self,
        visit: &VisitId,
        index: &kiemtra_core::ChangeIndex,
    ) -> Result<Receipts> {
        Store::change_receipts(self, visit, index)
    }
}
