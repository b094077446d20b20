//! Server-side records: enrolled devices, enrollment codes, the visit feed;
//! and device-side settings. Secrets arrive already hashed: the store never
//! sees a code or token in plaintext.

use automerge::ChangeHash;
use kiemtra_core::VisitId;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::store::Store;

/// A change this device made: its hash, actor and sequence number.
pub type OwnChange = (ChangeHash, Vec<u8>, u64);

/// A web console account: the user's password as its argon2id hash, and
/// the failed sign-ins since the last good one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAccount {
    pub user_id: String,
    /// The PHC string (`$argon2id$…`).
    pub password: String,
    pub failed: u32,
    /// Sign-ins are refused until then (RFC 3339), after too many failures.
    pub locked_until: Option<String>,
}

/// A web console session, found by the SHA-256 of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub user_id: String,
    /// The token every form of the session carries back (CSRF).
    pub csrf: String,
    pub expires_at: String,
}

/// An enrolled device as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub device_id: String,
    pub user_id: String,
    pub team: String,
    pub role: String,
    pub name: String,
    pub enrolled_at: String,
    pub revoked_at: Option<String>,
    /// The device's Ed25519 public key (32 bytes).
    pub public_key: Vec<u8>,
}

/// A device's signature over a batch of its changes of one visit. The
/// batch is kept as actor and sequence ranges only: the hashes it signs are
/// read off the visit's document when needed ([`Receipts`]), so a
/// 500-change batch costs a few dozen bytes to keep, not 16 KB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRecord {
    pub signer: String,
    /// The changes by actor and sequence: `(actor bytes, first, last)`.
    pub ranges: Vec<(Vec<u8>, u64, u64)>,
    pub signature: Vec<u8>,
    pub received_at: String,
}

impl SignatureRecord {
    /// Whether the batch names the change `(actor, seq)`.
    pub fn covers(&self, actor: &[u8], seq: u64) -> bool {
        self.ranges
            .iter()
            .any(|(a, first, last)| a.as_slice() == actor && (*first..=*last).contains(&seq))
    }
}

/// A kept signature with the hashes its ranges name in the visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub record: SignatureRecord,
    /// The hashes the signature was made over (its message).
    pub hashes: Vec<ChangeHash>,
}

/// Every covered change of a visit with the first kept signature naming
/// it, and the kept signatures whose ranges name changes the document does
/// not hold (for audits: signed, received, then lost).
#[derive(Debug, Clone, Default)]
pub struct Receipts {
    pub changes: Vec<(ChangeHash, std::sync::Arc<Receipt>)>,
    pub unresolved: Vec<SignatureRecord>,
}

/// An enrollment code as stored: user, team, role, expiry, when it was
/// used and by which device.
type CodeRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// Why an enrollment code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentRefusal {
    Unknown,
    Used,
    Expired,
}

/// One entry of the feed: the latest update of a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub visit_id: String,
    pub seq: u64,
    pub nonce: u64,
}

fn read_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_id: r.get(0)?,
        user_id: r.get(1)?,
        team: r.get(2)?,
        role: r.get(3)?,
        name: r.get(4)?,
        enrolled_at: r.get(5)?,
        revoked_at: r.get(6)?,
        public_key: r.get(7)?,
    })
}

const DEVICE_COLUMNS: &str =
    "device_id, user_id, team, role, name, enrolled_at, revoked_at, public_key";

/// A signature's ranges as kept: JSON `[[actor hex, first, last], …]`.
pub fn ranges_json(ranges: &[(Vec<u8>, u64, u64)]) -> String {
    let rows: Vec<(String, u64, u64)> = ranges
        .iter()
        .map(|(a, f, l)| (a.iter().map(|b| format!("{b:02x}")).collect(), *f, *l))
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

/// A signature's ranges from [`ranges_json`]; `None` when they do not parse.
pub fn ranges_from_json(json: &str) -> Option<Vec<(Vec<u8>, u64, u64)>> {
    let rows: Vec<(String, u64, u64)> = serde_json::from_str(json).ok()?;
    rows.into_iter()
        .map(|(a, f, l)| Some((kiemtra_core::hex::decode(&a)?, f, l)))
        .collect()
}

fn parse_ranges(json: &str) -> Vec<(Vec<u8>, u64, u64)> {
    ranges_from_json(json).unwrap_or_default()
}

/// Of kept signatures read newest first, those covering any of `changes`
/// (each with its actor and sequence number), oldest first; reading stops
/// once every change is covered, so a long history's older signatures are
/// not read.
pub fn covering_newest_first<E>(
    newest_first: impl IntoIterator<Item = std::result::Result<SignatureRecord, E>>,
    changes: &[(ChangeHash, Vec<u8>, u64)],
) -> std::result::Result<Vec<SignatureRecord>, E> {
    let mut left: Vec<&(ChangeHash, Vec<u8>, u64)> = changes.iter().collect();
    let mut out = Vec::new();
    if left.is_empty() {
        return Ok(out);
    }
    for s in newest_first {
        let s = s?;
        let before = left.len();
        left.retain(|(_, actor, seq)| !s.covers(actor, *seq));
        if left.len() < before {
            out.push(s);
        }
        if left.is_empty() {
            break;
        }
    }
    out.reverse();
    Ok(out)
}

/// Every covered change with the first of `records` (oldest first) that
/// named it; `index` turns each signature's ranges into hashes.
pub fn receipts_from(records: Vec<SignatureRecord>, index: &kiemtra_core::ChangeIndex) -> Receipts {
    let mut seen = HashSet::new();
    let mut out = Receipts::default();
    for record in records {
        let Some(hashes) = index.hashes(&record.ranges) else {
            out.unresolved.push(record);
            continue;
        };
        let receipt = std::sync::Arc::new(Receipt { record, hashes });
        for h in &receipt.hashes {
            if seen.insert(*h) {
                out.changes.push((*h, receipt.clone()));
            }
        }
    }
    out
}

fn read_signature(r: &rusqlite::Row<'_>) -> rusqlite::Result<SignatureRecord> {
    Ok(SignatureRecord {
        signer: r.get(0)?,
        signature: r.get(1)?,
        received_at: r.get(2)?,
        ranges: parse_ranges(&r.get::<_, String>(3)?),
    })
}

fn insert_signature(
    tx: &rusqlite::Savepoint<'_>,
    visit: &VisitId,
    s: &SignatureRecord,
) -> rusqlite::Result<()> {
    // The same signature (signer, ranges and bytes) is kept once, however
    // often it arrives (from the server, from bundles): a device must
    // never send one twice.
    tx.prepare_cached(
        "INSERT INTO signatures (visit_id, signer, ranges, signature, received_at)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM signatures
         WHERE visit_id = ?1 AND signer = ?2 AND ranges = ?3 AND signature = ?4)",
    )?
    .execute(params![
        visit.as_str(),
        s.signer,
        ranges_json(&s.ranges),
        s.signature,
        s.received_at
    ])?;
    Ok(())
}

impl Store {
    /// Records a new enrollment code (by its digest).
    pub fn create_enrollment_code(
        &mut self,
        code_hash: &[u8],
        user_id: &str,
        team: &str,
        role: &str,
        created_at: &str,
        expires_at: &str,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO enrollment_codes (code_hash, user_id, team, role, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![code_hash, user_id, team, role, created_at, expires_at],
        )?;
        Ok(())
    }

    /// Redeems a code: on success the device is enrolled with the code's
    /// user, team and role, and no other device can use the code again.
    /// Answers the device and whether this was a retry (below).
    ///
    /// A used code redeemed again with the **same public key** before it
    /// expires is a retry by the device whose answer was lost: the same
    /// device is answered (with its stored name), its token becomes
    /// `token_hash` and the token it had stops working; no second device is
    /// made. A used code with another key, or whose device was revoked, is
    /// refused as [`EnrollmentRefusal::Used`]. Times are RFC 3339 UTC
    /// strings, which compare in time order.
    pub fn redeem_enrollment_code(
        &mut self,
        code_hash: &[u8],
        now: &str,
        device_id: &str,
        device_name: &str,
        token_hash: &[u8],
        public_key: &[u8],
    ) -> Result<std::result::Result<(DeviceRecord, bool), EnrollmentRefusal>> {
        let tx = self.conn_mut().savepoint()?;
        let row: Option<CodeRow> = tx
            .query_row(
                "SELECT user_id, team, role, expires_at, used_at, device_id FROM enrollment_codes WHERE code_hash = ?1",
                [code_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((user_id, team, role, expires_at, used_at, used_by)) = row else {
            return Ok(Err(EnrollmentRefusal::Unknown));
        };
        if expires_at.as_str() <= now {
            return Ok(Err(if used_at.is_some() {
                EnrollmentRefusal::Used
            } else {
                EnrollmentRefusal::Expired
            }));
        }
        if used_at.is_some() {
            let enrolled = match used_by {
                Some(id) => tx
                    .query_row(
                        &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?1"),
                        [&id],
                        read_device,
                    )
                    .optional()?,
                None => None,
            };
            let Some(record) = enrolled
                .filter(|d| d.revoked_at.is_none() && d.public_key.as_slice() == public_key)
            else {
                return Ok(Err(EnrollmentRefusal::Used));
            };
            tx.execute(
                "UPDATE devices SET token_hash = ?2 WHERE device_id = ?1",
                params![record.device_id, token_hash],
            )?;
            tx.commit()?;
            return Ok(Ok((record, true)));
        }
        tx.execute(
            "UPDATE enrollment_codes SET used_at = ?2, device_id = ?3 WHERE code_hash = ?1",
            params![code_hash, now, device_id],
        )?;
        tx.execute(
            "INSERT INTO devices (device_id, user_id, team, role, name, token_hash, enrolled_at, public_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![device_id, user_id, team, role, device_name, token_hash, now, public_key],
        )?;
        tx.commit()?;
        let record = DeviceRecord {
            device_id: device_id.into(),
            user_id,
            team,
            role,
            name: device_name.into(),
            enrolled_at: now.into(),
            revoked_at: None,
            public_key: public_key.to_vec(),
        };
        Ok(Ok((record, false)))
    }

    /// The device holding a token (by digest), revoked or not.
    pub fn device_by_token(&self, token_hash: &[u8]) -> Result<Option<DeviceRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token_hash = ?1"),
                [token_hash],
                read_device,
            )
            .optional()?)
    }

    /// A device by its id, revoked or not.
    pub fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?1"),
                [device_id],
                read_device,
            )
            .optional()?)
    }

    /// Keeps signatures for a visit: one row per signed batch. A covered
    /// change's receipt is the first kept signature naming it.
    pub fn record_signatures(&mut self, visit: &VisitId, sigs: &[SignatureRecord]) -> Result<()> {
        let tx = self.conn_mut().savepoint()?;
        for s in sigs {
            insert_signature(&tx, visit, s)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Changes of a visit this device made and has not signed yet, oldest
    /// first, as `(hash, actor, seq)`, with a mark to pass to
    /// [`Store::record_own_signature`].
    pub fn own_unsigned(&self, visit: &VisitId) -> Result<(Vec<OwnChange>, i64)> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, hash, actor, seq FROM own_changes WHERE visit_id = ?1
             AND id > coalesce((SELECT mark FROM own_signed WHERE visit_id = ?1), 0)
             ORDER BY id",
        )?;
        // Read in place: one row per edit, so no allocation per hash.
        let rows = stmt.query_map([visit.as_str()], |r| {
            let hash = <[u8; 32]>::try_from(r.get_ref(1)?.as_blob()?).ok();
            Ok((
                r.get::<_, i64>(0)?,
                hash,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        let mut mark = 0;
        for row in rows {
            let (id, hash, actor, seq) = row?;
            mark = mark.max(id);
            if let Some(h) = hash {
                out.push((ChangeHash(h), actor, u64::try_from(seq).unwrap_or(0)));
            }
        }
        Ok((out, mark))
    }

    /// Keeps this device's signature over its own changes and forgets them
    /// as unsigned (up to `mark` from [`Store::own_unsigned`]), in one
    /// transaction.
    pub fn record_own_signature(
        &mut self,
        visit: &VisitId,
        record: &SignatureRecord,
        mark: i64,
    ) -> Result<()> {
        let tx = self.conn_mut().savepoint()?;
        insert_signature(&tx, visit, record)?;
        tx.execute(
            "INSERT INTO own_signed (visit_id, mark) VALUES (?1, ?2)
             ON CONFLICT (visit_id) DO UPDATE SET mark = max(mark, excluded.mark)",
            params![visit.as_str(), mark],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Which of `changes` (each with its actor and sequence number, see
    /// `Visit::change_ids`) some kept signature covers.
    pub fn signed_among(
        &self,
        visit: &VisitId,
        changes: &[(ChangeHash, Vec<u8>, u64)],
    ) -> Result<HashSet<ChangeHash>> {
        if changes.is_empty() {
            return Ok(HashSet::new());
        }
        let kept = self.signatures_of(visit)?;
        Ok(changes
            .iter()
            .filter(|(_, actor, seq)| kept.iter().any(|s| s.covers(actor, *seq)))
            .map(|(h, _, _)| *h)
            .collect())
    }

    /// The kept signatures that cover any of `changes` (each with its actor
    /// and sequence number, see `Visit::change_ids`), oldest first.
    pub fn signatures_covering(
        &self,
        visit: &VisitId,
        changes: &[(ChangeHash, Vec<u8>, u64)],
    ) -> Result<Vec<SignatureRecord>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn().prepare_cached(
            "SELECT signer, signature, received_at, ranges FROM signatures WHERE visit_id = ?1 ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([visit.as_str()], read_signature)?;
        Ok(covering_newest_first(rows, changes)?)
    }

    /// Every kept signature of a visit, oldest first.
    pub fn signatures_of(&self, visit: &VisitId) -> Result<Vec<SignatureRecord>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT signer, signature, received_at, ranges FROM signatures WHERE visit_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([visit.as_str()], read_signature)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every covered change of a visit with the first kept signature that
    /// named it (and so when it first arrived), for audits. `index` is the
    /// visit's change index (`Visit::change_index`), which turns each
    /// signature's ranges into the hashes it was made over.
    pub fn change_receipts(
        &self,
        visit: &VisitId,
        index: &kiemtra_core::ChangeIndex,
    ) -> Result<Receipts> {
        Ok(receipts_from(self.signatures_of(visit)?, index))
    }

    pub fn devices(&self) -> Result<Vec<DeviceRecord>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at"
        ))?;
        let rows = stmt.query_map([], read_device)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a device; its next request is refused.
    /// The administration log's entries after `after`, in order.
    pub fn admin_log(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT seq, entry FROM admin_log WHERE seq > ?1 ORDER BY seq")?;
        let rows = stmt
            .query_map(params![after as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn console_account(&self, user_id: &str) -> Result<Option<ConsoleAccount>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT user_id, password, failed, locked_until FROM console_accounts WHERE user_id = ?1",
                params![user_id],
                |r| {
                    Ok(ConsoleAccount {
                        user_id: r.get(0)?,
                        password: r.get(1)?,
                        failed: r.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
                        locked_until: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Sets (or replaces) a user's password hash; clears failed sign-ins.
    pub fn set_console_password(&mut self, user_id: &str, hash: &str, at: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO console_accounts (user_id, password, failed, locked_until, set_at) \
             VALUES (?1, ?2, 0, NULL, ?3) \
             ON CONFLICT (user_id) DO UPDATE SET password = ?2, failed = 0, locked_until = NULL, set_at = ?3",
            params![user_id, hash, at],
        )?;
        Ok(())
    }

    /// Records the failed sign-ins since the last good one (0 after a good one).
    pub fn console_sign_in_result(
        &mut self,
        user_id: &str,
        failed: u32,
        locked_until: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE console_accounts SET failed = ?2, locked_until = ?3 WHERE user_id = ?1",
            params![user_id, i64::from(failed), locked_until],
        )?;
        Ok(())
    }

    pub fn create_console_session(
        &mut self,
        token_hash: &[u8],
        s: &ConsoleSession,
        created_at: &str,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO console_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token_hash, s.user_id, s.csrf, created_at, s.expires_at],
        )?;
        Ok(())
    }

    pub fn console_session(&self, token_hash: &[u8]) -> Result<Option<ConsoleSession>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT user_id, csrf, expires_at FROM console_sessions WHERE token_hash = ?1",
                params![token_hash],
                |r| {
                    Ok(ConsoleSession {
                        user_id: r.get(0)?,
                        csrf: r.get(1)?,
                        expires_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Ends a session; and every session that expired before `now`.
    pub fn delete_console_session(&mut self, token_hash: &[u8], now: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM console_sessions WHERE token_hash = ?1 OR expires_at < ?2",
            params![token_hash, now],
        )?;
        Ok(())
    }

    /// Appends entry `seq`; false when an entry `seq` is stored already.
    pub fn append_admin_entry(&mut self, seq: u64, entry: &[u8]) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO admin_log (seq, entry) VALUES (?1, ?2)",
            params![seq as i64, entry],
        )?;
        Ok(n == 1)
    }

    pub fn revoke_device(&mut self, device_id: &str, now: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE devices SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL",
            params![device_id, now],
        )?;
        if n == 0 {
            return Err(Error::Corrupt(format!("no active device {device_id}")));
        }
        Ok(())
    }

    /// The newest feed entry (0, 0 when the feed is empty).
    pub fn feed_head(&self) -> Result<(u64, u64)> {
        Ok(self
            .conn()
            .query_row(
                "SELECT seq, nonce FROM feed ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .optional()?
            .unwrap_or((0, 0)))
    }

    /// Whether a device's cursor `(seq, nonce)` names a feed row this
    /// database wrote: `nonce` is a generation of this database and `seq`
    /// lies within the rows it had written. Holds after the row itself was
    /// superseded and dropped; fails for a cursor from a newer state than a
    /// restored backup holds (its generation unknown here, or its row past
    /// the generation's last one here), and for seq 0.
    pub fn feed_cursor_valid(&self, seq: u64, nonce: u64) -> Result<bool> {
        let (Ok(seq), Ok(nonce)) = (i64::try_from(seq), i64::try_from(nonce)) else {
            return Ok(false);
        };
        if seq == 0 {
            return Ok(false);
        }
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT 1 FROM feed_generations WHERE nonce = ?1 AND first_seq <= ?2 AND ?2 <= last_seq",
            )?
            .query_row(params![nonce, seq], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Visits of `team` (of every team for `None`) whose latest update is
    /// after `after` and no later than `upto`, oldest first. The feed holds
    /// one row per visit, its latest update.
    pub fn feed_since(&self, team: Option<&str>, after: u64, upto: u64) -> Result<Vec<FeedEntry>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT visit_id, seq, nonce FROM feed
             WHERE (?1 IS NULL OR team = ?1) AND seq > ?2 AND seq <= ?3
             ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![team, after as i64, upto as i64], |r| {
            Ok(FeedEntry {
                visit_id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                nonce: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A device-side setting (cursor, credentials, server URL).
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn delete_setting(&mut self, key: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM settings WHERE key = ?1", [key])?;
        Ok(())
    }

    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}
