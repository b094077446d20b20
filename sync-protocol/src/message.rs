//! The two messages of `POST /v1/sync` and their encoding.

use std::collections::HashSet;

use crate::error::DecodeError;
use crate::wire::{MAX_ID, MAX_MESSAGE, Reader, Writer};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 5;
/// Media type of both messages.
pub const MEDIA_TYPE: &str = "application/x-kiemtra-sync";
const REQUEST_MAGIC: &[u8; 4] = b"KTSQ";
const RESPONSE_MAGIC: &[u8; 4] = b"KTSR";
/// Most visits one message may carry.
pub const MAX_VISITS: usize = 10_000;

/// A 32-byte Automerge change hash.
pub type Hash = [u8; 32];

/// Most signatures one visit may carry in a message.
pub const MAX_SIGNATURES: usize = 4096;
/// Most change hashes one signature may cover.
pub const MAX_SIGNED: usize = 4096;

/// Changes of one Automerge actor with sequence numbers `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeqRange {
    /// The actor id bytes (at most 32).
    pub actor: Vec<u8>,
    pub first: u64,
    pub last: u64,
}

/// A device's Ed25519 signature over a batch of changes it authored in one
/// visit. On the wire the batch is named by actor and sequence ranges (a
/// few bytes, however many changes); the signed bytes are
/// [`Signature::message`] over the hashes of those changes, which each side
/// derives from the changes themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The signing device's id.
    pub signer: String,
    /// The changes covered.
    pub ranges: Vec<SeqRange>,
    /// 64 bytes.
    pub signature: Vec<u8>,
}

impl Signature {
    /// The bytes a device signs: a domain tag, the visit id, a zero byte,
    /// then the change hashes sorted ascending.
    pub fn message(visit_id: &str, hashes: &[Hash]) -> Vec<u8> {
        let mut sorted = hashes.to_vec();
        sorted.sort();
        let mut m = Vec::with_capacity(24 + visit_id.len() + 32 * sorted.len());
        m.extend_from_slice(b"kiemtra-changes-v1\0");
        m.extend_from_slice(visit_id.as_bytes());
        m.push(0);
        for h in &sorted {
            m.extend_from_slice(h);
        }
        m
    }
}

/// Where a device is in the server's feed of visit updates: the sequence
/// number of the last entry it has seen and that entry's nonce, which lets
/// the server notice a cursor from a database it no longer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub seq: u64,
    pub nonce: u64,
}

/// One visit the device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitOffer {
    pub visit_id: String,
    /// The device's current heads.
    pub heads: Vec<Hash>,
    /// The heads the server last confirmed; `None` when the device has no
    /// confirmation (never synced this visit, or state was reset).
    pub confirmed: Option<Vec<Hash>>,
    /// Automerge bytes of what the device has beyond `confirmed` (all of it
    /// when `confirmed` is `None`); empty when there is nothing new.
    pub changes: Vec<u8>,
    /// Signatures covering the changes in `changes` (the device's own, and
    /// those it received with changes of others).
    pub signatures: Vec<Signature>,
    /// `heads` and `confirmed` were left off the wire because `changes`
    /// imply them (flag bit 2): for a whole document, its heads and no
    /// confirmation; for changes, the ones no other sent change depends on,
    /// and as the confirmation the dependencies outside them. A decoded
    /// implied offer has empty `heads`, and `confirmed` is `Some(empty)` for
    /// changes and `None` for a document; the server works out the rest.
    pub implied: bool,
}

/// A device's sync request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncRequest {
    pub cursor: Cursor,
    /// Most response bytes the device wants in one answer (the server may send fewer).
    pub max_response: u64,
    pub visits: Vec<VisitOffer>,
}

/// What the server did with one visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisitStatus {
    /// Applied; `heads` are the server's, `changes` what the device lacks.
    Ok = 0,
    /// The server lacks changes the device thought it had (a restored
    /// server): send everything after the server heads you know.
    Resend = 1,
    /// Not processed this time (response budget); offer it again.
    Deferred = 2,
    /// The device's user may not read or write this visit.
    Denied = 3,
    /// The changes are malformed or not of this visit; nothing stored.
    Invalid = 4,
    /// The server has no such visit and was sent nothing to create it from.
    Unknown = 5,
}

impl VisitStatus {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => Self::Ok,
            1 => Self::Resend,
            2 => Self::Deferred,
            3 => Self::Denied,
            4 => Self::Invalid,
            5 => Self::Unknown,
            value => {
                return Err(DecodeError::UnknownValue {
                    what: "visit status",
                    value,
                });
            }
        })
    }
}

/// The server's answer for one visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitResult {
    pub visit_id: String,
    pub status: VisitStatus,
    /// The server's heads after applying (empty unless `Ok` or `Resend`).
    pub heads: Vec<Hash>,
    /// What the device lacks: changes, or a whole document for a visit new to it.
    pub changes: Vec<u8>,
    /// Signatures covering the changes sent.
    pub signatures: Vec<Signature>,
    /// Why, for errors; empty otherwise.
    pub message: String,
    /// For a whole document sent to a device that has nothing of the
    /// visit: the server's listing of it (version 5), so the device can
    /// list the visit before it loads the document. `None` otherwise.
    pub listing: Option<Listing>,
}

/// What a visit list shows of a visit, as the server's index holds it for
/// the same document: derived data that a device shows until it first
/// loads the document and works it out itself (SPEC §7). Never a source of
/// truth: the document is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    pub unit_code: String,
    pub unit_name: String,
    pub unit_kind: String,
    pub campaign: String,
    pub team: String,
    /// `YYYY-MM-DD`.
    pub scheduled_on: String,
    /// `draft`, `submitted`, `approved` or `returned`.
    pub status: String,
    pub conflicts: u32,
    pub payroll: u32,
    pub present: u32,
    pub late: u32,
    pub absent: u32,
    pub unrecorded: u32,
    /// Absence reason keys with their counts, in key order.
    pub absent_by_reason: Vec<(String, u32)>,
}

/// Most absence reasons a listing may name.
pub const MAX_REASONS: usize = 32;

/// The server's sync response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    pub cursor: Cursor,
    /// More is waiting (budget reached): sync again with the new cursor.
    pub more: bool,
    pub visits: Vec<VisitResult>,
}

/// What each decoded element is charged against the decode budget (its
/// in-memory size, rounded up; a visit's also covers its entry in the set of
/// ids seen), and the fewest wire bytes it can take.
pub(crate) const OFFER_WEIGHT: usize = 168;
pub(crate) const RESULT_WEIGHT: usize = 384;
pub(crate) const SIGNATURE_WEIGHT: usize = 72;
pub(crate) const RANGE_WEIGHT: usize = 40;
pub(crate) const REASON_WEIGHT: usize = 32;
// The slack holds the largest visit list whatever the input length.
const _: () = assert!(crate::wire::DECODE_SLACK >= MAX_VISITS * RESULT_WEIGHT);
const OFFER_MIN_WIRE: usize = 5;
const RESULT_MIN_WIRE: usize = 7;
const SIGNATURE_MIN_WIRE: usize = 3;
const RANGE_MIN_WIRE: usize = 3;
const REASON_MIN_WIRE: usize = 2;

const FLAG_CONFIRMED: u8 = 0b01;
const FLAG_CONFIRMED_IS_HEADS: u8 = 0b10;
const FLAG_IMPLIED: u8 = 0b100;

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.buf.extend_from_slice(REQUEST_MAGIC);
        w.u8(PROTOCOL_VERSION);
        w.varint(self.cursor.seq);
        w.u64_le(self.cursor.nonce);
        w.varint(self.max_response);
        w.varint(self.visits.len() as u64);
        for v in &self.visits {
            w.str(&v.visit_id);
            let flags = match (&v.confirmed, v.implied) {
                (None, true) => FLAG_IMPLIED,
                (Some(_), true) => FLAG_IMPLIED | FLAG_CONFIRMED,
                (None, false) => 0,
                (Some(c), false) if *c == v.heads => FLAG_CONFIRMED | FLAG_CONFIRMED_IS_HEADS,
                (Some(_), false) => FLAG_CONFIRMED,
            };
            w.u8(flags);
            if !v.implied {
                w.hashes(&v.heads);
                if let Some(c) = &v.confirmed
                    && flags & FLAG_CONFIRMED_IS_HEADS == 0
                {
                    w.hashes(c);
                }
            }
            w.bytes(&v.changes);
            write_signatures(&mut w, &v.signatures);
        }
        w.buf
    }

    /// Decodes a request; `max_changes` bounds each visit's change bytes.
    pub fn decode(bytes: &[u8], max_changes: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.expect_bytes(REQUEST_MAGIC, "magic")?;
        check_version(r.u8("version")?)?;
        let cursor = Cursor {
            seq: r.varint("cursor")?,
            nonce: r.u64_le("cursor nonce")?,
        };
        let max_response = r.varint("max_response")?;
        let (n, capacity) = r.count("visit count", MAX_VISITS, OFFER_MIN_WIRE, OFFER_WEIGHT)?;
        let mut seen = HashSet::with_capacity(capacity);
        let mut visits = Vec::with_capacity(capacity);
        for _ in 0..n {
            let visit_id = read_visit_id(&mut r, &mut seen)?;
            let flags = r.u8("flags")?;
            let implied = flags & FLAG_IMPLIED != 0;
            if flags & !(FLAG_CONFIRMED | FLAG_CONFIRMED_IS_HEADS | FLAG_IMPLIED) != 0
                || (flags & FLAG_CONFIRMED_IS_HEADS != 0
                    && (flags & FLAG_CONFIRMED == 0 || implied))
            {
                return Err(DecodeError::UnknownValue {
                    what: "flags",
                    value: flags,
                });
            }
            let (heads, confirmed) = if implied {
                (Vec::new(), (flags & FLAG_CONFIRMED != 0).then(Vec::new))
            } else {
                let heads = r.hashes("heads")?;
                let confirmed = if flags & FLAG_CONFIRMED == 0 {
                    None
                } else if flags & FLAG_CONFIRMED_IS_HEADS != 0 {
                    r.charge(32 * heads.len())?;
                    Some(heads.clone())
                } else {
                    Some(r.hashes("confirmed heads")?)
                };
                (heads, confirmed)
            };
            let changes = r.byte_vec("changes", max_changes)?;
            if implied && changes.is_empty() {
                return Err(DecodeError::ImpliedWithoutChanges(visit_id));
            }
            let signatures = read_signatures(&mut r, true)?;
            visits.push(VisitOffer {
                visit_id,
                heads,
                confirmed,
                changes,
                signatures,
                implied,
            });
        }
        r.finish()?;
        Ok(Self {
            cursor,
            max_response,
            visits,
        })
    }
}

impl SyncResponse {
    pub fn encode(&self) -> Vec<u8> {
        // Changes dominate; ids, heads and signatures are estimated generously.
        let estimate = 64
            + self
                .visits
                .iter()
                .map(|v| {
                    v.changes.len()
                        + v.visit_id.len()
                        + v.message.len()
                        + 33 * v.heads.len()
                        + v.signatures
                            .iter()
                            .map(|s| 100 + s.signer.len() + 40 * s.ranges.len())
                            .sum::<usize>()
                        + v.listing.as_ref().map_or(1, |l| {
                            64 + l.unit_name.len() + 16 * l.absent_by_reason.len()
                        })
                        + 32
                })
                .sum::<usize>();
        let mut w = Writer::with_capacity(estimate);
        w.buf.extend_from_slice(RESPONSE_MAGIC);
        w.u8(PROTOCOL_VERSION);
        w.varint(self.cursor.seq);
        w.u64_le(self.cursor.nonce);
        w.u8(u8::from(self.more));
        w.varint(self.visits.len() as u64);
        for v in &self.visits {
            w.str(&v.visit_id);
            w.u8(v.status as u8);
            w.hashes(&v.heads);
            w.bytes(&v.changes);
            write_signatures(&mut w, &v.signatures);
            w.str(&v.message);
            write_listing(&mut w, v.listing.as_ref());
        }
        w.buf
    }

    /// Decodes a response; `max_changes` bounds each visit's change bytes.
    pub fn decode(bytes: &[u8], max_changes: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.expect_bytes(RESPONSE_MAGIC, "magic")?;
        check_version(r.u8("version")?)?;
        let cursor = Cursor {
            seq: r.varint("cursor")?,
            nonce: r.u64_le("cursor nonce")?,
        };
        let more = match r.u8("more")? {
            0 => false,
            1 => true,
            value => {
                return Err(DecodeError::UnknownValue {
                    what: "more",
                    value,
                });
            }
        };
        let (n, capacity) = r.count("visit count", MAX_VISITS, RESULT_MIN_WIRE, RESULT_WEIGHT)?;
        let mut seen = HashSet::with_capacity(capacity);
        let mut visits = Vec::with_capacity(capacity);
        for _ in 0..n {
            let visit_id = read_visit_id(&mut r, &mut seen)?;
            let status = VisitStatus::from_u8(r.u8("status")?)?;
            let heads = r.hashes("heads")?;
            let changes = r.byte_vec("changes", max_changes)?;
            let signatures = read_signatures(&mut r, false)?;
            let message = r.str("message", MAX_MESSAGE)?;
            let listing = read_listing(&mut r)?;
            if listing.is_some() && (status != VisitStatus::Ok || changes.is_empty()) {
                return Err(DecodeError::UnexpectedListing(visit_id));
            }
            visits.push(VisitResult {
                visit_id,
                status,
                heads,
                changes,
                signatures,
                message,
                listing,
            });
        }
        r.finish()?;
        Ok(Self {
            cursor,
            more,
            visits,
        })
    }
}

/// A visit id, refused if `seen` holds it already (the set borrows the
/// input, so it costs no copies of the ids).
fn read_visit_id<'a>(
    r: &mut Reader<'a>,
    seen: &mut HashSet<&'a str>,
) -> Result<String, DecodeError> {
    let id = r.str_ref("visit id", MAX_ID)?;
    if !seen.insert(id) {
        return Err(DecodeError::DuplicateVisit(id.to_owned()));
    }
    r.charge(id.len())?;
    Ok(id.to_owned())
}

fn write_signatures(w: &mut Writer, sigs: &[Signature]) {
    w.varint(sigs.len() as u64);
    for s in sigs {
        w.str(&s.signer);
        w.varint(s.ranges.len() as u64);
        for r in &s.ranges {
            w.bytes(&r.actor);
            w.varint(r.first);
            w.varint(r.last);
        }
        w.bytes(&s.signature);
    }
}

/// `implied_signer`: an empty signer stands for the requesting device
/// (requests only; a response names every signer).
fn read_signatures(
    r: &mut Reader<'_>,
    implied_signer: bool,
) -> Result<Vec<Signature>, DecodeError> {
    let (n, capacity) = r.count(
        "signature count",
        MAX_SIGNATURES,
        SIGNATURE_MIN_WIRE,
        SIGNATURE_WEIGHT,
    )?;
    let mut out = Vec::with_capacity(capacity);
    for _ in 0..n {
        let signer = r.str("signer", MAX_ID)?;
        if signer.is_empty() && !implied_signer {
            return Err(DecodeError::ImpliedSigner);
        }
        let (n_ranges, capacity) =
            r.count("range count", MAX_SIGNED, RANGE_MIN_WIRE, RANGE_WEIGHT)?;
        let mut ranges = Vec::with_capacity(capacity);
        for _ in 0..n_ranges {
            let actor = r.byte_vec("actor", 32)?;
            let first = r.varint("first seq")?;
            let last = r.varint("last seq")?;
            if first == 0 || last < first {
                return Err(DecodeError::BadRange { first, last });
            }
            ranges.push(SeqRange { actor, first, last });
        }
        let signature = r.byte_vec("signature", 64)?;
        if signature.len() != 64 {
            return Err(DecodeError::BadSignatureLength(signature.len()));
        }
        out.push(Signature {
            signer,
            ranges,
            signature,
        });
    }
    Ok(out)
}

fn write_listing(w: &mut Writer, listing: Option<&Listing>) {
    let Some(l) = listing else {
        w.u8(0);
        return;
    };
    w.u8(1);
    for text in [
        &l.unit_code,
        &l.unit_name,
        &l.unit_kind,
        &l.campaign,
        &l.team,
        &l.scheduled_on,
        &l.status,
    ] {
        w.str(text);
    }
    for n in [
        l.conflicts,
        l.payroll,
        l.present,
        l.late,
        l.absent,
        l.unrecorded,
    ] {
        w.varint(u64::from(n));
    }
    w.varint(l.absent_by_reason.len() as u64);
    for (reason, n) in &l.absent_by_reason {
        w.str(reason);
        w.varint(u64::from(*n));
    }
}

fn read_count(r: &mut Reader<'_>, what: &'static str) -> Result<u32, DecodeError> {
    let v = r.varint(what)?;
    u32::try_from(v).map_err(|_| DecodeError::TooLong {
        what,
        len: v,
        max: u64::from(u32::MAX),
    })
}

fn read_listing(r: &mut Reader<'_>) -> Result<Option<Listing>, DecodeError> {
    match r.u8("listing")? {
        0 => return Ok(None),
        1 => {}
        value => {
            return Err(DecodeError::UnknownValue {
                what: "listing",
                value,
            });
        }
    }
    let unit_code = r.str("unit code", MAX_ID)?;
    let unit_name = r.str("unit name", MAX_MESSAGE)?;
    let unit_kind = r.str("unit kind", MAX_ID)?;
    let campaign = r.str("campaign", MAX_ID)?;
    let team = r.str("team", MAX_ID)?;
    let scheduled_on = r.str("scheduled date", MAX_ID)?;
    let status = r.str("listed status", MAX_ID)?;
    let conflicts = read_count(r, "conflicts")?;
    let payroll = read_count(r, "payroll")?;
    let present = read_count(r, "present")?;
    let late = read_count(r, "late")?;
    let absent = read_count(r, "absent")?;
    let unrecorded = read_count(r, "unrecorded")?;
    let (n, capacity) = r.count("reason count", MAX_REASONS, REASON_MIN_WIRE, REASON_WEIGHT)?;
    let mut absent_by_reason = Vec::with_capacity(capacity);
    for _ in 0..n {
        let reason = r.str("absence reason", MAX_ID)?;
        absent_by_reason.push((reason, read_count(r, "absent for a reason")?));
    }
    Ok(Some(Listing {
        unit_code,
        unit_name,
        unit_kind,
        campaign,
        team,
        scheduled_on,
        status,
        conflicts,
        payroll,
        present,
        late,
        absent,
        unrecorded,
        absent_by_reason,
    }))
}

fn check_version(found: u8) -> Result<(), DecodeError> {
    if found != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    /// The decode budget never under-counts: each weight covers the
    /// element's in-memory size (a visit's also its entry in the id set,
    /// at most 40 bytes at hashbrown's load factor).
    #[test]
    fn weights_cover_the_in_memory_sizes() {
        assert!(OFFER_WEIGHT >= size_of::<VisitOffer>() + 40);
        assert!(RESULT_WEIGHT >= size_of::<VisitResult>() + 40);
        assert!(SIGNATURE_WEIGHT >= size_of::<Signature>());
        assert!(RANGE_WEIGHT >= size_of::<SeqRange>());
        assert!(REASON_WEIGHT >= size_of::<(String, u32)>());
    }
}
