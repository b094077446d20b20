//! [`Visit`]: one inspection visit as one Automerge document, behind a typed API.

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    Author, Automerge, Change, ChangeHash, LoadOptions, ObjType, OnPartialLoad, ROOT, ReadDoc,
    ScalarValue,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::heads::Heads;
use crate::ids::{CampaignId, CheckId, EvidenceHash, FindingId, StaffId, TeamId, VisitId};
use crate::model::{
    Attendance, AttendanceMark, CheckEntry, CheckResult, CheckValue, ConductEntry, ConductKind,
    ConductResult, NewFinding, Role, StaffMember, StatusEntry, Unit, VisitMeta, VisitStatus,
};
use crate::session::{Editor, Session, Stamp, Stamped};
use crate::state::{
    Approval, Conflict, FieldRef, FieldValue, FindingValue, Reader, VisitState, keys,
};
use crate::tally::Tally;
use crate::template::{CheckDef, Template};
use crate::text;

/// Most staff one visit may hold (roster plus those found on site).
pub const MAX_STAFF: usize = 2_000;

/// What a visit is created with.
#[derive(Debug, Clone)]
pub struct NewVisit {
    pub visit_id: VisitId,
    pub unit: Unit,
    pub campaign: CampaignId,
    pub team: TeamId,
    pub scheduled_on: NaiveDate,
    pub roster: Vec<StaffMember>,
}

/// One inspection visit.
///
/// Every operation validates its input first and then writes exactly one
/// Automerge change, stamped with the session's editor and clock; an
/// operation that fails leaves the document as it was.
pub struct Visit {
    doc: Automerge,
    session: Session,
    /// Changes committed through this value (this device's own), not yet
    /// taken by [`Visit::take_made_here`].
    made_here: Vec<ChangeHash>,
}

impl std::fmt::Debug for Visit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visit")
            .field("heads", &self.doc.get_heads())
            .field("session", &self.session)
            .finish()
    }
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(e.to_string()))
}

fn stamped<T: Serialize>(value: T, stamp: &Stamp) -> Result<String> {
    json(&Stamped {
        value,
        stamp: stamp.clone(),
    })
}

/// Splits bytes into Automerge chunks by their headers (magic, checksum,
/// type, LEB128 length). `Some` when every chunk is a change chunk (type 1,
/// or 2 compressed); `None` when a whole document is among them. Parsing the
/// chunks themselves is left to automerge.
fn change_chunks(bytes: &[u8]) -> Result<Option<Vec<&[u8]>>> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let bad = |why: &str| Error::NotAVisit(format!("unreadable changes: {why}"));
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 9 || rest[..4] != MAGIC {
            return Err(bad("not an Automerge chunk"));
        }
        let kind = rest[8];
        let (mut len, mut shift, mut i) = (0usize, 0u32, 9usize);
        loop {
            let b = *rest.get(i).ok_or_else(|| bad("truncated chunk header"))?;
            if shift > 56 {
                return Err(bad("chunk length too large"));
            }
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = i
            .checked_add(len)
            .filter(|e| *e <= rest.len())
            .ok_or_else(|| bad("truncated chunk"))?;
        match kind {
            0 => return Ok(None),
            1 | 2 => out.push(&rest[..end]),
            _ => return Err(bad("unknown chunk type")),
        }
        pos += end;
    }
    Ok(Some(out))
}

/// Parses change chunks (as split by `change_chunks`) into changes.
fn parse_changes(chunks: Vec<&[u8]>) -> Result<Vec<Change>> {
    chunks
        .into_iter()
        .map(|c| {
            Change::from_bytes(c.to_vec())
                .map_err(|e| Error::NotAVisit(format!("unreadable change: {e}")))
        })
        .collect()
}

/// The changes in received bytes: change chunks parsed one by one, or a
/// whole document loaded (with Automerge's own checks, and a panic inside
/// it turned into a refusal) and bounded in ops before its changes are
/// taken out.
fn received_changes(
    bytes: &[u8],
) -> std::result::Result<(Vec<Change>, Option<Automerge>), crate::accept::Refusal> {
    let refuse = |reason: String| crate::accept::Refusal {
        kind: crate::accept::RefusalKind::Invalid,
        change: None,
        reason,
    };
    match change_chunks(bytes).map_err(|e| refuse(e.to_string()))? {
        Some(chunks) => {
            let changes = parse_changes(chunks).map_err(|e| refuse(e.to_string()))?;
            // A change Automerge would write differently (a non-canonical
            // encoding of the same ops) hashes differently once stored and
            // re-read: the document would no longer hold what it names.
            for c in &changes {
                let canonical = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Change::from(c.decode()).hash() == c.hash()
                }))
                .unwrap_or(false);
                if !canonical {
                    return Err(crate::accept::Refusal {
                        kind: crate::accept::RefusalKind::Invalid,
                        change: Some(c.hash()),
                        reason: "is not encoded as Automerge writes it".into(),
                    });
                }
            }
            Ok((changes, None))
        }
        None => {
            let loaded = std::panic::catch_unwind(|| {
                Automerge::load_with_options(
                    bytes,
                    LoadOptions::new().on_partial_load(OnPartialLoad::Error),
                )
            })
            .map_err(|_| refuse("unreadable document: Automerge could not load it".into()))?
            .map_err(|e| refuse(format!("unreadable document: {e}")))?;
            // Every change is a head or an ancestor of one, whose ops all
            // come after its own: the heads hold the highest op.
            let max_op = loaded
                .get_heads()
                .iter()
                .filter_map(|h| loaded.get_change_meta_by_hash(h))
                .map(|m| m.max_op)
                .max()
                .unwrap_or(0);
            if max_op > crate::accept::MAX_OPS_PER_VISIT {
                return Err(refuse(format!(
                    "the document holds {max_op} ops; at most {} are allowed in one visit",
                    crate::accept::MAX_OPS_PER_VISIT
                )));
            }
            let changes =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loaded.get_changes(&[])))
                    .map_err(|_| {
                        refuse("unreadable document: its changes cannot be read".into())
                    })?;
            Ok((changes, Some(loaded)))
        }
    }
}

/// What a sender's heads and server confirmation were, read off the bytes
/// it sent (sync protocol flag bit 2), so they need not travel beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implied {
    pub heads: Heads,
    /// `None` for a whole document.
    pub confirmed: Option<Heads>,
}

/// The heads and confirmation that `bytes` imply. For changes: the sent
/// changes no other sent change depends on, and as the confirmation their
/// dependencies outside the sent set. For a whole document: its heads, and
/// no confirmation (the document is loaded to read them).
pub fn implied_by(bytes: &[u8]) -> Result<Implied> {
    if bytes.is_empty() {
        return Err(Error::NotAVisit("no changes to read heads from".into()));
    }
    match change_chunks(bytes)? {
        Some(chunks) => {
            let changes = parse_changes(chunks)?;
            let sent: std::collections::HashSet<ChangeHash> =
                changes.iter().map(|c| c.hash()).collect();
            let deps: std::collections::BTreeSet<ChangeHash> = changes
                .iter()
                .flat_map(|c| c.deps().iter().copied())
                .collect();
            let heads = sent.iter().copied().filter(|h| !deps.contains(h)).collect();
            let confirmed = deps.into_iter().filter(|d| !sent.contains(d)).collect();
            Ok(Implied {
                heads,
                confirmed: Some(confirmed),
            })
        }
        None => {
            let doc = std::panic::catch_unwind(|| {
                Automerge::load_with_options(
                    bytes,
                    LoadOptions::new().on_partial_load(OnPartialLoad::Error),
                )
            })
            .map_err(|_| Error::NotAVisit("unreadable document".into()))?
            .map_err(|e| Error::NotAVisit(format!("unreadable document: {e}")))?;
            Ok(Implied {
                heads: Heads::new(doc.get_heads()),
                confirmed: None,
            })
        }
    }
}

/// One change read off received bytes: its hash, actor, sequence number
/// and dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentChange {
    pub hash: ChangeHash,
    pub actor: Vec<u8>,
    pub seq: u64,
    pub deps: Vec<ChangeHash>,
}

/// The changes in `bytes`, which must be change chunks (not a whole
/// document), parsed one by one without applying them to anything.
pub fn sent_changes(bytes: &[u8]) -> Result<Vec<SentChange>> {
    let chunks = change_chunks(bytes)?
        .ok_or_else(|| Error::NotAVisit("a whole document, not changes".into()))?;
    Ok(parse_changes(chunks)?
        .into_iter()
        .map(|c| SentChange {
            hash: c.hash(),
            actor: c.actor_id().to_bytes().to_vec(),
            seq: c.seq(),
            deps: c.deps().to_vec(),
        })
        .collect())
}

fn author_of_actor(doc: &Automerge, actor: &automerge::ActorId) -> Option<Editor> {
    doc.get_author_for_actor(actor)
        .and_then(|a| Editor::from_author_bytes(a.as_bytes()))
}

/// Replicas of one visit share the change that created it, so `meta` has
/// exactly one value; two values mean two different visits were mixed.
fn check_same_visit(doc: &Automerge) -> Result<()> {
    if doc.get_all(ROOT, keys::META)?.len() > 1 || doc.get_all(ROOT, keys::SCHEMA)?.len() > 1 {
        return Err(Error::NotAVisit(
            "these changes belong to another visit".into(),
        ));
    }
    Ok(())
}

fn conduct_key(staff: &StaffId, kind: ConductKind) -> String {
    format!("{staff}/{}", kind.key())
}

impl Visit {
    /// Creates a visit from a template, a unit, a campaign, a team and the
    /// unit's roster, in one change.
    pub fn create(new: NewVisit, template: &Template, session: &Session) -> Result<Self> {
        template.validate()?;
        if new.roster.len() > MAX_STAFF {
            return Err(Error::RosterTooLarge(new.roster.len(), MAX_STAFF));
        }
        let unit = Unit::new(new.unit.code, &new.unit.name, new.unit.kind, &new.unit.area)?;
        let mut seen = BTreeSet::new();
        let mut roster = Vec::with_capacity(new.roster.len());
        for m in new.roster {
            if !seen.insert(m.id.clone()) {
                return Err(Error::DuplicateStaff(m.id.to_string()));
            }
            let mut clean = StaffMember::new(m.id, &m.name, &m.position, m.category, m.on_payroll)?;
            clean.found_on_site = m.found_on_site;
            roster.push(clean);
        }
        let stamp = session.stamp();
        let meta = VisitMeta {
            visit_id: new.visit_id,
            unit,
            campaign: new.campaign,
            team: new.team,
            scheduled_on: new.scheduled_on,
            template_id: template.id.clone(),
            template_version: template.version,
            created_by: stamp.by.clone(),
            created_at: stamp.at,
        };
        let mut visit = Self {
            doc: Automerge::new(),
            session: session.clone(),
            made_here: Vec::new(),
        };
        visit.bind_session();
        visit.commit("create visit", stamp.at, |tx| {
            tx.put(
                ROOT,
                keys::SCHEMA,
                ScalarValue::Uint(template.document_schema()),
            )?;
            tx.put(ROOT, keys::META, json(&meta)?)?;
            tx.put(ROOT, keys::TEMPLATE, json(template)?)?;
            let staff = tx.put_object(ROOT, keys::STAFF, ObjType::Map)?;
            for m in &roster {
                tx.put(&staff, m.id.as_str(), stamped(m, &stamp)?)?;
            }
            for k in [
                keys::ATTENDANCE,
                keys::CONDUCT,
                keys::CHECKS,
                keys::EVIDENCE,
                keys::FINDINGS,
                keys::APPROVALS,
            ] {
                tx.put_object(ROOT, k, ObjType::Map)?;
            }
            tx.put_object(ROOT, keys::NARRATIVE, ObjType::Text)?;
            let status = StatusEntry {
                status: VisitStatus::Draft,
                note: String::new(),
            };
            tx.put(ROOT, keys::STATUS, stamped(status, &stamp)?)?;
            Ok(())
        })?;
        Ok(visit)
    }

    /// Loads a saved document (whole or as concatenated chunks) for editing
    /// in `session`. Documents of a newer schema are refused.
    pub fn load(bytes: &[u8], session: &Session) -> Result<Self> {
        let doc = std::panic::catch_unwind(|| Automerge::load(bytes))
            .map_err(|_| Error::NotAVisit("Automerge could not load the document".into()))?
            .map_err(|e| Error::NotAVisit(e.to_string()))?;
        Self::from_automerge(doc, session)
    }

    /// Loads several saved documents, spread over the machine's cores (plain
    /// scoped threads; no runtime). Results are in input order.
    pub fn load_all(docs: &[&[u8]], session: &Session) -> Vec<Result<Self>> {
        Self::load_all_with(docs, session, |_| ())
            .into_iter()
            .map(|r| r.map(|(v, ())| v))
            .collect()
    }

    /// Like [`Visit::load_all`], also running `then` on each loaded visit
    /// on the same thread (work that needs only the document, done in
    /// parallel too).
    pub fn load_all_with<R: Send>(
        docs: &[&[u8]],
        session: &Session,
        then: impl Fn(&Visit) -> R + Sync,
    ) -> Vec<Result<(Self, R)>> {
        let one = |d: &&[u8]| {
            Self::load(d, session).map(|v| {
                let r = then(&v);
                (v, r)
            })
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(docs.len().max(1));
        if threads <= 1 || docs.len() < 4 {
            return docs.iter().map(one).collect();
        }
        let per = docs.len().div_ceil(threads);
        let one = &one;
        std::thread::scope(|scope| {
            let handles: Vec<_> = docs
                .chunks(per)
                .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Error::Corrupt("a loading thread panicked".into()))]
                    })
                })
                .collect()
        })
    }

    /// Wraps an Automerge document after checking it is a visit this build reads.
    pub fn from_automerge(doc: Automerge, session: &Session) -> Result<Self> {
        let reader = Reader::new(&doc, None);
        reader.check_schema()?;
        reader
            .json::<VisitMeta>(&ROOT, keys::META)?
            .ok_or_else(|| Error::NotAVisit("no metadata".into()))?;
        let mut visit = Self {
            doc,
            session: session.clone(),
            made_here: Vec::new(),
        };
        visit.bind_session();
        Ok(visit)
    }

    fn bind_session(&mut self) {
        self.doc
            .set_author(Some(Author::from(self.session.editor().author_bytes())));
        self.doc.set_actor(self.session.actor().clone());
    }

    /// Runs `f` as one change with device time `at` (whole seconds, as
    /// Automerge records it); rolls back if `f` fails.
    fn commit<O>(
        &mut self,
        message: &str,
        at: DateTime<Utc>,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<O>,
    ) -> Result<O> {
        let time = at.timestamp();
        let message = message.to_owned();
        self.doc
            .transact_with(
                |_| {
                    CommitOptions::default()
                        .with_message(message)
                        .with_time(time)
                },
                f,
            )
            .map(|ok| {
                if let Some(h) = ok.hash {
                    self.made_here.push(h);
                }
                ok.result
            })
            .map_err(|failed| failed.error)
    }

    /// The changes committed through this value since the last call, with
    /// their actor and sequence number, oldest first: what the device made
    /// itself (the store keeps them until they are signed).
    pub fn take_made_here(&mut self) -> Vec<(ChangeHash, Vec<u8>, u64)> {
        std::mem::take(&mut self.made_here)
            .into_iter()
            .filter_map(|h| {
                let m = self.doc.get_change_meta_by_hash(&h)?;
                Some((h, m.actor.to_bytes().to_vec(), m.seq))
            })
            .collect()
    }

    // ----- reading -------------------------------------------------------

    pub fn id(&self) -> Result<VisitId> {
        Ok(self.meta()?.visit_id)
    }

    pub fn meta(&self) -> Result<VisitMeta> {
        Reader::new(&self.doc, None)
            .json(&ROOT, keys::META)?
            .ok_or_else(|| Error::NotAVisit("no metadata".into()))
    }

    /// The whole visit as it stands now.
    pub fn state(&self) -> Result<VisitState> {
        Reader::new(&self.doc, None).state()
    }

    /// The visit as it stood at `heads` (any set of change hashes this
    /// document holds).
    pub fn state_at(&self, heads: &[ChangeHash]) -> Result<VisitState> {
        self.check_heads(heads)?;
        Reader::new(&self.doc, Some(heads)).state()
    }

    /// The state a supervisor approved most recently, if any.
    pub fn approved_state(&self) -> Result<Option<VisitState>> {
        Ok(self.approval()?.map(|(_, state)| state))
    }

    /// The latest approval, as the current state holds it, with the state
    /// at the heads it approved.
    pub fn approval(&self) -> Result<Option<(Approval, VisitState)>> {
        let state = self.state()?;
        match state.latest_approval() {
            None => Ok(None),
            Some(a) => Ok(Some((a.clone(), self.state_at(&a.head_hashes()?)?))),
        }
    }

    pub fn tally(&self) -> Result<Tally> {
        Ok(self.state()?.tally())
    }

    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        Ok(self.state()?.conflicts())
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    pub(crate) fn check_heads(&self, heads: &[ChangeHash]) -> Result<()> {
        for h in heads {
            if self.doc.get_change_by_hash(h).is_none() {
                return Err(Error::UnknownHeads(h.to_string()));
            }
        }
        Ok(())
    }

    /// The underlying document, read-only, for storage and transport.
    pub fn automerge(&self) -> &Automerge {
        &self.doc
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    // ----- storage and merging -------------------------------------------

    /// The whole document, compressed.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// The changes made since `heads`, as an incremental chunk.
    pub fn save_after(&self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// Applies saved bytes (a document or changes) from another replica of
    /// this visit. The bytes must parse completely and their dependencies
    /// must be present; bytes of another visit are refused. On any error
    /// the document is unchanged.
    ///
    /// Change chunks (what `save_after` produces) are parsed one by one and
    /// applied to a copy, so the cost follows the new changes, not the
    /// history; bytes holding a whole document are checked by loading the
    /// document and them together.
    pub fn load_incremental(&mut self, bytes: &[u8]) -> Result<()> {
        let probe = match change_chunks(bytes)? {
            Some(chunks) => self.probe_changes(chunks)?,
            None => {
                let mut combined = self.doc.save();
                combined.extend_from_slice(bytes);
                Automerge::load_with_options(
                    &combined,
                    LoadOptions::new().on_partial_load(OnPartialLoad::Error),
                )
                .map_err(|e| Error::NotAVisit(format!("unreadable changes: {e}")))?
            }
        };
        check_same_visit(&probe)?;
        Reader::new(&probe, None).check_schema()?;
        self.doc = probe;
        self.bind_session();
        Ok(())
    }

    fn probe_changes(&self, chunks: Vec<&[u8]>) -> Result<Automerge> {
        let changes = parse_changes(chunks)?;
        let incoming: std::collections::HashSet<ChangeHash> =
            changes.iter().map(|c| c.hash()).collect();
        for c in &changes {
            if self.doc.get_change_by_hash(&c.hash()).is_some() {
                continue;
            }
            if c.deps().is_empty() {
                // Every replica of a visit shares its one creating change.
                return Err(Error::NotAVisit(
                    "these changes belong to another visit".into(),
                ));
            }
            if let Some(missing) = c
                .deps()
                .iter()
                .find(|d| !incoming.contains(d) && self.doc.get_change_by_hash(d).is_none())
            {
                return Err(Error::MissingChanges(missing.to_string()));
            }
        }
        let mut probe = self.doc.clone();
        probe.apply_changes(changes)?;
        if !probe.get_missing_deps(&[]).is_empty() {
            return Err(Error::MissingChanges(
                "dependencies of the received changes".into(),
            ));
        }
        Ok(probe)
    }

    /// Applies changes received from another device (change chunks, or a
    /// whole document of this visit), each checked first by the acceptance
    /// rule (see [`crate::Refusal`]) against the document and the role
    /// `roles` gives its author. Returns the changes that were new, with
    /// their authors; on a refusal the document is unchanged. `max_ops`
    /// bounds the ops the bytes may hold in all.
    pub fn accept_remote(
        &mut self,
        bytes: &[u8],
        roles: &dyn crate::accept::Roles,
        max_ops: usize,
    ) -> std::result::Result<Vec<crate::accept::Accepted>, crate::accept::Refusal> {
        let (changes, _) = received_changes(bytes)?;
        let (doc, accepted) =
            crate::accept::accept_into(self.doc.clone(), changes, roles, max_ops)?;
        self.doc = doc;
        self.bind_session();
        Ok(accepted)
    }

    /// A visit received whole from another device (a document or change
    /// chunks), its history checked change by change from the first by the
    /// acceptance rule, as [`Visit::accept_remote`] does.
    pub fn accept_new(
        bytes: &[u8],
        session: &Session,
        roles: &dyn crate::accept::Roles,
        max_ops: usize,
    ) -> std::result::Result<(Self, Vec<crate::accept::Accepted>), crate::accept::Refusal> {
        let (changes, loaded) = received_changes(bytes)?;
        let count = changes.len();
        let (doc, accepted) = match loaded {
            // Every change of a loaded document accepted: the document is
            // the result, without applying its changes a second time.
            Some(loaded) => {
                let accepted = crate::accept::accept_checked(changes, roles, max_ops)?;
                if accepted.len() != count {
                    return Err(crate::accept::Refusal {
                        kind: crate::accept::RefusalKind::Invalid,
                        change: None,
                        reason: "the document holds a change twice".into(),
                    });
                }
                (loaded, accepted)
            }
            None => crate::accept::accept_into(Automerge::new(), changes, roles, max_ops)?,
        };
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(crate::accept::Refusal {
                kind: crate::accept::RefusalKind::Invalid,
                change: None,
                reason: "the document is missing changes".into(),
            });
        }
        let visit = Self::from_automerge(doc, session).map_err(|e| crate::accept::Refusal {
            kind: crate::accept::RefusalKind::Invalid,
            change: None,
            reason: e.to_string(),
        })?;
        Ok((visit, accepted))
    }

    /// Takes over `other`'s document (the same visit with more changes, e.g.
    /// what [`Visit::accept_remote`] made of a copy), keeping this value's
    /// session. Refused unless `other` holds every change this one does.
    pub fn adopt(&mut self, other: Visit) -> Result<()> {
        if other.meta()?.visit_id != self.meta()?.visit_id
            || self.heads().iter().any(|h| !other.has_change(h))
        {
            return Err(Error::NotAVisit(
                "the adopted document is not a later copy of this visit".into(),
            ));
        }
        self.doc = other.doc;
        self.bind_session();
        Ok(())
    }

    /// The visit as it stood at `heads`, for `session` to write on: what
    /// it then writes depends on exactly those heads (a supervisor's act on
    /// the version they were shown, whatever arrived since).
    pub fn fork_at(&self, heads: &[ChangeHash], session: &Session) -> Result<Self> {
        let doc = self.doc.fork_at(heads)?;
        let mut v = Self {
            doc,
            session: session.clone(),
            made_here: Vec::new(),
        };
        v.bind_session();
        Ok(v)
    }

    /// A change of this visit as Automerge encodes it uncompressed: its
    /// hash is the SHA-256 of these bytes after their first eight (magic
    /// number and checksum).
    pub fn change_bytes(&self, hash: &ChangeHash) -> Option<Vec<u8>> {
        self.doc
            .get_change_by_hash(hash)
            .map(|c| c.raw_bytes().to_vec())
    }

    /// A copy of this visit for `session` (the same document).
    pub fn fork_for(&self, session: &Session) -> Self {
        let mut v = Self {
            doc: self.doc.clone(),
            session: session.clone(),
            made_here: Vec::new(),
        };
        v.bind_session();
        v
    }

    /// Every change of this visit's history that the acceptance rule
    /// refuses, checked in causal order against the document before it,
    /// with the roles `roles` gives their authors: what an auditor's
    /// verification reports of a visit stored by a build that accepted it.
    pub fn audit_history(&self, roles: &dyn crate::accept::Roles) -> Vec<crate::accept::Refusal> {
        crate::accept::audit_history(&self.doc, roles)
    }

    /// Merges another replica of the same visit into this one.
    pub fn merge(&mut self, other: &Visit) -> Result<()> {
        if self.meta()?.visit_id != other.meta()?.visit_id {
            return Err(Error::NotAVisit("merging two different visits".into()));
        }
        Reader::new(&other.doc, None).check_schema()?;
        let mut probe = self.doc.fork();
        let mut theirs = other.doc.clone();
        probe.merge(&mut theirs)?;
        check_same_visit(&probe)?;
        self.doc = probe;
        self.bind_session();
        Ok(())
    }

    /// Every change's hash and the editor it names, with an index of the
    /// changes by actor and sequence number, from one walk over the change
    /// metadata. Consecutive changes by one author parse its name once.
    pub fn change_index(&self) -> (ChangeIndex, Vec<(ChangeHash, Option<Editor>)>) {
        let metas = self.doc.get_changes_meta(&[]);
        let mut index = ChangeIndex::default();
        let mut authors = Vec::with_capacity(metas.len());
        let mut last: Option<(Vec<u8>, Option<Editor>)> = None;
        for m in metas {
            let raw = m.author.as_ref().map(|a| a.as_bytes());
            let author = match (&last, raw) {
                (Some((bytes, editor)), Some(raw)) if bytes.as_slice() == raw => editor.clone(),
                (_, Some(raw)) => {
                    let editor = Editor::from_author_bytes(raw);
                    last = Some((raw.to_vec(), editor.clone()));
                    editor
                }
                (_, None) => None,
            };
            index.insert(m.actor.to_bytes(), m.seq, m.hash);
            authors.push((m.hash, author));
        }
        (index, authors)
    }

    /// Every change of the document with the editor it names, in causal order.
    pub fn changes_with_authors(&self) -> Vec<(Change, Option<Editor>)> {
        self.doc
            .get_changes(&[])
            .into_iter()
            .map(|c| {
                let author = author_of_actor(&self.doc, c.actor_id());
                (c, author)
            })
            .collect()
    }

    /// Hashes of the changes not covered by `heads` (all of them for `[]`).
    pub fn change_hashes_after(&self, heads: &[ChangeHash]) -> Vec<ChangeHash> {
        self.doc
            .get_changes_meta(heads)
            .into_iter()
            .map(|m| m.hash)
            .collect()
    }

    /// Hashes of the changes after `heads` whose author field names `device`.
    pub fn changes_by(
        &self,
        heads: &[ChangeHash],
        device: &crate::ids::DeviceId,
    ) -> Vec<ChangeHash> {
        self.doc
            .get_changes_meta(heads)
            .into_iter()
            .filter(|m| {
                m.author
                    .as_ref()
                    .and_then(|a| crate::session::Editor::from_author_bytes(a.as_bytes()))
                    .is_some_and(|e| &e.device == device)
            })
            .map(|m| m.hash)
            .collect()
    }

    /// Each of `hashes` with its actor and sequence number, in order;
    /// `None` if a hash is not held.
    pub fn change_ids(&self, hashes: &[ChangeHash]) -> Option<Vec<(ChangeHash, Vec<u8>, u64)>> {
        hashes
            .iter()
            .map(|h| {
                let m = self.doc.get_change_meta_by_hash(h)?;
                Some((*h, m.actor.to_bytes().to_vec(), m.seq))
            })
            .collect()
    }

    /// Names a set of this visit's changes by actor and sequence ranges
    /// (`(actor bytes, first, last)`); `None` if a hash is not held.
    pub fn seq_ranges(&self, hashes: &[ChangeHash]) -> Option<Vec<(Vec<u8>, u64, u64)>> {
        let mut ids = Vec::with_capacity(hashes.len());
        for h in hashes {
            let m = self.doc.get_change_meta_by_hash(h)?;
            ids.push((m.actor.to_bytes().to_vec(), m.seq));
        }
        Some(seq_ranges_of(ids))
    }
}

/// Changes by actor and sequence number, for naming batches of changes by
/// ranges. Sequence numbers of one actor are dense (1, 2, …) in a whole
/// document, so each actor's changes are a vector by sequence number; an
/// implausibly large number goes to a map instead.
#[derive(Debug, Default, Clone)]
pub struct ChangeIndex {
    dense: HashMap<Vec<u8>, Vec<Option<ChangeHash>>>,
    sparse: HashMap<(Vec<u8>, u64), ChangeHash>,
}

/// Largest sequence number kept in the dense part of a [`ChangeIndex`].
const DENSE_SEQ: u64 = 1 << 20;

impl ChangeIndex {
    /// Adds a change; the first hash given for an `(actor, seq)` stays.
    pub fn insert(&mut self, actor: &[u8], seq: u64, hash: ChangeHash) {
        if seq == 0 || seq > DENSE_SEQ {
            self.sparse.entry((actor.to_vec(), seq)).or_insert(hash);
            return;
        }
        let slots = match self.dense.get_mut(actor) {
            Some(slots) => slots,
            None => self.dense.entry(actor.to_vec()).or_default(),
        };
        let at = (seq - 1) as usize;
        if slots.len() <= at {
            slots.resize(at + 1, None);
        }
        slots[at].get_or_insert(hash);
    }

    pub fn get(&self, actor: &[u8], seq: u64) -> Option<ChangeHash> {
        if seq == 0 || seq > DENSE_SEQ {
            return self.sparse.get(&(actor.to_vec(), seq)).copied();
        }
        *self.dense.get(actor)?.get((seq - 1) as usize)?
    }

    /// The hashes of the changes named by actor and sequence ranges; `None`
    /// if one is missing, a range is reversed, or they name more than a
    /// million changes.
    pub fn hashes(&self, ranges: &[(Vec<u8>, u64, u64)]) -> Option<Vec<ChangeHash>> {
        let total: u64 = ranges
            .iter()
            .map(|(_, a, b)| b.saturating_sub(*a).saturating_add(1))
            .fold(0u64, u64::saturating_add);
        if total > 1_000_000 {
            return None;
        }
        let mut out = Vec::with_capacity(total as usize);
        for (actor, a, b) in ranges {
            if a > b {
                return None;
            }
            for s in *a..=*b {
                out.push(self.get(actor, s)?);
            }
        }
        Some(out)
    }
}

/// Names changes given by `(actor, seq)` as sorted, merged ranges
/// `(actor, first, last)`.
pub fn seq_ranges_of(ids: impl IntoIterator<Item = (Vec<u8>, u64)>) -> Vec<(Vec<u8>, u64, u64)> {
    let mut by_actor: std::collections::BTreeMap<Vec<u8>, Vec<u64>> =
        std::collections::BTreeMap::new();
    for (actor, seq) in ids {
        by_actor.entry(actor).or_default().push(seq);
    }
    let mut out = Vec::new();
    for (actor, mut seqs) in by_actor {
        seqs.sort_unstable();
        seqs.dedup();
        let mut start = seqs[0];
        let mut prev = start;
        for &s in &seqs[1..] {
            if s != prev + 1 {
                out.push((actor.clone(), start, prev));
                start = s;
            }
            prev = s;
        }
        out.push((actor, start, prev));
    }
    out
}

impl Visit {
    /// The hashes of the changes named by actor and sequence ranges, looked
    /// up among `extra` (changes not applied yet) and then this visit;
    /// `None` if one is missing. Ranges are bounded by the caller.
    pub fn hashes_in_ranges(
        &self,
        ranges: &[(Vec<u8>, u64, u64)],
        extra: &[Change],
    ) -> Option<Vec<ChangeHash>> {
        let mut index = ChangeIndex::default();
        for c in extra {
            index.insert(c.actor_id().to_bytes(), c.seq(), c.hash());
        }
        if let Some(found) = index.hashes(ranges) {
            return Some(found);
        }
        for m in self.doc.get_changes_meta(&[]) {
            index.insert(m.actor.to_bytes(), m.seq, m.hash);
        }
        index.hashes(ranges)
    }

    /// Change hashes whose dependencies have not arrived yet.
    pub fn missing_deps(&self) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(&[])
    }

    // ----- recording -----------------------------------------------------

    fn require_staff(&self, staff: &StaffId) -> Result<()> {
        let obj = Reader::new(&self.doc, None).map(&ROOT, keys::STAFF)?;
        match self.doc.get(&obj, staff.as_str())? {
            Some(_) => Ok(()),
            None => Err(Error::UnknownStaff(staff.to_string())),
        }
    }

    /// The check's definition in the visit's template.
    fn require_check(&self, check: &CheckId) -> Result<CheckDef> {
        let template: Template = Reader::new(&self.doc, None)
            .json(&ROOT, keys::TEMPLATE)?
            .ok_or_else(|| Error::NotAVisit("no template".into()))?;
        match template.check(check) {
            Some(def) => Ok(def.clone()),
            None => Err(Error::UnknownCheck(check.to_string())),
        }
    }

    fn require_finding(&self, finding: &FindingId) -> Result<automerge::ObjId> {
        let obj = Reader::new(&self.doc, None).map(&ROOT, keys::FINDINGS)?;
        match self.doc.get(&obj, finding.as_str())? {
            Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(Error::UnknownFinding(finding.to_string())),
        }
    }

    fn container(&self, key: &str) -> Result<automerge::ObjId> {
        Reader::new(&self.doc, None).map(&ROOT, key)
    }

    /// Refuses writes by roles that never write.
    fn check_writer(&self) -> Result<()> {
        match self.session.role() {
            Role::Auditor => Err(Error::ReadOnlyRole("auditor")),
            Role::Administrator => Err(Error::ReadOnlyRole("administrator")),
            Role::Inspector | Role::Supervisor => Ok(()),
        }
    }

    fn check_supervisor(&self, what: &'static str) -> Result<()> {
        self.check_writer()?;
        if self.session.role() != Role::Supervisor {
            return Err(Error::SupervisorOnly(what));
        }
        Ok(())
    }

    /// Whether the records at `obj`/`key` (the slot of `field`) disagree
    /// on what they observed: a conflict, which only a supervisor settles.
    fn slot_in_conflict(
        &self,
        field: &FieldRef,
        obj: &automerge::ObjId,
        key: &str,
    ) -> Result<bool> {
        let r = Reader::new(&self.doc, None);
        Ok(match field {
            FieldRef::Attendance { .. } => r
                .slot::<Attendance>(obj, key)?
                .is_some_and(|s| s.in_conflict()),
            FieldRef::Conduct { .. } => r
                .slot::<ConductEntry>(obj, key)?
                .is_some_and(|s| s.in_conflict()),
            FieldRef::OfficeCheck { .. } => r
                .slot::<CheckEntry>(obj, key)?
                .is_some_and(|s| s.in_conflict()),
            FieldRef::Finding { .. } => r
                .slot::<FindingValue>(obj, key)?
                .is_some_and(|s| s.in_conflict()),
            FieldRef::Status => r
                .slot::<StatusEntry>(obj, key)?
                .is_some_and(|s| s.in_conflict()),
        })
    }

    /// Writes a value into a field, stamped now. The write supersedes every
    /// value this replica has seen, so it also settles a conflict there —
    /// which only a supervisor may do.
    fn put_field(&mut self, message: &str, field: &FieldRef, value: FieldValue) -> Result<()> {
        self.check_writer()?;
        let stamp = self.session.stamp();
        let (obj, key, payload) = match (field, value) {
            (FieldRef::Attendance { staff }, FieldValue::Attendance(a)) => {
                self.require_staff(staff)?;
                (
                    self.container(keys::ATTENDANCE)?,
                    staff.to_string(),
                    stamped(a, &stamp)?,
                )
            }
            (FieldRef::Conduct { staff, check }, FieldValue::Conduct(c)) => {
                self.require_staff(staff)?;
                (
                    self.container(keys::CONDUCT)?,
                    conduct_key(staff, *check),
                    stamped(c, &stamp)?,
                )
            }
            (FieldRef::OfficeCheck { check }, FieldValue::OfficeCheck(c)) => {
                // Every write of a check, a resolution's too, holds a value
                // of the check's kind.
                let def = self.require_check(check)?;
                let c = def.entry(c.result, c.value, &c.note)?;
                (
                    self.container(keys::CHECKS)?,
                    check.to_string(),
                    stamped(c, &stamp)?,
                )
            }
            (FieldRef::Finding { finding, field }, FieldValue::Finding(v))
                if v.field() == *field =>
            {
                let obj = self.require_finding(finding)?;
                (obj, field.key().to_owned(), stamped(v, &stamp)?)
            }
            (FieldRef::Status, FieldValue::Status(s)) => {
                (ROOT, keys::STATUS.to_owned(), stamped(s, &stamp)?)
            }
            (field, _) => {
                return Err(Error::InvalidValue {
                    field: "value",
                    value: field.to_string(),
                    expected: "a value of the field's own kind",
                });
            }
        };
        if self.doc.get_all(&obj, key.as_str())?.len() > 1
            && self.slot_in_conflict(field, &obj, &key)?
        {
            self.check_supervisor("settle a conflict")?;
        }
        self.commit(message, stamp.at, |tx| {
            tx.put(&obj, key.as_str(), payload)?;
            Ok(())
        })
    }

    /// Records a staff member's attendance. `observed_at` defaults to now.
    pub fn record_attendance(
        &mut self,
        staff: &StaffId,
        mark: AttendanceMark,
        note: &str,
        observed_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let observed_at = observed_at.unwrap_or_else(|| self.session.now());
        let value = Attendance::new(mark, note, observed_at)?;
        self.put_field(
            "attendance",
            &FieldRef::Attendance {
                staff: staff.clone(),
            },
            FieldValue::Attendance(value),
        )
    }

    /// Records one conduct check on a staff member.
    pub fn record_conduct(
        &mut self,
        staff: &StaffId,
        check: ConductKind,
        result: ConductResult,
        note: &str,
    ) -> Result<()> {
        let note = text::optional("conduct note", note, text::MAX_NOTE)?;
        self.put_field(
            "conduct",
            &FieldRef::Conduct {
                staff: staff.clone(),
                check,
            },
            FieldValue::Conduct(ConductEntry { result, note }),
        )
    }

    /// Records an office check of the template without a value: a
    /// pass/fail check, or a valued check found not applicable. A valued
    /// check passed or failed needs [`Visit::record_check_value`]
    /// (`Error::CheckValueRequired`).
    pub fn record_check(&mut self, check: &CheckId, result: CheckResult, note: &str) -> Result<()> {
        self.record_check_entry(check, result, None, note)
    }

    /// Records a valued office check (number, choice or text): the
    /// inspector's judgment and what was measured. Refuses a value of
    /// another kind than the check's, a number out of its range, an option
    /// the check does not offer, a text empty or longer than
    /// [`text::MAX_CHECK_TEXT`], a value on a pass/fail check or on a
    /// not-applicable record.
    pub fn record_check_value(
        &mut self,
        check: &CheckId,
        result: CheckResult,
        value: CheckValue,
        note: &str,
    ) -> Result<()> {
        self.record_check_entry(check, result, Some(value), note)
    }

    fn record_check_entry(
        &mut self,
        check: &CheckId,
        result: CheckResult,
        value: Option<CheckValue>,
        note: &str,
    ) -> Result<()> {
        let entry = self.require_check(check)?.entry(result, value, note)?;
        self.put_field(
            "office check",
            &FieldRef::OfficeCheck {
                check: check.clone(),
            },
            FieldValue::OfficeCheck(entry),
        )
    }

    /// Adds a person found on site who was not on the roster.
    pub fn add_staff(&mut self, member: StaffMember) -> Result<()> {
        self.check_writer()?;
        let obj = self.container(keys::STAFF)?;
        if self.doc.get(&obj, member.id.as_str())?.is_some() {
            return Err(Error::DuplicateStaff(member.id.to_string()));
        }
        if self.doc.length(&obj) >= MAX_STAFF {
            return Err(Error::RosterTooLarge(self.doc.length(&obj) + 1, MAX_STAFF));
        }
        let mut clean = StaffMember::new(
            member.id,
            &member.name,
            &member.position,
            member.category,
            member.on_payroll,
        )?;
        clean.found_on_site = true;
        let stamp = self.session.stamp();
        let payload = stamped(&clean, &stamp)?;
        self.commit("add staff", stamp.at, |tx| {
            tx.put(&obj, clean.id.as_str(), payload)?;
            Ok(())
        })
    }

    /// References a piece of evidence (a photo, by SHA-256) from an office
    /// check. Evidence is a set: attaching the same hash twice is one entry.
    pub fn attach_evidence(&mut self, check: &CheckId, hash: &EvidenceHash) -> Result<()> {
        self.check_writer()?;
        self.require_check(check)?;
        let obj = self.container(keys::EVIDENCE)?;
        let key = format!("{check}/{hash}");
        if self.doc.get(&obj, key.as_str())?.is_some() {
            return Ok(());
        }
        let stamp = self.session.stamp();
        let payload = json(&stamp)?;
        self.commit("attach evidence", stamp.at, |tx| {
            tx.put(&obj, key.as_str(), payload)?;
            Ok(())
        })
    }

    /// Removes an evidence reference.
    pub fn detach_evidence(&mut self, check: &CheckId, hash: &EvidenceHash) -> Result<()> {
        self.check_writer()?;
        self.require_check(check)?;
        let obj = self.container(keys::EVIDENCE)?;
        let key = format!("{check}/{hash}");
        if self.doc.get(&obj, key.as_str())?.is_none() {
            return Err(Error::InvalidValue {
                field: "evidence",
                value: hash.to_string(),
                expected: "a hash attached to this check",
            });
        }
        self.commit("detach evidence", self.session.now(), |tx| {
            tx.delete(&obj, key.as_str())?;
            Ok(())
        })
    }

    fn clean_finding_value(&self, value: FindingValue) -> Result<FindingValue> {
        Ok(match value {
            FindingValue::Category(s) => {
                FindingValue::Category(text::required("finding category", &s, text::MAX_NAME)?)
            }
            FindingValue::Text(s) => {
                FindingValue::Text(text::required("finding text", &s, text::MAX_FINDING_TEXT)?)
            }
            FindingValue::Recommendation(s) => FindingValue::Recommendation(text::optional(
                "recommendation",
                &s,
                text::MAX_FINDING_TEXT,
            )?),
            FindingValue::RelatedStaff(ids) => {
                let mut unique = Vec::new();
                for id in ids {
                    self.require_staff(&id)?;
                    if !unique.contains(&id) {
                        unique.push(id);
                    }
                }
                FindingValue::RelatedStaff(unique)
            }
            v @ (FindingValue::Severity(_) | FindingValue::Withdrawn(_)) => v,
        })
    }

    /// Records a new finding; returns its id.
    pub fn add_finding(&mut self, finding: NewFinding) -> Result<FindingId> {
        self.check_writer()?;
        let values = [
            FindingValue::Category(finding.category),
            FindingValue::Severity(finding.severity),
            FindingValue::Text(finding.text),
            FindingValue::Recommendation(finding.recommendation),
            FindingValue::RelatedStaff(finding.related_staff),
        ]
        .into_iter()
        .map(|v| self.clean_finding_value(v))
        .collect::<Result<Vec<_>>>()?;
        let id = FindingId::generate();
        let stamp = self.session.stamp();
        let obj = self.container(keys::FINDINGS)?;
        let created = json(&stamp)?;
        let payloads = values
            .into_iter()
            .map(|v| Ok((v.field().key(), stamped(v, &stamp)?)))
            .collect::<Result<Vec<_>>>()?;
        self.commit("add finding", stamp.at, |tx| {
            let f = tx.put_object(&obj, id.as_str(), ObjType::Map)?;
            tx.put(&f, keys::CREATED, created)?;
            for (k, p) in payloads {
                tx.put(&f, k, p)?;
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// Changes one field of a finding (withdrawing is `Withdrawn(true)`;
    /// findings are never deleted).
    pub fn update_finding(&mut self, finding: &FindingId, value: FindingValue) -> Result<()> {
        let value = self.clean_finding_value(value)?;
        let field = FieldRef::Finding {
            finding: finding.clone(),
            field: value.field(),
        };
        self.put_field("update finding", &field, FieldValue::Finding(value))
    }

    /// Replaces the narrative with `new_text`, as the smallest splice, so
    /// that edits to different parts made on different devices both survive.
    pub fn set_narrative(&mut self, new_text: &str) -> Result<()> {
        self.check_writer()?;
        let new_text = text::nfc(new_text);
        let len = new_text.chars().count();
        if len > text::MAX_NARRATIVE {
            return Err(Error::TooLong {
                field: "narrative",
                len,
                max: text::MAX_NARRATIVE,
            });
        }
        let obj = self.narrative_obj()?;
        if self.doc.text(&obj)? == new_text {
            return Ok(());
        }
        self.commit("narrative", self.session.now(), |tx| {
            tx.update_text(&obj, &new_text)?;
            Ok(())
        })
    }

    /// Deletes `delete` characters at `pos` and inserts `insert` there.
    pub fn splice_narrative(&mut self, pos: usize, delete: usize, insert: &str) -> Result<()> {
        self.check_writer()?;
        let insert = text::nfc(insert);
        let obj = self.narrative_obj()?;
        let len = self.doc.length(&obj);
        if pos.checked_add(delete).is_none_or(|end| end > len) {
            return Err(Error::NarrativeRange {
                pos,
                del: delete,
                len,
            });
        }
        let new_len = len - delete + insert.chars().count();
        if new_len > text::MAX_NARRATIVE {
            return Err(Error::TooLong {
                field: "narrative",
                len: new_len,
                max: text::MAX_NARRATIVE,
            });
        }
        self.commit("narrative", self.session.now(), |tx| {
            tx.splice_text(&obj, pos, delete as isize, &insert)?;
            Ok(())
        })
    }

    fn narrative_obj(&self) -> Result<automerge::ObjId> {
        match self.doc.get(ROOT, keys::NARRATIVE)? {
            Some((automerge::Value::Object(ObjType::Text), id)) => Ok(id),
            _ => Err(Error::Corrupt("narrative is not text".into())),
        }
    }

    fn current_status(&self) -> Result<VisitStatus> {
        let s: Stamped<StatusEntry> = Reader::new(&self.doc, None)
            .json(&ROOT, keys::STATUS)?
            .ok_or_else(|| Error::NotAVisit("no status".into()))?;
        Ok(s.value.status)
    }

    fn move_to(&mut self, to: VisitStatus, note: &str) -> Result<()> {
        match to {
            VisitStatus::Returned => self.check_supervisor("return the visit")?,
            VisitStatus::Approved => self.check_supervisor("approve the visit")?,
            _ => self.check_writer()?,
        }
        let from = self.current_status()?;
        if !from.can_move_to(to) {
            return Err(Error::InvalidTransition {
                from: from.key(),
                to: to.key(),
            });
        }
        let note = text::optional("status note", note, text::MAX_NOTE)?;
        self.put_field(
            to.key(),
            &FieldRef::Status,
            FieldValue::Status(StatusEntry { status: to, note }),
        )
    }

    /// Draft or returned → submitted.
    pub fn submit(&mut self, note: &str) -> Result<()> {
        self.move_to(VisitStatus::Submitted, note)
    }

    /// Submitted → returned, with the reason.
    pub fn return_visit(&mut self, reason: &str) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(Error::Empty {
                field: "return reason",
            });
        }
        self.move_to(VisitStatus::Returned, reason)
    }

    /// Submitted → approved. Records the heads approved (the document as it
    /// stands before this change). Refused while conflicts remain.
    pub fn approve(&mut self, note: &str) -> Result<Approval> {
        self.approve_signed(note, &|_| Vec::new())
    }

    /// Approves, signing (visit id, approved heads) with `sign` — the
    /// approving device's key (see [`Approval::message`]).
    pub fn approve_signed(
        &mut self,
        note: &str,
        sign: &dyn Fn(&[u8]) -> Vec<u8>,
    ) -> Result<Approval> {
        self.check_supervisor("approve the visit")?;
        let from = self.current_status()?;
        if !from.can_move_to(VisitStatus::Approved) {
            return Err(Error::InvalidTransition {
                from: from.key(),
                to: VisitStatus::Approved.key(),
            });
        }
        let open = self.conflicts()?.len();
        if open > 0 {
            return Err(Error::UnresolvedConflicts(open));
        }
        let note = text::optional("status note", note, text::MAX_NOTE)?;
        let stamp = self.session.stamp();
        let heads = self.doc.get_heads();
        let visit_id = self.meta()?.visit_id;
        let signature = crate::hex::encode(&sign(&Approval::message(visit_id.as_str(), &heads)));
        let approval = Approval {
            id: format!("a-{}", uuid::Uuid::new_v4().simple()),
            heads: heads.iter().map(|h| h.to_string()).collect(),
            stamp: stamp.clone(),
            signature,
        };
        let obj = self.container(keys::APPROVALS)?;
        let record = json(&approval)?;
        let status = stamped(
            StatusEntry {
                status: VisitStatus::Approved,
                note,
            },
            &stamp,
        )?;
        self.commit("approve", stamp.at, |tx| {
            tx.put(&obj, approval.id.as_str(), record)?;
            tx.put(ROOT, keys::STATUS, status)?;
            Ok(())
        })?;
        Ok(approval)
    }

    /// Settles a conflict by writing candidate `candidate` (0 = the value
    /// shown) as the field's value. The conflict disappears on every replica
    /// that receives this change.
    pub fn resolve(&mut self, field: &FieldRef, candidate: usize) -> Result<()> {
        self.check_supervisor("settle a conflict")?;
        let conflict = self
            .conflicts()?
            .into_iter()
            .find(|c| &c.field == field)
            .ok_or_else(|| Error::NoConflict(field.to_string()))?;
        let count = conflict.candidates.len();
        let chosen =
            conflict
                .candidates
                .into_iter()
                .nth(candidate)
                .ok_or(Error::NoSuchCandidate {
                    field: field.to_string(),
                    count,
                    index: candidate,
                })?;
        self.put_field("resolve conflict", field, chosen.value)
    }
}
