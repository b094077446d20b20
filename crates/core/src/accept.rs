//! The acceptance rule for changes received from another replica, decided
//! op by op before Automerge applies anything.
//!
//! A server (for every change a device sends) and an auditor (for every
//! change in stored history) run the same checks, so the two can never
//! disagree. Nothing here does I/O: who may write is asked of the caller
//! through a [`Roles`] lookup.
//!
//! Each change is checked, in causal order, against the document as it
//! stands before it:
//!
//! 1. **Structure** — its author is named; its actor is new and starts at
//!    seq 1 or continues its last change (which must be among its
//!    ancestors); its dependencies are present; its op counter starts past
//!    every op it depends on; every op's object exists and has the kind the
//!    op needs; every pred names exactly the values visible at that key in
//!    the change's own past (so no write can silently remove a value its
//!    author never saw); text elements it names exist in the narrative.
//! 2. **Schema** — which paths exist and what they hold: the visit's
//!    identity (`schema`, `meta`, `template`) and every roster entry's
//!    identity are written once, in the first change; values are JSON of
//!    the right type, valid as the typed API would write them (text NFC
//!    and bounded), and stamped with the change's own author and device;
//!    nothing is deleted except an evidence reference and narrative text.
//! 3. **Role** — inspectors record observations and submit; only
//!    supervisors settle a conflict (any write that supersedes two or more
//!    values), approve, return or add an approval record, which is only
//!    ever added, by the supervisor it names, over the heads the change
//!    itself depends on; status moves only along the life cycle.
//! 4. **Limits** — ops per change, per request and per visit, staff and
//!    findings counts, narrative length.
//!
//! Automerge runs only on changes that passed; as a second line, every call
//! into it here is wrapped so that a panic becomes a refusal.

use automerge::legacy::{self as am, ElementId, Key, ObjectId, OpId, OpType};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::ids::{CheckId, EvidenceHash, FindingId, StaffId};
use crate::model::{
    Attendance, CheckEntry, ConductEntry, ConductKind, FindingField, Role, StaffMember,
    StatusEntry, VisitMeta, VisitStatus,
};
use crate::session::{Editor, Stamp, Stamped};
use crate::state::{Approval, FindingValue, Observation, keys};
use crate::template::{CheckDef, Template};
use crate::text;

/// Most ops one change may carry (a pasted narrative of the longest
/// allowed length is one op per character).
pub const MAX_OPS_PER_CHANGE: usize = 120_000;
/// Most ops one visit may hold over its whole history.
pub const MAX_OPS_PER_VISIT: u64 = 1_000_000;
/// Most findings one visit may hold.
pub const MAX_FINDINGS: usize = 1_000;
/// Longest JSON value one slot may hold, bytes (the visit's template and
/// metadata, written once at creation, may be longer).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Longest template or metadata JSON, bytes.
pub const MAX_CREATION_VALUE_BYTES: usize = 1024 * 1024;

/// Ops an offer's `bytes` of changes may hold in all (SPEC §6.1): 16 per
/// byte, at least [`MAX_OPS_PER_CHANGE`]: generous for honest uploads
/// (Automerge's encoding takes at least a few bits per op), small enough
/// that a tiny body cannot unfold into a huge document.
pub fn op_budget(bytes: usize) -> usize {
    bytes.saturating_mul(16).max(MAX_OPS_PER_CHANGE)
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Malformed, or not what the visit schema allows.
    Invalid,
    /// Allowed by the schema but not to this author's role.
    Denied,
    /// A dependency has not arrived: a fuller exchange is needed.
    Missing,
}

/// A refused change: which one, why, in words naming the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub change: Option<ChangeHash>,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Some(h) => {
                let hex = h.to_string();
                write!(f, "change {}: {}", &hex[..12.min(hex.len())], self.reason)
            }
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Refusal {}

/// The role of a change's author, as the caller knows it (the server's
/// device table): `None` when the device is unknown or does not belong to
/// the user the change names.
pub trait Roles {
    fn role(&self, author: &Editor) -> Option<Role>;
}

impl<F: Fn(&Editor) -> Option<Role>> Roles for F {
    fn role(&self, author: &Editor) -> Option<Role> {
        self(author)
    }
}

/// What one accepted change was: its hash and the author it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub hash: ChangeHash,
    pub author: Editor,
}

fn invalid(change: Option<ChangeHash>, reason: impl Into<String>) -> Refusal {
    Refusal {
        kind: RefusalKind::Invalid,
        change,
        reason: reason.into(),
    }
}

fn denied(change: Option<ChangeHash>, reason: impl Into<String>) -> Refusal {
    Refusal {
        kind: RefusalKind::Denied,
        change,
        reason: reason.into(),
    }
}

/// Runs `f`, turning a panic inside Automerge into a refusal.
fn guarded<T>(change: Option<ChangeHash>, f: impl FnOnce() -> T) -> Result<T, Refusal> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| invalid(change, "Automerge could not process this change"))
}

/// What a schema object is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Staff,
    Attendance,
    Conduct,
    Checks,
    Evidence,
    Findings,
    Approvals,
    /// One finding's map.
    Finding,
    Narrative,
}

/// The containers every visit's first change creates, by root key.
const CONTAINERS: [(&str, Kind); 7] = [
    (keys::STAFF, Kind::Staff),
    (keys::ATTENDANCE, Kind::Attendance),
    (keys::CONDUCT, Kind::Conduct),
    (keys::CHECKS, Kind::Checks),
    (keys::EVIDENCE, Kind::Evidence),
    (keys::FINDINGS, Kind::Findings),
    (keys::APPROVALS, Kind::Approvals),
];

fn op_id_of(ex: &automerge::ObjId) -> Option<OpId> {
    match ex {
        automerge::ObjId::Id(counter, actor, _) => Some(OpId(*counter, actor.clone())),
        automerge::ObjId::Root => None,
    }
}

/// One actor's changes, by seq: `(start_op, max_op, hash)`.
#[derive(Default)]
struct ActorLog {
    changes: Vec<(u64, u64, ChangeHash)>,
    author: Option<Editor>,
}

struct Meta {
    actor: ActorId,
    seq: u64,
    max_op: u64,
    deps: Vec<ChangeHash>,
}

/// The acceptance rule's working state over one document.
pub(crate) struct Acceptor<'r> {
    doc: Automerge,
    roles: &'r dyn Roles,
    actors: HashMap<ActorId, ActorLog>,
    metas: HashMap<ChangeHash, Meta>,
    /// Schema objects by op id, with the id Automerge reads them by (none
    /// when working from the ledger).
    objects: HashMap<OpId, (Kind, Option<automerge::ObjId>)>,
    narrative: Option<OpId>,
    template: Option<Template>,
    decoded: HashMap<ChangeHash, am::Change>,
    ops_total: u64,
    /// For a visit checked from its first change: the checks read this
    /// instead of the document, and the changes are applied all at once
    /// at the end (Automerge applies one change at a time slowly).
    ledger: Option<Ledger>,
    /// Changes checked in ledger mode, to apply at the end.
    pending: Vec<Change>,
    /// Whether `pending` is kept (not when the caller has the document).
    keep_pending: bool,
    /// The clock the last checked change was read at (ledger mode).
    last_clock: Option<Vec<u64>>,
}

/// Where a change sits: its actor (by index, see [`Ledger::actor`]) and seq.
type At = (u32, u64);

/// One op written at a map key, and the changes that superseded it.
struct Written {
    id: OpId,
    at: At,
    /// The value (JSON text), to tell a conflict from agreement later.
    value: Option<String>,
    superseded: Vec<At>,
}

/// Most entries all of a visit's change clocks may hold (one per actor in
/// each change's past): a history of many interleaved actors costs memory
/// as the product of its changes and actors.
pub const MAX_CLOCK_ENTRIES: usize = 4_000_000;

/// The visit as a record of every op, for checking a history from its
/// first change without applying each change to a document.
#[derive(Default)]
struct Ledger {
    /// Each actor's index, in the order they first appear.
    actors: HashMap<ActorId, u32>,
    /// Map ops by object (`None` is the root), then key.
    slots: HashMap<Option<OpId>, HashMap<String, Vec<Written>>>,
    /// Narrative characters by the op that inserted them.
    elements: HashMap<OpId, At>,
    deleted: HashSet<OpId>,
    /// Each change's clock: by actor index, the highest seq of that actor
    /// in its past (itself included).
    clocks: HashMap<ChangeHash, std::rc::Rc<Vec<u64>>>,
    clock_entries: usize,
    staff: usize,
    findings: usize,
}

impl Ledger {
    /// The index of `actor`, given one if new.
    fn actor(&mut self, actor: &ActorId) -> u32 {
        if let Some(i) = self.actors.get(actor) {
            return *i;
        }
        let i = self.actors.len() as u32;
        self.actors.insert(actor.clone(), i);
        i
    }

    /// The clock of the changes `deps` name, merged.
    fn clock(&self, deps: &[ChangeHash]) -> Vec<u64> {
        let mut clock: Vec<u64> = Vec::new();
        for d in deps {
            if let Some(c) = self.clocks.get(d) {
                if clock.len() < c.len() {
                    clock.resize(c.len(), 0);
                }
                for (mine, theirs) in clock.iter_mut().zip(c.iter()) {
                    *mine = (*mine).max(*theirs);
                }
            }
        }
        clock
    }

    /// Whether the change at `at` is in the past of a change with `deps`.
    fn in_past(&self, at: &At, deps: &[ChangeHash]) -> bool {
        deps.iter().any(|d| {
            self.clocks
                .get(d)
                .is_some_and(|c| c.get(at.0 as usize).is_some_and(|s| *s >= at.1))
        })
    }

    fn visible(&self, obj: &Option<OpId>, key: &str, clock: &[u64]) -> Vec<(OpId, Option<String>)> {
        let past = |at: &At| clock.get(at.0 as usize).is_some_and(|s| *s >= at.1);
        self.slots
            .get(obj)
            .and_then(|keys| keys.get(key))
            .map(|all| {
                all.iter()
                    .filter(|w| past(&w.at) && !w.superseded.iter().any(past))
                    .map(|w| (w.id.clone(), w.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `obj` holds anything at `key`.
    fn holds(&self, obj: &Option<OpId>, key: &str) -> bool {
        self.slots
            .get(obj)
            .is_some_and(|keys| keys.contains_key(key))
    }

    /// Records a change's ops, and its clock (`clock`: its dependencies').
    fn record(&mut self, h: ChangeHash, d: &am::Change, clock: Vec<u64>) -> Result<(), Refusal> {
        let at: At = (self.actor(&d.actor_id), d.seq);
        let start = d.start_op.get();
        for (i, op) in d.operations.iter().enumerate() {
            let id = OpId(start + i as u64, d.actor_id.clone());
            let obj = match &op.obj {
                ObjectId::Root => None,
                ObjectId::Id(o) => Some(o.clone()),
            };
            match (&op.key, &op.action) {
                (Key::Seq(_), OpType::Put(_)) if op.insert => {
                    self.elements.insert(id, at);
                }
                (Key::Seq(ElementId::Id(e)), OpType::Delete) => {
                    self.deleted.insert(e.clone());
                }
                (Key::Map(k), action) => {
                    let value = match action {
                        OpType::Put(ScalarValue::Str(s)) => Some(s.to_string()),
                        _ => None,
                    };
                    let keys = self.slots.entry(obj).or_default();
                    let slot = match keys.get_mut(k.as_str()) {
                        Some(s) => s,
                        None => keys.entry(k.to_string()).or_default(),
                    };
                    if !op.pred.is_empty() {
                        for w in slot.iter_mut() {
                            if op.pred.iter().any(|p| *p == w.id) {
                                w.superseded.push(at);
                            }
                        }
                    }
                    if !matches!(action, OpType::Delete) {
                        slot.push(Written {
                            id,
                            at,
                            value,
                            superseded: Vec::new(),
                        });
                    }
                }
                _ => {}
            }
        }
        let mut clock = clock;
        let own = at.0 as usize;
        if clock.len() <= own {
            clock.resize(own + 1, 0);
        }
        clock[own] = clock[own].max(at.1);
        self.clock_entries = self.clock_entries.saturating_add(clock.len());
        if self.clock_entries > MAX_CLOCK_ENTRIES {
            return Err(invalid(
                Some(h),
                format!(
                    "brings the visit's history past {MAX_CLOCK_ENTRIES} clock entries \
                     (too many actors' changes interleaved to check)"
                ),
            ));
        }
        self.clocks.insert(h, std::rc::Rc::new(clock));
        Ok(())
    }
}

/// A change's ops checked against the document; what applying it will add.
#[derive(Default)]
struct Effects {
    new_findings: usize,
    approves: bool,
    adds_approval: bool,
}

impl<'r> Acceptor<'r> {
    /// Starts from `doc` (empty for a new visit).
    pub(crate) fn new(doc: Automerge, roles: &'r dyn Roles) -> Result<Self, Refusal> {
        let mut me = Self {
            doc,
            roles,
            actors: HashMap::new(),
            metas: HashMap::new(),
            objects: HashMap::new(),
            narrative: None,
            template: None,
            decoded: HashMap::new(),
            ops_total: 0,
            ledger: None,
            pending: Vec::new(),
            keep_pending: true,
            last_clock: None,
        };
        let metas = guarded(None, || {
            me.doc
                .get_changes_meta(&[])
                .into_iter()
                .map(|m| m.into_owned())
                .collect::<Vec<_>>()
        })?;
        for m in metas {
            let log = me.actors.entry(m.actor.clone().into_owned()).or_default();
            if log.author.is_none() {
                log.author = m
                    .author
                    .as_ref()
                    .and_then(|a| Editor::from_author_bytes(a.as_bytes()));
            }
            log.changes.push((m.start_op, m.max_op, m.hash));
            me.ops_total = me.ops_total.max(m.max_op);
            me.metas.insert(
                m.hash,
                Meta {
                    actor: m.actor.into_owned(),
                    seq: m.seq,
                    max_op: m.max_op,
                    deps: m.deps,
                },
            );
        }
        if !me.metas.is_empty() {
            me.index_schema()?;
        }
        Ok(me)
    }

    /// Starts a visit from its first change, checked from the ledger.
    pub(crate) fn from_scratch(roles: &'r dyn Roles) -> Result<Self, Refusal> {
        let mut me = Self::new(Automerge::new(), roles)?;
        me.ledger = Some(Ledger::default());
        Ok(me)
    }

    /// The document with every accepted change applied.
    pub(crate) fn into_doc(mut self) -> Result<Automerge, Refusal> {
        if !self.pending.is_empty() {
            let changes = std::mem::take(&mut self.pending);
            let doc = &mut self.doc;
            guarded(None, || doc.apply_changes(changes))?
                .map_err(|e| invalid(None, format!("Automerge refused the changes: {e}")))?;
        }
        Ok(self.doc)
    }

    /// Reads the schema objects of the document as it stands.
    fn index_schema(&mut self) -> Result<(), Refusal> {
        let corrupt = |what: &str| invalid(None, format!("the visit's {what} is damaged"));
        let doc = &self.doc;
        let mut objects = HashMap::new();
        for (key, kind) in CONTAINERS {
            let all = doc.get_all(ROOT, key).map_err(|_| corrupt(key))?;
            let [(automerge::Value::Object(ObjType::Map), ex)] = all.as_slice() else {
                return Err(corrupt(key));
            };
            let id = op_id_of(ex).ok_or_else(|| corrupt(key))?;
            objects.insert(id, (kind, Some(ex.clone())));
        }
        let all = doc
            .get_all(ROOT, keys::NARRATIVE)
            .map_err(|_| corrupt("narrative"))?;
        let [(automerge::Value::Object(ObjType::Text), ex)] = all.as_slice() else {
            return Err(corrupt("narrative"));
        };
        let narrative = op_id_of(ex).ok_or_else(|| corrupt("narrative"))?;
        objects.insert(narrative.clone(), (Kind::Narrative, Some(ex.clone())));
        let findings = objects
            .values()
            .find(|(k, _)| *k == Kind::Findings)
            .and_then(|(_, ex)| ex.clone())
            .ok_or_else(|| corrupt("findings"))?;
        for key in doc.keys(&findings).collect::<Vec<_>>() {
            for (value, ex) in doc
                .get_all(&findings, key.as_str())
                .map_err(|_| corrupt("findings"))?
            {
                if let (automerge::Value::Object(ObjType::Map), Some(id)) = (value, op_id_of(&ex)) {
                    objects.insert(id, (Kind::Finding, Some(ex)));
                }
            }
        }
        let template = match doc.get(ROOT, keys::TEMPLATE) {
            Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(json) => serde_json::from_str::<Template>(json).ok(),
                _ => None,
            },
            _ => None,
        };
        self.template = Some(template.ok_or_else(|| corrupt("template"))?);
        self.objects = objects;
        self.narrative = Some(narrative);
        Ok(())
    }

    /// Records a checked change in the ledger (ledger mode).
    fn record_in_ledger(
        &mut self,
        change: &Change,
        d: am::Change,
        first: bool,
    ) -> Result<(), Refusal> {
        let h = change.hash();
        if first {
            self.index_creation(change, &d)?;
        }
        let findings = self.container_id(Kind::Findings);
        let staff = self.container_id(Kind::Staff);
        // The ledger keeps what later checks need; the decoded ops go.
        let Some(ledger) = self.ledger.as_mut() else {
            return Ok(());
        };
        let clock = match self.last_clock.take() {
            Some(c) => c,
            None => ledger.clock(change.deps()),
        };
        ledger.record(h, &d, clock)?;
        let start = d.start_op.get();
        for (i, op) in d.operations.iter().enumerate() {
            let ObjectId::Id(o) = &op.obj else { continue };
            if matches!(op.action, OpType::Make(ObjType::Map)) && Some(o) == findings.as_ref() {
                self.objects.insert(
                    OpId(start + i as u64, d.actor_id.clone()),
                    (Kind::Finding, None),
                );
                ledger.findings += 1;
            }
            if matches!(op.action, OpType::Put(_))
                && op.pred.is_empty()
                && Some(o) == staff.as_ref()
            {
                ledger.staff += 1;
            }
        }
        Ok(())
    }

    /// The schema objects a visit's first change creates, read off its ops.
    fn index_creation(&mut self, change: &Change, d: &am::Change) -> Result<(), Refusal> {
        let h = Some(change.hash());
        let start = d.start_op.get();
        let mut objects = HashMap::new();
        let mut narrative = None;
        let mut template = None;
        for (i, op) in d.operations.iter().enumerate() {
            let id = OpId(start + i as u64, d.actor_id.clone());
            let (ObjectId::Root, Key::Map(k)) = (&op.obj, &op.key) else {
                continue;
            };
            match &op.action {
                OpType::Make(ObjType::Map) => {
                    if let Some((_, kind)) = CONTAINERS.iter().find(|(key, _)| *key == k.as_str()) {
                        objects.insert(id, (kind.clone(), None));
                    }
                }
                OpType::Make(ObjType::Text) if k.as_str() == keys::NARRATIVE => {
                    objects.insert(id.clone(), (Kind::Narrative, None));
                    narrative = Some(id);
                }
                OpType::Put(ScalarValue::Str(json)) if k.as_str() == keys::TEMPLATE => {
                    // Read once by the creation check when it passed.
                    template = self
                        .template
                        .take()
                        .or_else(|| serde_json::from_str::<Template>(json).ok());
                }
                _ => {}
            }
        }
        if objects.len() != CONTAINERS.len() + 1 || narrative.is_none() || template.is_none() {
            return Err(invalid(
                h,
                "a visit's first change must create the visit's fields",
            ));
        }
        self.objects = objects;
        self.narrative = narrative;
        self.template = template;
        Ok(())
    }

    /// Orders `changes` so that each comes after its dependencies among
    /// them; drops those already held and duplicates. A change whose
    /// dependency is neither held nor among them is `Missing`.
    pub(crate) fn causal_order(&self, changes: Vec<Change>) -> Result<Vec<Change>, Refusal> {
        // Most often (a document's history, a device's upload) they come
        // in causal order already, each once and none held.
        let mut seen: HashSet<ChangeHash> = HashSet::with_capacity(changes.len());
        let ordered = changes.iter().all(|c| {
            let h = c.hash();
            c.deps()
                .iter()
                .all(|d| seen.contains(d) || self.metas.contains_key(d))
                && !self.metas.contains_key(&h)
                && seen.insert(h)
        });
        if ordered {
            return Ok(changes);
        }
        drop(seen);
        let mut pending: HashMap<ChangeHash, Change> = HashMap::new();
        let mut order: Vec<ChangeHash> = Vec::new();
        for c in changes {
            let h = c.hash();
            if self.metas.contains_key(&h) || pending.contains_key(&h) {
                continue;
            }
            order.push(h);
            pending.insert(h, c);
        }
        for c in pending.values() {
            if let Some(d) = c
                .deps()
                .iter()
                .find(|d| !self.metas.contains_key(d) && !pending.contains_key(d))
            {
                return Err(Refusal {
                    kind: RefusalKind::Missing,
                    change: Some(c.hash()),
                    reason: format!("depends on change {d}, which has not arrived"),
                });
            }
        }
        // Kahn's algorithm, keeping the offered order among ready changes.
        let mut waiting: HashMap<ChangeHash, usize> = HashMap::new();
        let mut dependents: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        for h in &order {
            let c = &pending[h];
            let n = c.deps().iter().filter(|d| pending.contains_key(d)).count();
            waiting.insert(*h, n);
            for d in c.deps().iter().filter(|d| pending.contains_key(d)) {
                dependents.entry(*d).or_default().push(*h);
            }
        }
        let mut ready: std::collections::VecDeque<ChangeHash> =
            order.iter().filter(|h| waiting[*h] == 0).copied().collect();
        let mut out = Vec::with_capacity(order.len());
        while let Some(h) = ready.pop_front() {
            if let Some(next) = dependents.get(&h) {
                for n in next {
                    if let Some(w) = waiting.get_mut(n) {
                        *w -= 1;
                        if *w == 0 {
                            ready.push_back(*n);
                        }
                    }
                }
            }
            if let Some(c) = pending.remove(&h) {
                out.push(c);
            }
        }
        if !pending.is_empty() {
            return Err(invalid(None, "the changes' dependencies form a cycle"));
        }
        Ok(out)
    }

    /// Checks one change against the document and applies it.
    pub(crate) fn accept(&mut self, change: Change) -> Result<Accepted, Refusal> {
        let (author, decoded) = self.check(&change)?;
        self.apply(change, &author, Some(decoded))?;
        Ok(author)
    }

    /// Applies a change that was checked (or, when auditing, one that was
    /// stored whatever it holds), updating the indexes.
    fn apply(
        &mut self,
        change: Change,
        accepted: &Accepted,
        decoded: Option<am::Change>,
    ) -> Result<(), Refusal> {
        let h = change.hash();
        let actor = change.actor_id().clone();
        let (seq, start, max_op) = (change.seq(), change.start_op().get(), change.max_op());
        let deps = change.deps().to_vec();
        let first = self.metas.is_empty();
        if self.ledger.is_some() {
            let d = match decoded {
                Some(d) => d,
                None => guarded(Some(h), || change.decode())?,
            };
            self.record_in_ledger(&change, d, first)?;
            if self.keep_pending {
                self.pending.push(change);
            }
        } else {
            if let Some(d) = decoded {
                self.decoded.insert(h, d);
            }
            let applied = guarded(Some(h), || self.doc.apply_changes([change]))?;
            applied.map_err(|e| invalid(Some(h), format!("Automerge refused it: {e}")))?;
            if !self.doc.get_missing_deps(&[]).is_empty() {
                return Err(invalid(
                    Some(h),
                    "it was queued: its dependencies are missing",
                ));
            }
        }
        let log = self.actors.entry(actor.clone()).or_default();
        if log.author.is_none() {
            log.author = Some(accepted.author.clone());
        }
        log.changes.push((start, max_op, h));
        self.ops_total = self.ops_total.max(max_op);
        self.metas.insert(
            h,
            Meta {
                actor,
                seq,
                max_op,
                deps,
            },
        );
        if self.ledger.is_some() {
            return Ok(());
        }
        if first {
            self.index_schema()?;
        } else if let Some(d) = self.decoded.get(&h) {
            // New findings' maps become schema objects.
            let start = d.start_op.get();
            let made: Vec<OpId> = d
                .operations
                .iter()
                .enumerate()
                .filter(|(_, op)| matches!(op.action, OpType::Make(ObjType::Map)))
                .map(|(i, _)| OpId(start + i as u64, d.actor_id.clone()))
                .collect();
            if !made.is_empty() {
                self.index_schema()?;
            }
        }
        Ok(())
    }

    /// The author a change names: its own author field, or its actor's.
    fn author_of(&self, change: &Change) -> Result<Editor, Refusal> {
        let h = Some(change.hash());
        let own = match change.author() {
            Some(a) => Some(
                Editor::from_author_bytes(a.as_bytes())
                    .ok_or_else(|| invalid(h, "its author field is not a kiemtra author"))?,
            ),
            None => None,
        };
        let actors = self
            .actors
            .get(change.actor_id())
            .and_then(|l| l.author.clone());
        match (own, actors) {
            (Some(a), Some(b)) if a != b => Err(invalid(
                h,
                format!(
                    "names author {}/{} but its actor is {}/{}'s",
                    a.device, a.user, b.device, b.user
                ),
            )),
            (Some(a), _) | (None, Some(a)) => Ok(a),
            (None, None) => Err(invalid(h, "names no author")),
        }
    }

    /// Whether `target` is `from` or one of its ancestors.
    fn is_ancestor(&self, target: &ChangeHash, from: &[ChangeHash]) -> bool {
        if from.contains(target) {
            return true;
        }
        let mut stack: Vec<ChangeHash> = from.to_vec();
        let mut seen: HashSet<ChangeHash> = HashSet::new();
        let floor = self.metas.get(target).map(|m| (m.actor.clone(), m.seq));
        while let Some(h) = stack.pop() {
            if h == *target {
                return true;
            }
            if !seen.insert(h) {
                continue;
            }
            if let Some(m) = self.metas.get(&h) {
                // An actor's earlier changes cannot lead to a later one.
                if let Some((actor, seq)) = &floor
                    && m.actor == *actor
                    && m.seq < *seq
                {
                    continue;
                }
                stack.extend(m.deps.iter().copied());
            }
        }
        false
    }

    /// The structural checks of a change's header.
    fn check_header(&self, change: &Change) -> Result<(), Refusal> {
        let h = Some(change.hash());
        if change.len() > MAX_OPS_PER_CHANGE {
            return Err(invalid(
                h,
                format!(
                    "holds {} ops; at most {MAX_OPS_PER_CHANGE} are allowed in one change",
                    change.len()
                ),
            ));
        }
        let max_op = change.max_op();
        if max_op > MAX_OPS_PER_VISIT {
            return Err(invalid(
                h,
                format!("would bring the visit past {MAX_OPS_PER_VISIT} ops"),
            ));
        }
        // Only the visit's first change has no past: any other must build
        // on it, so that every object its ops name is in its past.
        if change.deps().is_empty() && !self.metas.is_empty() {
            return Err(invalid(
                h,
                "depends on no change; only a visit's first change may",
            ));
        }
        let mut max_dep = 0;
        for d in change.deps() {
            let Some(m) = self.metas.get(d) else {
                return Err(Refusal {
                    kind: RefusalKind::Missing,
                    change: h,
                    reason: format!("depends on change {d}, which has not arrived"),
                });
            };
            max_dep = max_dep.max(m.max_op);
        }
        if change.start_op().get() <= max_dep {
            return Err(invalid(
                h,
                "its op counter does not start after the ops it depends on",
            ));
        }
        let log = self.actors.get(change.actor_id());
        let last = log.and_then(|l| l.changes.last());
        match last {
            None if change.seq() != 1 => Err(invalid(
                h,
                format!("is its actor's first change but has seq {}", change.seq()),
            )),
            Some(_) if change.seq() != log.map_or(0, |l| l.changes.len() as u64) + 1 => {
                Err(invalid(
                    h,
                    format!(
                        "has seq {} but its actor's last change is seq {}",
                        change.seq(),
                        log.map_or(0, |l| l.changes.len())
                    ),
                ))
            }
            Some((_, last_max, last_hash)) => {
                if change.start_op().get() <= *last_max {
                    return Err(invalid(h, "reuses op ids of its actor's earlier change"));
                }
                if !self.is_ancestor(last_hash, change.deps()) {
                    return Err(invalid(h, "does not build on its actor's previous change"));
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// All checks of one change; the author it names, or why it is refused.
    fn check(&mut self, change: &Change) -> Result<(Accepted, am::Change), Refusal> {
        self.last_clock = None;
        let h = change.hash();
        let author = self.author_of(change)?;
        self.check_header(change)?;
        let role = match self.roles.role(&author) {
            Some(r @ (Role::Inspector | Role::Supervisor)) => r,
            Some(r) => {
                return Err(denied(
                    Some(h),
                    format!(
                        "is by a {} device; {}s never write visit contents",
                        r.key(),
                        r.key()
                    ),
                ));
            }
            None => {
                return Err(denied(
                    Some(h),
                    format!(
                        "names device {} of user {}, which may not write this visit",
                        author.device, author.user
                    ),
                ));
            }
        };
        let decoded = guarded(Some(h), || change.decode())?;
        if self.metas.is_empty() {
            self.template = Some(self.check_creation(change, &decoded, &author)?);
        } else {
            let effects = self.check_ops(change, &decoded, &author, role)?;
            self.check_effects(h, &effects)?;
        }
        Ok((Accepted { hash: h, author }, decoded))
    }

    fn check_effects(&self, h: ChangeHash, e: &Effects) -> Result<(), Refusal> {
        if e.approves && !e.adds_approval {
            return Err(invalid(
                Some(h),
                "approves the visit without recording the approval",
            ));
        }
        if e.new_findings > 0 {
            let n = match &self.ledger {
                Some(l) => l.findings,
                None => self
                    .container(Kind::Findings)
                    .map_or(0, |f| self.doc.length(f)),
            };
            if n + e.new_findings > MAX_FINDINGS {
                return Err(invalid(
                    Some(h),
                    format!("would bring the visit past {MAX_FINDINGS} findings"),
                ));
            }
        }
        Ok(())
    }

    fn container(&self, kind: Kind) -> Option<&automerge::ObjId> {
        self.objects
            .values()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, ex)| ex.as_ref())
    }

    fn container_id(&self, kind: Kind) -> Option<OpId> {
        self.objects
            .iter()
            .find(|(_, (k, _))| *k == kind)
            .map(|(id, _)| id.clone())
    }

    /// The first change of a visit: exactly what [`crate::Visit::create`]
    /// writes, read off its ops (each field written once, at the root, and
    /// roster entries into its own staff map). Returns the template it holds.
    fn check_creation(
        &self,
        change: &Change,
        decoded: &am::Change,
        author: &Editor,
    ) -> Result<Template, Refusal> {
        let h = Some(change.hash());
        if !change.deps().is_empty() || change.seq() != 1 {
            return Err(invalid(
                h,
                "a visit's first change must have no dependencies",
            ));
        }
        let bad = |what: &str| invalid(h, format!("a visit's first change {what}"));
        let start = change.start_op().get();
        let staff_id = decoded.operations.iter().enumerate().find_map(|(i, op)| {
            (op.obj == ObjectId::Root
                && op.key == Key::Map(keys::STAFF.into())
                && op.action == OpType::Make(ObjType::Map))
            .then(|| OpId(start + i as u64, decoded.actor_id.clone()))
        });
        let fields: [&str; 12] = [
            keys::SCHEMA,
            keys::META,
            keys::TEMPLATE,
            keys::STAFF,
            keys::ATTENDANCE,
            keys::CONDUCT,
            keys::CHECKS,
            keys::EVIDENCE,
            keys::FINDINGS,
            keys::NARRATIVE,
            keys::STATUS,
            keys::APPROVALS,
        ];
        // Each field's one op, and the roster entries, by key.
        let mut root: [Option<&OpType>; 12] = [None; 12];
        let mut roster: HashMap<&str, &str> = HashMap::new();
        for op in &decoded.operations {
            // The creation change writes only at the root and into its own
            // staff map, never with preds, and no deletes.
            if !op.pred.is_empty() || op.insert || matches!(op.action, OpType::Delete) {
                return Err(invalid(h, "a visit's first change only creates"));
            }
            let Key::Map(key) = &op.key else {
                return Err(invalid(h, "a visit's first change only creates"));
            };
            if let OpType::Put(ScalarValue::Str(s)) = &op.action
                && s.len() > MAX_CREATION_VALUE_BYTES
            {
                return Err(invalid(
                    h,
                    "a value of the visit's first change is too long",
                ));
            }
            match &op.obj {
                ObjectId::Root => {
                    let i = fields
                        .iter()
                        .position(|f| *f == key.as_str())
                        .ok_or_else(|| bad("must write exactly the visit's fields"))?;
                    if root[i].replace(&op.action).is_some() {
                        return Err(bad(&format!("writes {key} twice")));
                    }
                }
                ObjectId::Id(id) if Some(id) == staff_id.as_ref() => {
                    let OpType::Put(ScalarValue::Str(json)) = &op.action else {
                        return Err(bad("holds a roster entry that is not JSON text"));
                    };
                    if roster.insert(key.as_str(), json.as_str()).is_some() {
                        return Err(bad(&format!("writes roster entry {key} twice")));
                    }
                }
                ObjectId::Id(_) => {
                    return Err(invalid(
                        h,
                        "a visit's first change writes only its roster into a container",
                    ));
                }
            }
        }
        let field = |key: &str| -> Option<&OpType> {
            fields.iter().position(|f| *f == key).and_then(|i| root[i])
        };
        if root.iter().any(|f| f.is_none()) {
            return Err(bad("must write exactly the visit's fields"));
        }
        let string = |key: &str| -> Result<&str, Refusal> {
            match field(key) {
                Some(OpType::Put(ScalarValue::Str(s))) => Ok(s.as_str()),
                _ => Err(bad(&format!("must write {key} as JSON text"))),
            }
        };
        // The template first: it decides the document schema.
        let template = Template::from_json(string(keys::TEMPLATE)?)
            .map_err(|e| bad(&format!("holds an invalid template: {e}")))?;
        let schema = template.document_schema();
        if !matches!(field(keys::SCHEMA), Some(OpType::Put(ScalarValue::Uint(v))) if *v == schema) {
            return Err(bad(&format!(
                "must write schema {schema} for a template {}",
                if template.has_values() {
                    "with valued checks"
                } else {
                    "of pass/fail checks only"
                }
            )));
        }
        let meta: VisitMeta = serde_json::from_str(string(keys::META)?)
            .map_err(|e| bad(&format!("holds unreadable metadata: {e}")))?;
        if meta.created_by != author.user {
            return Err(bad("names another creator than its author"));
        }
        let clean = crate::model::Unit::new(
            meta.unit.code.clone(),
            &meta.unit.name,
            meta.unit.kind,
            &meta.unit.area,
        )
        .map_err(|e| bad(&format!("holds an invalid unit: {e}")))?;
        if clean != meta.unit {
            return Err(bad("holds a unit not written as the app writes it"));
        }
        if template.id != meta.template_id || template.version != meta.template_version {
            return Err(bad("names another template than it holds"));
        }
        let status: Stamped<StatusEntry> = serde_json::from_str(string(keys::STATUS)?)
            .map_err(|e| bad(&format!("holds an unreadable status: {e}")))?;
        if status.value.status != VisitStatus::Draft || !status.value.note.is_empty() {
            return Err(bad("must start the visit as a draft"));
        }
        check_stamp(h, &status.stamp, author)?;
        for (key, _) in CONTAINERS {
            if field(key) != Some(&OpType::Make(ObjType::Map)) {
                return Err(bad(&format!("must create {key} as a map")));
            }
        }
        if field(keys::NARRATIVE) != Some(&OpType::Make(ObjType::Text)) {
            return Err(bad("must create the narrative as empty text"));
        }
        if roster.len() > crate::visit::MAX_STAFF {
            return Err(bad("holds too many staff"));
        }
        for (k, json) in roster {
            check_staff(h, k, json, author, false)?;
        }
        Ok(template)
    }

    /// Values visible at `(obj, key)` in the change's own past.
    fn visible(
        &self,
        obj: &automerge::ObjId,
        key: &str,
        deps: &[ChangeHash],
        h: ChangeHash,
    ) -> Result<Vec<(OpId, Option<String>)>, Refusal> {
        let all = guarded(Some(h), || self.doc.get_all_at(obj, key, deps))?
            .map_err(|e| invalid(Some(h), format!("cannot read {key}: {e}")))?;
        Ok(all
            .into_iter()
            .filter_map(|(v, ex)| {
                let s = match &v {
                    automerge::Value::Scalar(s) => match s.as_ref() {
                        ScalarValue::Str(s) => Some(s.to_string()),
                        _ => None,
                    },
                    _ => None,
                };
                op_id_of(&ex).map(|id| (id, s))
            })
            .collect())
    }

    /// The change holding op `id` (its start op and hash), if held.
    fn change_of_op(&self, id: &OpId) -> Option<(u64, ChangeHash)> {
        let log = self.actors.get(&id.1)?;
        let at = log.changes.partition_point(|(s, _, _)| *s <= id.0);
        let (s, max, hash) = at
            .checked_sub(1)
            .and_then(|i| log.changes.get(i))
            .copied()?;
        (id.0 <= max).then_some((s, hash))
    }

    /// The op a text element id names, if it is an insert into the
    /// narrative made in `decoded` before index `before` or in a change the
    /// document holds (and, unless `past_is_all`, that change an ancestor).
    fn narrative_element(
        &mut self,
        elem: &OpId,
        decoded: &am::Change,
        before: usize,
        deps: &[ChangeHash],
        past_is_all: bool,
    ) -> bool {
        let Some(narrative) = self.narrative.clone() else {
            return false;
        };
        let start = decoded.start_op.get();
        if elem.1 == decoded.actor_id && elem.0 >= start {
            let i = (elem.0 - start) as usize;
            return i < before
                && decoded
                    .operations
                    .get(i)
                    .is_some_and(|op| op.insert && op.obj == ObjectId::Id(narrative.clone()));
        }
        if let Some(ledger) = &self.ledger {
            return ledger
                .elements
                .get(elem)
                .is_some_and(|at| past_is_all || ledger.in_past(at, deps));
        }
        let Some((s, hash)) = self.change_of_op(elem) else {
            return false;
        };
        if !past_is_all && !self.is_ancestor(&hash, deps) {
            return false;
        }
        if !self.decoded.contains_key(&hash) {
            let Some(c) = self.doc.get_change_by_hash(&hash) else {
                return false;
            };
            let Ok(d) = catch_unwind(AssertUnwindSafe(|| c.decode())) else {
                return false;
            };
            self.decoded.insert(hash, d);
        }
        self.decoded.get(&hash).is_some_and(|d| {
            d.operations
                .get((elem.0 - s) as usize)
                .is_some_and(|op| op.insert && op.obj == ObjectId::Id(narrative.clone()))
        })
    }

    /// Checks every op of a change after the first.
    fn check_ops(
        &mut self,
        change: &Change,
        decoded: &am::Change,
        author: &Editor,
        role: Role,
    ) -> Result<Effects, Refusal> {
        let h = change.hash();
        let hs = Some(h);
        let deps = change.deps();
        let clock = self.ledger.as_ref().map(|l| l.clock(deps));
        let past_is_all = match &self.ledger {
            // The ledger reads every key at the change's own clock.
            Some(_) => false,
            None => {
                let mut d = deps.to_vec();
                let mut heads = self.doc.get_heads();
                d.sort();
                heads.sort();
                d == heads
            }
        };
        let start = decoded.start_op.get();
        let mut effects = Effects::default();
        // Values each (object, key) shows after the ops of this change so far.
        let mut local: HashMap<(OpId, String), Vec<OpId>> = HashMap::new();
        let mut made: HashMap<OpId, Kind> = HashMap::new();
        let supervisor = role == Role::Supervisor;
        let ops = decoded.operations.len();
        for (i, op) in decoded.operations.iter().enumerate() {
            let op_id = OpId(start + i as u64, decoded.actor_id.clone());
            let obj_id = match &op.obj {
                ObjectId::Root => None,
                ObjectId::Id(id) => Some(id.clone()),
            };
            let kind = match &obj_id {
                None => None,
                Some(id) => match made.get(id) {
                    Some(k) => Some(k.clone()),
                    None => Some(self.objects.get(id).map(|(k, _)| k.clone()).ok_or_else(
                        || invalid(hs, "writes to an object that is not part of the visit"),
                    )?),
                },
            };
            if kind == Some(Kind::Finding)
                && !past_is_all
                && let Some(id) = &obj_id
                && !made.contains_key(id)
                && !self
                    .change_of_op(id)
                    .is_some_and(|(_, c)| match &self.ledger {
                        Some(l) => self.metas.get(&c).is_some_and(|m| {
                            l.actors
                                .get(&m.actor)
                                .is_some_and(|a| l.in_past(&(*a, m.seq), deps))
                        }),
                        None => self.is_ancestor(&c, deps),
                    })
            {
                return Err(invalid(hs, "writes to a finding its author had not seen"));
            }
            if matches!(
                op.action,
                OpType::Increment(_) | OpType::MarkBegin(_) | OpType::MarkEnd(_)
            ) {
                return Err(invalid(hs, "uses an op kind the visit never holds"));
            }
            if kind == Some(Kind::Narrative) {
                self.check_text_op(op, decoded, i, deps, past_is_all, h)?;
                continue;
            }
            let Key::Map(key) = &op.key else {
                return Err(invalid(hs, "addresses a map by position"));
            };
            if op.insert {
                return Err(invalid(hs, "inserts into a map"));
            }
            let key = key.as_str();
            // What the author saw at this key: earlier ops of this change,
            // else the document at the change's dependencies.
            let local_key = (ops > 1).then(|| {
                (
                    obj_id.clone().unwrap_or(OpId(0, decoded.actor_id.clone())),
                    key.to_owned(),
                )
            });
            let earlier = local_key.as_ref().and_then(|k| local.get(k));
            let seen: Vec<(OpId, Option<String>)> = match earlier {
                Some(ids) => ids.iter().map(|id| (id.clone(), None)).collect(),
                None => match (&obj_id, &self.ledger, &clock) {
                    (Some(id), _, _) if made.contains_key(id) => Vec::new(),
                    (_, Some(ledger), Some(clock)) => ledger.visible(&obj_id, key, clock),
                    (Some(id), _, _) => {
                        let ex = self
                            .objects
                            .get(id)
                            .and_then(|(_, ex)| ex.clone())
                            .ok_or_else(|| {
                                invalid(hs, "writes to an object that is not part of the visit")
                            })?;
                        self.visible(&ex, key, deps, h)?
                    }
                    (None, _, _) => self.visible(&ROOT, key, deps, h)?,
                },
            };
            if !same_ops(op.pred.iter(), seen.iter().map(|(id, _)| id)) {
                return Err(invalid(
                    hs,
                    format!("at {key}, does not supersede exactly the values its author saw"),
                ));
            }
            let settles = disagree(kind.as_ref(), &seen);
            if settles && !supervisor {
                return Err(denied(
                    hs,
                    format!(
                        "by an inspector would settle a conflict at {key}; only a supervisor may"
                    ),
                ));
            }
            let delete = matches!(op.action, OpType::Delete);
            match (&kind, &op.action) {
                (None, _) => {
                    if key != keys::STATUS || delete {
                        return Err(invalid(
                            hs,
                            format!(
                                "writes {key}, which is written once when the visit is created"
                            ),
                        ));
                    }
                    let json = put_str(op, hs)?;
                    let entry: Stamped<StatusEntry> = parse(hs, "status", json)?;
                    check_stamp(hs, &entry.stamp, author)?;
                    check_note(hs, "status note", &entry.value.note)?;
                    let from: Vec<VisitStatus> = seen
                        .iter()
                        .filter_map(|(_, v)| v.as_deref())
                        .filter_map(|s| serde_json::from_str::<Stamped<StatusEntry>>(s).ok())
                        .map(|s| s.value.status)
                        .collect();
                    let to = entry.value.status;
                    check_move(hs, &from, to, role, settles)?;
                    if to == VisitStatus::Approved {
                        effects.approves = true;
                    }
                }
                (Some(Kind::Findings), OpType::Make(ObjType::Map)) => {
                    FindingId::parse(key).map_err(|e| invalid(hs, e.to_string()))?;
                    if !seen.is_empty() {
                        return Err(invalid(hs, format!("reuses finding id {key}")));
                    }
                    made.insert(op_id.clone(), Kind::Finding);
                    effects.new_findings += 1;
                }
                (Some(_), OpType::Make(_)) => {
                    return Err(invalid(
                        hs,
                        format!("creates an object at {key}, where the visit holds none"),
                    ));
                }
                (Some(Kind::Evidence), OpType::Delete) => {
                    self.check_evidence_key(hs, key)?;
                }
                (Some(_), OpType::Delete) => {
                    return Err(invalid(
                        hs,
                        format!("deletes {key}; values are never deleted, only superseded"),
                    ));
                }
                (Some(k), OpType::Put(_)) => {
                    let json = put_str(op, hs)?;
                    let is_new_finding = matches!(&obj_id, Some(id) if made.contains_key(id));
                    self.check_slot(
                        hs,
                        k,
                        key,
                        json,
                        author,
                        role,
                        &seen,
                        is_new_finding,
                        deps,
                        &mut effects,
                    )?;
                }
                _ => return Err(invalid(hs, "uses an op kind the visit never holds")),
            }
            let after = if delete {
                Vec::new()
            } else {
                vec![op_id.clone()]
            };
            if let Some(k) = local_key {
                local.insert(k, after);
            }
        }
        // The ledger records the change at the clock it was read at.
        self.last_clock = clock;
        Ok(effects)
    }

    fn check_evidence_key(&self, h: Option<ChangeHash>, key: &str) -> Result<(), Refusal> {
        let (check, hash) = key
            .split_once('/')
            .ok_or_else(|| invalid(h, format!("evidence key {key:?} is not check/sha256")))?;
        let check = CheckId::parse(check).map_err(|e| invalid(h, e.to_string()))?;
        EvidenceHash::parse(hash).map_err(|e| invalid(h, e.to_string()))?;
        self.require_check(h, &check)
    }

    fn require_check(&self, h: Option<ChangeHash>, check: &CheckId) -> Result<(), Refusal> {
        self.check_def(h, check).map(|_| ())
    }

    /// The check's definition in the visit's template.
    fn check_def(&self, h: Option<ChangeHash>, check: &CheckId) -> Result<&CheckDef, Refusal> {
        self.template
            .as_ref()
            .and_then(|t| t.check(check))
            .ok_or_else(|| {
                invalid(
                    h,
                    format!("names office check {check}, which is not in the visit's template"),
                )
            })
    }

    fn require_staff(&self, h: Option<ChangeHash>, staff: &StaffId) -> Result<(), Refusal> {
        let known = match &self.ledger {
            Some(l) => self
                .container_id(Kind::Staff)
                .is_some_and(|obj| l.holds(&Some(obj), staff.as_str())),
            None => self
                .container(Kind::Staff)
                .is_some_and(|obj| matches!(self.doc.get(obj, staff.as_str()), Ok(Some(_)))),
        };
        if known {
            Ok(())
        } else {
            Err(invalid(
                h,
                format!("names staff member {staff}, who is not in the visit"),
            ))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_slot(
        &self,
        h: Option<ChangeHash>,
        kind: &Kind,
        key: &str,
        json: &str,
        author: &Editor,
        role: Role,
        seen: &[(OpId, Option<String>)],
        in_new_finding: bool,
        deps: &[ChangeHash],
        effects: &mut Effects,
    ) -> Result<(), Refusal> {
        if json.len() > MAX_VALUE_BYTES {
            return Err(invalid(
                h,
                format!(
                    "writes {} bytes at {key}; at most {MAX_VALUE_BYTES}",
                    json.len()
                ),
            ));
        }
        match kind {
            Kind::Staff => {
                if !seen.is_empty() {
                    return Err(invalid(
                        h,
                        format!("rewrites roster entry {key}, which is written once"),
                    ));
                }
                check_staff(h, key, json, author, true)?;
                let n = match &self.ledger {
                    Some(l) => l.staff,
                    None => self
                        .container(Kind::Staff)
                        .map_or(0, |o| self.doc.length(o)),
                };
                if n >= crate::visit::MAX_STAFF {
                    return Err(invalid(h, "would bring the visit past its staff limit"));
                }
            }
            Kind::Attendance => {
                let staff = StaffId::parse(key).map_err(|e| invalid(h, e.to_string()))?;
                self.require_staff(h, &staff)?;
                let v: Stamped<Attendance> = parse(h, "attendance", json)?;
                check_stamp(h, &v.stamp, author)?;
                let clean = Attendance::new(v.value.mark, &v.value.note, v.value.observed_at)
                    .map_err(|e| invalid(h, e.to_string()))?;
                if clean != v.value {
                    return Err(invalid(
                        h,
                        "writes an attendance note that is not trimmed NFC",
                    ));
                }
            }
            Kind::Conduct => {
                let (staff, check) = key
                    .split_once('/')
                    .ok_or_else(|| invalid(h, format!("conduct key {key:?} is not staff/check")))?;
                let staff = StaffId::parse(staff).map_err(|e| invalid(h, e.to_string()))?;
                ConductKind::parse(check).map_err(|e| invalid(h, e.to_string()))?;
                self.require_staff(h, &staff)?;
                let v: Stamped<ConductEntry> = parse(h, "conduct", json)?;
                check_stamp(h, &v.stamp, author)?;
                check_note(h, "conduct note", &v.value.note)?;
            }
            Kind::Checks => {
                let check = CheckId::parse(key).map_err(|e| invalid(h, e.to_string()))?;
                self.require_check(h, &check)?;
                let v: Stamped<CheckEntry> = parse(h, "office check", json)?;
                check_stamp(h, &v.stamp, author)?;
                check_note(h, "check note", &v.value.note)?;
                let clean = self
                    .check_def(h, &check)?
                    .entry(v.value.result, v.value.value.clone(), &v.value.note)
                    .map_err(|e| invalid(h, e.to_string()))?;
                if clean != v.value {
                    return Err(invalid(
                        h,
                        "writes an office check's text value that is not trimmed NFC",
                    ));
                }
            }
            Kind::Evidence => {
                self.check_evidence_key(h, key)?;
                if !seen.is_empty() {
                    return Err(invalid(h, format!("attaches evidence {key} again")));
                }
                let v: Stamp = parse(h, "evidence", json)?;
                check_stamp(h, &v, author)?;
            }
            Kind::Findings => {
                return Err(invalid(h, "writes a value where a finding's map belongs"));
            }
            Kind::Finding => {
                if key == keys::CREATED {
                    if !in_new_finding || !seen.is_empty() {
                        return Err(invalid(h, "rewrites when a finding was created"));
                    }
                    let v: Stamp = parse(h, "finding", json)?;
                    check_stamp(h, &v, author)?;
                    return Ok(());
                }
                let field = FindingField::ALL
                    .iter()
                    .copied()
                    .find(|f| f.key() == key)
                    .ok_or_else(|| {
                        invalid(h, format!("writes {key}, which is not a finding's field"))
                    })?;
                let v: Stamped<FindingValue> = parse(h, "finding", json)?;
                check_stamp(h, &v.stamp, author)?;
                if v.value.field() != field {
                    return Err(invalid(
                        h,
                        format!(
                            "writes a {} value into a finding's {key}",
                            v.value.field().key()
                        ),
                    ));
                }
                match &v.value {
                    FindingValue::Category(s) => {
                        check_text(h, "finding category", s, text::MAX_NAME, true)?
                    }
                    FindingValue::Text(s) => {
                        check_text(h, "finding text", s, text::MAX_FINDING_TEXT, true)?
                    }
                    FindingValue::Recommendation(s) => {
                        check_text(h, "recommendation", s, text::MAX_FINDING_TEXT, false)?
                    }
                    FindingValue::RelatedStaff(ids) => {
                        let mut unique = HashSet::new();
                        for id in ids {
                            self.require_staff(h, id)?;
                            if !unique.insert(id) {
                                return Err(invalid(h, format!("names staff member {id} twice")));
                            }
                        }
                    }
                    FindingValue::Severity(_) | FindingValue::Withdrawn(_) => {}
                }
            }
            Kind::Approvals => {
                if role != Role::Supervisor {
                    return Err(denied(
                        h,
                        "by an inspector would record an approval; only a supervisor may",
                    ));
                }
                if !seen.is_empty() {
                    return Err(invalid(
                        h,
                        "rewrites an approval; approvals are only ever added",
                    ));
                }
                let a: Approval = parse(h, "approval", json)?;
                if a.id != key {
                    return Err(invalid(h, "files an approval under another id"));
                }
                check_stamp(h, &a.stamp, author)?;
                // The heads named are the change's dependencies, less any
                // that Automerge adds although another covers it (its
                // actor's previous change).
                let named = a.head_hashes().map_err(|e| invalid(h, e.to_string()))?;
                let covered = named.iter().all(|n| deps.contains(n))
                    && deps
                        .iter()
                        .filter(|d| !named.contains(d))
                        .all(|d| self.is_ancestor(d, &named));
                if named.is_empty() || !covered {
                    return Err(invalid(h, "approves heads other than those it was made on"));
                }
                effects.adds_approval = true;
            }
            Kind::Narrative => return Err(invalid(h, "writes the narrative as a map")),
        }
        Ok(())
    }

    fn check_text_op(
        &mut self,
        op: &am::Op,
        decoded: &am::Change,
        index: usize,
        deps: &[ChangeHash],
        past_is_all: bool,
        h: ChangeHash,
    ) -> Result<(), Refusal> {
        let hs = Some(h);
        let Key::Seq(elem) = &op.key else {
            return Err(invalid(hs, "addresses the narrative by key"));
        };
        match (&op.action, op.insert) {
            (OpType::Put(ScalarValue::Str(s)), true) => {
                if s.chars().count() != 1 {
                    return Err(invalid(
                        hs,
                        "inserts more than one character per op into the narrative",
                    ));
                }
                if !op.pred.is_empty() {
                    return Err(invalid(hs, "inserts into the narrative over other values"));
                }
                if let ElementId::Id(e) = elem
                    && !self.narrative_element(e, decoded, index, deps, past_is_all)
                {
                    return Err(invalid(
                        hs,
                        "inserts after a narrative character that does not exist",
                    ));
                }
                Ok(())
            }
            (OpType::Delete, false) => {
                let ElementId::Id(e) = elem else {
                    return Err(invalid(hs, "deletes the start of the narrative"));
                };
                if !self.narrative_element(e, decoded, index, deps, past_is_all) {
                    return Err(invalid(
                        hs,
                        "deletes a narrative character that does not exist",
                    ));
                }
                let pred: Vec<&OpId> = op.pred.iter().collect();
                if pred != [e] {
                    return Err(invalid(
                        hs,
                        "deletes a narrative character by another op than its own",
                    ));
                }
                Ok(())
            }
            _ => Err(invalid(
                hs,
                "edits the narrative other than by inserting or deleting characters",
            )),
        }
    }

    /// Checks limits that depend on the document after a change.
    pub(crate) fn check_after(&self, h: ChangeHash) -> Result<(), Refusal> {
        let len = match &self.ledger {
            Some(l) => Some(l.elements.len().saturating_sub(l.deleted.len())),
            None => self
                .narrative
                .as_ref()
                .and_then(|id| self.objects.get(id))
                .and_then(|(_, ex)| ex.as_ref())
                .map(|ex| self.doc.length(ex)),
        };
        if let Some(len) = len
            && len > text::MAX_NARRATIVE
        {
            {
                return Err(invalid(
                    Some(h),
                    format!(
                        "makes the narrative {len} characters long; at most {}",
                        text::MAX_NARRATIVE
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Applies every change of `changes` after checking it, stopping at the
    /// first refusal.
    pub(crate) fn accept_all(
        &mut self,
        changes: Vec<Change>,
        max_ops: usize,
    ) -> Result<Vec<Accepted>, Refusal> {
        let total: usize = changes
            .iter()
            .map(|c| c.len())
            .fold(0, usize::saturating_add);
        if total > max_ops {
            return Err(invalid(
                None,
                format!(
                    "the changes hold {total} ops; at most {max_ops} are allowed in this request"
                ),
            ));
        }
        let ordered = self.causal_order(changes)?;
        let mut out = Vec::with_capacity(ordered.len());
        let mut narrative_touched = false;
        for c in ordered {
            let h = c.hash();
            let a = self.accept(c)?;
            narrative_touched |= self.decoded.get(&h).is_some_and(|d| {
                d.operations
                    .iter()
                    .any(|op| op.insert || matches!(op.key, Key::Seq(_)))
            });
            out.push(a);
        }
        if (narrative_touched || self.ledger.is_some())
            && let Some(last) = out.last()
        {
            self.check_after(last.hash)?;
        }
        Ok(out)
    }

    /// Every stored change checked in causal order against the document
    /// before it; refused ones are applied anyway so that the rest can be
    /// checked, and listed.
    pub(crate) fn audit(mut self, changes: Vec<Change>) -> Vec<Refusal> {
        let mut problems = Vec::new();
        for c in changes {
            let h = c.hash();
            match self.check(&c) {
                Ok((a, d)) => {
                    if let Err(e) = self.apply(c, &a, Some(d)) {
                        problems.push(e);
                        return problems;
                    }
                    if let Err(e) = self.check_after(h) {
                        problems.push(e);
                    }
                }
                Err(e) => {
                    let author = self.author_of(&c).unwrap_or_else(|_| {
                        Editor::new(
                            crate::ids::UserId::parse("unknown").expect("valid id"),
                            crate::ids::DeviceId::parse("unknown").expect("valid id"),
                        )
                    });
                    problems.push(e);
                    let d = catch_unwind(AssertUnwindSafe(|| c.decode())).ok();
                    let accepted = Accepted { hash: h, author };
                    if let Err(e) = self.apply(c, &accepted, d) {
                        problems.push(e);
                        return problems;
                    }
                }
            }
        }
        problems
    }
}

/// Whether the values a write supersedes disagree on what they observed
/// (a conflict, see [`crate::state::Observation`]): concurrent records of
/// the same observation are not one, so superseding them settles nothing.
/// A value that cannot be read counts as disagreeing.
fn disagree(kind: Option<&Kind>, seen: &[(OpId, Option<String>)]) -> bool {
    fn distinct<T: DeserializeOwned + Observation>(seen: &[(OpId, Option<String>)]) -> bool {
        let read: Option<Vec<Stamped<T>>> = seen
            .iter()
            .map(|(_, v)| v.as_deref().and_then(|j| serde_json::from_str(j).ok()))
            .collect();
        match read {
            Some(all) => all.iter().any(|v| !v.value.agrees(&all[0].value)),
            None => true,
        }
    }
    if seen.len() < 2 {
        return false;
    }
    match kind {
        None => distinct::<StatusEntry>(seen),
        Some(Kind::Attendance) => distinct::<Attendance>(seen),
        Some(Kind::Conduct) => distinct::<ConductEntry>(seen),
        Some(Kind::Checks) => distinct::<CheckEntry>(seen),
        Some(Kind::Finding) => distinct::<FindingValue>(seen),
        Some(_) => true,
    }
}

/// Whether two lists of op ids hold the same ids, in any order.
fn same_ops<'a>(
    a: impl ExactSizeIterator<Item = &'a OpId>,
    b: impl ExactSizeIterator<Item = &'a OpId>,
) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 1 {
        return a.eq(b);
    }
    let order = |x: &&OpId, y: &&OpId| (x.0, x.1.to_bytes()).cmp(&(y.0, y.1.to_bytes()));
    let mut a: Vec<&OpId> = a.collect();
    let mut b: Vec<&OpId> = b.collect();
    a.sort_by(order);
    b.sort_by(order);
    a == b
}

fn put_str(op: &am::Op, h: Option<ChangeHash>) -> Result<&str, Refusal> {
    match &op.action {
        OpType::Put(ScalarValue::Str(s)) => Ok(s.as_str()),
        _ => Err(invalid(h, "writes a value that is not JSON text")),
    }
}

fn parse<T: DeserializeOwned>(h: Option<ChangeHash>, what: &str, json: &str) -> Result<T, Refusal> {
    serde_json::from_str(json)
        .map_err(|e| invalid(h, format!("writes an unreadable {what} value: {e}")))
}

fn check_stamp(h: Option<ChangeHash>, stamp: &Stamp, author: &Editor) -> Result<(), Refusal> {
    if stamp.by != author.user || stamp.device != author.device {
        return Err(invalid(
            h,
            format!(
                "stamps a value as recorded by {} on {}, but its author is {} on {}",
                stamp.by, stamp.device, author.user, author.device
            ),
        ));
    }
    Ok(())
}

/// `s` as the typed API writes it: trimmed NFC, bounded, non-empty when required.
fn check_text(
    h: Option<ChangeHash>,
    field: &'static str,
    s: &str,
    max: usize,
    required: bool,
) -> Result<(), Refusal> {
    let clean = if required {
        text::required(field, s, max)
    } else {
        text::optional(field, s, max)
    }
    .map_err(|e| invalid(h, e.to_string()))?;
    if clean != s {
        return Err(invalid(
            h,
            format!("writes a {field} that is not trimmed NFC"),
        ));
    }
    Ok(())
}

fn check_note(h: Option<ChangeHash>, field: &'static str, s: &str) -> Result<(), Refusal> {
    check_text(h, field, s, text::MAX_NOTE, false)
}

fn check_staff(
    h: Option<ChangeHash>,
    key: &str,
    json: &str,
    author: &Editor,
    on_site: bool,
) -> Result<(), Refusal> {
    let v: Stamped<StaffMember> = parse(h, "roster entry", json)?;
    check_stamp(h, &v.stamp, author)?;
    let m = &v.value;
    if m.id.as_str() != key {
        return Err(invalid(
            h,
            format!("files staff member {} under {key}", m.id),
        ));
    }
    let mut clean = StaffMember::new(m.id.clone(), &m.name, &m.position, m.category, m.on_payroll)
        .map_err(|e| invalid(h, e.to_string()))?;
    clean.found_on_site = m.found_on_site;
    if clean != *m {
        return Err(invalid(h, "writes a roster entry that is not trimmed NFC"));
    }
    if on_site && !m.found_on_site {
        return Err(invalid(
            h,
            "adds a roster entry after the visit was created that is not marked found on site",
        ));
    }
    Ok(())
}

/// Whether a role may move the status from what it saw to `to`:
/// inspectors only submit (from a draft or a returned visit); supervisors
/// make any move of the life cycle, and when settling a conflicting status
/// may also keep one of the candidates.
fn check_move(
    h: Option<ChangeHash>,
    from: &[VisitStatus],
    to: VisitStatus,
    role: Role,
    settles: bool,
) -> Result<(), Refusal> {
    if from.is_empty() {
        return Err(invalid(h, "moves a status it did not see"));
    }
    let supervisor = role == Role::Supervisor;
    if !supervisor && matches!(to, VisitStatus::Approved | VisitStatus::Returned) {
        let what = if to == VisitStatus::Approved {
            "approve"
        } else {
            "return"
        };
        return Err(denied(
            h,
            format!("by an inspector would {what} the visit; only a supervisor may"),
        ));
    }
    let allowed = |f: VisitStatus| f.can_move_to(to) || (supervisor && settles && f == to);
    if from.iter().any(|f| allowed(*f)) {
        return Ok(());
    }
    let was = from
        .iter()
        .map(|f| f.key())
        .collect::<Vec<_>>()
        .join(" or ");
    Err(invalid(
        h,
        format!(
            "moves the visit from {was} to {}, which the life cycle does not allow",
            to.key()
        ),
    ))
}

/// Checks the ops of `changes` (received for a visit whose document is
/// `doc`) and returns the document with them applied, or the first
/// refusal. Changes already held are skipped.
pub(crate) fn accept_into(
    doc: Automerge,
    changes: Vec<Change>,
    roles: &dyn Roles,
    max_ops: usize,
) -> Result<(Automerge, Vec<Accepted>), Refusal> {
    // A visit received whole is checked from the ledger and applied at once.
    let mut acceptor = if doc.get_heads().is_empty() {
        Acceptor::from_scratch(roles)?
    } else {
        Acceptor::new(doc, roles)?
    };
    let accepted = acceptor.accept_all(changes, max_ops)?;
    Ok((acceptor.into_doc()?, accepted))
}

/// Checks the whole history of a new visit from its first change without
/// building a document of it (the caller holds one already).
pub(crate) fn accept_checked(
    changes: Vec<Change>,
    roles: &dyn Roles,
    max_ops: usize,
) -> Result<Vec<Accepted>, Refusal> {
    let mut acceptor = Acceptor::from_scratch(roles)?;
    acceptor.keep_pending = false;
    acceptor.accept_all(changes, max_ops)
}

/// Every change of `doc`'s history that the acceptance rule refuses.
pub(crate) fn audit_history(doc: &Automerge, roles: &dyn Roles) -> Vec<Refusal> {
    let changes = match catch_unwind(AssertUnwindSafe(|| doc.get_changes(&[]))) {
        Ok(c) => c,
        Err(_) => return vec![invalid(None, "the stored history cannot be read")],
    };
    match Acceptor::from_scratch(roles) {
        Ok(mut a) => {
            a.keep_pending = false;
            a.audit(changes)
        }
        Err(e) => vec![e],
    }
}
