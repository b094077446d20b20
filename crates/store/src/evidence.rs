//! Evidence files (photos and the like) referenced from a visit by SHA-256.
//!
//! A phone keeps each file it took until the server holds it whole. The
//! server keeps each file as its pieces arrive, so an upload cut off by a
//! dropped link resumes where it stopped. A file is complete only once its
//! bytes hash to the name it was uploaded under.

use kiemtra_core::{CheckId, EvidenceHash, Visit, VisitId};
use ring::digest::{Context, SHA256};
use rusqlite::{OptionalExtension, params};

use crate::error::{Error, Result};
use crate::store::Store;

/// How much of one evidence file a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EvidenceStatus {
    /// The file's whole length, bytes.
    pub length: u64,
    /// Bytes held so far, from the start.
    pub received: u64,
    /// Held whole, and the bytes hash to the file's name.
    pub complete: bool,
}

/// A file this device holds and the server does not yet hold whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvidence {
    pub visit_id: VisitId,
    pub hash: EvidenceHash,
    pub length: u64,
}

/// Why a piece of an upload was refused. Nothing of the piece was kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceRefusal {
    #[error("the file is {held} bytes long, not {claimed}")]
    LengthChanged { held: u64, claimed: u64 },
    #[error(
        "the piece starts at byte {offset}, but only {received} bytes are held; send from {received}"
    )]
    Gap { offset: u64, received: u64 },
    #[error("the piece runs past the file's length ({end} > {length})")]
    PastEnd { end: u64, length: u64 },
    #[error(
        "the bytes received do not hash to {hash}; what was received is discarded, upload it again from the start"
    )]
    Mismatch { hash: String },
}

/// The SHA-256 of `bytes`, as an evidence name.
/// What a store does with an arriving piece of an upload, decided from
/// what it holds of the file (the rule of `Store::receive_evidence`, shared
/// by every server backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiecePlan {
    /// An unfinished upload of another length is dropped first (a piece
    /// from byte 0 restarts it).
    pub restart: bool,
    pub action: PieceAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceAction {
    /// Refused: nothing is added.
    Refuse(EvidenceRefusal),
    /// The file is held whole already: nothing to add.
    Whole(EvidenceStatus),
    /// Keep `piece[skip..]` at byte `at` (the file's row is made first when
    /// `fresh`); the file then holds `received` bytes and is `complete`
    /// (to be checked against its name) when that is its length.
    Append {
        fresh: bool,
        at: u64,
        skip: usize,
        received: u64,
        complete: bool,
    },
}

/// The plan for a piece of `piece_len` bytes at `offset` of a file
/// `length` bytes long, given what is `held` of it.
pub fn plan_piece(
    held: Option<EvidenceStatus>,
    length: u64,
    offset: u64,
    piece_len: usize,
) -> PiecePlan {
    // An unfinished upload of another length is replaced by one that starts
    // again from the beginning: whichever is right hashes to the name, so no
    // upload can block another for good.
    let restart = held.is_some_and(|s| !s.complete && s.length != length && offset == 0);
    let held = if restart { None } else { held };
    let plan = |action| PiecePlan { restart, action };
    let status = match held {
        Some(s) if s.length != length => {
            return plan(PieceAction::Refuse(EvidenceRefusal::LengthChanged {
                held: s.length,
                claimed: length,
            }));
        }
        Some(s) => s,
        None => EvidenceStatus {
            length,
            received: 0,
            complete: false,
        },
    };
    if status.complete {
        return plan(PieceAction::Whole(status));
    }
    let end = offset.saturating_add(piece_len as u64);
    if end > length {
        return plan(PieceAction::Refuse(EvidenceRefusal::PastEnd {
            end,
            length,
        }));
    }
    if offset > status.received {
        return plan(PieceAction::Refuse(EvidenceRefusal::Gap {
            offset,
            received: status.received,
        }));
    }
    let skip = (status.received - offset).min(piece_len as u64) as usize;
    let received = status.received + (piece_len - skip) as u64;
    plan(PieceAction::Append {
        fresh: held.is_none(),
        at: status.received,
        skip,
        received,
        complete: received == length,
    })
}

/// Appends to `out` the part of a stored piece (`data` at byte `at`) that
/// falls within `offset..end` of the file.
pub fn copy_range(out: &mut Vec<u8>, at: u64, data: &[u8], offset: u64, end: u64) {
    let (from, to) = (at, at + data.len() as u64);
    if to <= offset || from >= end {
        return;
    }
    let a = (offset.max(from) - from) as usize;
    let b = (end.min(to) - from) as usize;
    out.extend_from_slice(&data[a..b]);
}

pub fn evidence_hash(bytes: &[u8]) -> EvidenceHash {
    let digest = ring::digest::digest(&SHA256, bytes);
    EvidenceHash::parse(&kiemtra_core::hex::encode(digest.as_ref()))
        .expect("a SHA-256 digest is 64 hex digits")
}

impl Store {
    /// Keeps a file taken on this device and references it from an office
    /// check of the visit, in one transaction: the reference and the bytes
    /// are durable together. Returns the file's name (its SHA-256).
    pub fn add_evidence(
        &mut self,
        visit: &VisitId,
        check: &CheckId,
        bytes: &[u8],
    ) -> Result<EvidenceHash> {
        let hash = evidence_hash(bytes);
        let now = self.session().now().to_rfc3339();
        self.batch(|store| {
            store.conn().execute(
                "INSERT OR IGNORE INTO evidence (visit_id, hash, length, received, complete, created_at)
                 VALUES (?1, ?2, ?3, ?3, 1, ?4)",
                params![visit.as_str(), hash.as_str(), bytes.len() as i64, now],
            )?;
            store.conn().execute(
                "INSERT OR IGNORE INTO evidence_pieces (visit_id, hash, at, data) VALUES (?1, ?2, 0, ?3)",
                params![visit.as_str(), hash.as_str(), bytes],
            )?;
            store.edit(visit, |v: &mut Visit| v.attach_evidence(check, &hash))?;
            Ok(())
        })?;
        Ok(hash)
    }

    /// How much of a file this store holds; `None` when nothing.
    pub fn evidence_status(
        &self,
        visit: &VisitId,
        hash: &EvidenceHash,
    ) -> Result<Option<EvidenceStatus>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT length, received, complete FROM evidence WHERE visit_id = ?1 AND hash = ?2",
                params![visit.as_str(), hash.as_str()],
                |r| {
                    Ok(EvidenceStatus {
                        length: r.get::<_, i64>(0)? as u64,
                        received: r.get::<_, i64>(1)? as u64,
                        complete: r.get::<_, i64>(2)? == 1,
                    })
                },
            )
            .optional()?)
    }

    /// Adds a piece of an upload that starts at byte `offset` of a file
    /// `length` bytes long (the server's side). A piece overlapping what is
    /// held already (a retry after a lost answer) adds only what is new; a
    /// piece for a file held whole changes nothing. A piece from byte 0 with
    /// another length restarts an unfinished upload. When the last byte
    /// arrives the file is checked against its name: a file that does not
    /// match is discarded whole. A refused piece leaves the store as it was
    /// (except that a mismatched file is gone).
    pub fn receive_evidence(
        &mut self,
        visit: &VisitId,
        hash: &EvidenceHash,
        length: u64,
        offset: u64,
        piece: &[u8],
    ) -> Result<std::result::Result<EvidenceStatus, EvidenceRefusal>> {
        let now = self.session().now().to_rfc3339();
        let outcome = self.batch(|store| {
            let held = store.evidence_status(visit, hash)?;
            let plan = plan_piece(held, length, offset, piece.len());
            if plan.restart {
                store.conn().execute(
                    "DELETE FROM evidence WHERE visit_id = ?1 AND hash = ?2",
                    params![visit.as_str(), hash.as_str()],
                )?;
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
                store.conn().execute(
                    // Received, so nothing of it is this store's to upload.
                    "INSERT INTO evidence (visit_id, hash, length, received, complete, uploaded, created_at)
                     VALUES (?1, ?2, ?3, 0, 0, 1, ?4)",
                    params![visit.as_str(), hash.as_str(), length as i64, now],
                )?;
            }
            if skip < piece.len() {
                store.conn().execute(
                    "INSERT INTO evidence_pieces (visit_id, hash, at, data) VALUES (?1, ?2, ?3, ?4)",
                    params![visit.as_str(), hash.as_str(), at as i64, &piece[skip..]],
                )?;
            }
            if complete && store.hash_of_pieces(visit, hash)? != *hash {
                store.conn().execute(
                    "DELETE FROM evidence WHERE visit_id = ?1 AND hash = ?2",
                    params![visit.as_str(), hash.as_str()],
                )?;
                return Ok(Err(EvidenceRefusal::Mismatch {
                    hash: hash.to_string(),
                }));
            }
            store.conn().execute(
                "UPDATE evidence SET received = ?3, complete = ?4 WHERE visit_id = ?1 AND hash = ?2",
                params![visit.as_str(), hash.as_str(), received as i64, complete as i64],
            )?;
            Ok(Ok(EvidenceStatus {
                length,
                received,
                complete,
            }))
        })?;
        Ok(outcome)
    }

    fn hash_of_pieces(&self, visit: &VisitId, hash: &EvidenceHash) -> Result<EvidenceHash> {
        let mut ctx = Context::new(&SHA256);
        let mut stmt = self.conn().prepare_cached(
            "SELECT data FROM evidence_pieces WHERE visit_id = ?1 AND hash = ?2 ORDER BY at",
        )?;
        let mut rows = stmt.query(params![visit.as_str(), hash.as_str()])?;
        while let Some(row) = rows.next()? {
            let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            ctx.update(data);
        }
        Ok(EvidenceHash::parse(&kiemtra_core::hex::encode(
            ctx.finish().as_ref(),
        ))?)
    }

    /// `len` bytes (fewer at the end) of a file held whole, from `offset`;
    /// `None` when the file is not held whole.
    pub fn evidence_bytes(
        &self,
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
        let mut stmt = self.conn().prepare_cached(
            "SELECT at, data FROM evidence_pieces WHERE visit_id = ?1 AND hash = ?2 ORDER BY at",
        )?;
        let mut rows = stmt.query(params![visit.as_str(), hash.as_str()])?;
        while let Some(row) = rows.next()? {
            let at = row.get::<_, i64>(0)? as u64;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            copy_range(&mut out, at, data, offset, end);
        }
        Ok(Some(out))
    }

    /// The files this device holds whole that the server does not yet hold
    /// whole, oldest first.
    pub fn evidence_to_upload(&self) -> Result<Vec<PendingEvidence>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT visit_id, hash, length FROM evidence
             WHERE complete = 1 AND uploaded = 0 ORDER BY created_at, visit_id, hash",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (visit, hash, length) = row?;
            out.push(PendingEvidence {
                visit_id: VisitId::parse(&visit)?,
                hash: EvidenceHash::parse(&hash)?,
                length: length as u64,
            });
        }
        Ok(out)
    }

    /// Records that the server holds the file whole (the device keeps its
    /// copy; the inspector's gallery still shows it).
    pub fn mark_evidence_uploaded(&mut self, visit: &VisitId, hash: &EvidenceHash) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE evidence SET uploaded = 1 WHERE visit_id = ?1 AND hash = ?2 AND complete = 1",
            params![visit.as_str(), hash.as_str()],
        )?;
        if n == 0 {
            return Err(Error::Refused(format!(
                "no complete evidence {hash} of visit {visit} is held here"
            )));
        }
        Ok(())
    }
}
