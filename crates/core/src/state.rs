//! Reading a visit document, now or as of any point in its history, into
//! plain domain values; and the conflicts among them.

use automerge::{Automerge, ChangeHash, ObjType, ROOT, ReadDoc, Value};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::error::{Error, Result};
use crate::ids::{CheckId, EvidenceHash, FindingId, StaffId};
use crate::model::{
    Attendance, CheckEntry, ConductEntry, ConductKind, FindingField, Lang, Severity, StaffMember,
    StatusEntry, VisitMeta, VisitStatus,
};
use crate::session::{Stamp, Stamped};
use crate::tally::Tally;
use crate::template::Template;

/// The newest document schema this build reads and writes. A visit is
/// written with schema 1 unless its template has valued checks (number,
/// choice, text), then with 2 ([`Template::document_schema`]): a build that
/// reads only schema 1 refuses such a visit ("update the app") instead of
/// showing its valued checks as pass/fail and dropping their values.
pub const SCHEMA_VERSION: u64 = 2;

pub(crate) mod keys {
    pub const SCHEMA: &str = "schema";
    pub const META: &str = "meta";
    pub const TEMPLATE: &str = "template";
    pub const STAFF: &str = "staff";
    pub const ATTENDANCE: &str = "attendance";
    pub const CONDUCT: &str = "conduct";
    pub const CHECKS: &str = "checks";
    pub const EVIDENCE: &str = "evidence";
    pub const FINDINGS: &str = "findings";
    pub const NARRATIVE: &str = "narrative";
    pub const STATUS: &str = "status";
    pub const APPROVALS: &str = "approvals";
    pub const CREATED: &str = "created";
}

/// A staff map entry: key, JSON, and the op that wrote it (counter, actor).
type StaffEntry = (String, Option<String>, (u64, Vec<u8>));

/// A field that holds one value and can therefore be in conflict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FieldRef {
    Attendance {
        staff: StaffId,
    },
    Conduct {
        staff: StaffId,
        check: ConductKind,
    },
    OfficeCheck {
        check: CheckId,
    },
    Finding {
        finding: FindingId,
        field: FindingField,
    },
    Status,
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldRef::Attendance { staff } => write!(f, "attendance/{staff}"),
            FieldRef::Conduct { staff, check } => write!(f, "conduct/{staff}/{}", check.key()),
            FieldRef::OfficeCheck { check } => write!(f, "check/{check}"),
            FieldRef::Finding { finding, field } => write!(f, "finding/{finding}/{}", field.key()),
            FieldRef::Status => f.write_str("status"),
        }
    }
}

impl FieldRef {
    /// Parses the form `Display` writes (`attendance/s-1`, `conduct/s-1/badge`, …).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidValue {
            field: "field",
            value: s.into(),
            expected: "attendance/STAFF conduct/STAFF/CHECK check/CHECK finding/ID/FIELD status",
        };
        let parts: Vec<&str> = s.split('/').collect();
        Ok(match parts.as_slice() {
            ["attendance", staff] => FieldRef::Attendance {
                staff: StaffId::parse(staff)?,
            },
            ["conduct", staff, check] => FieldRef::Conduct {
                staff: StaffId::parse(staff)?,
                check: ConductKind::parse(check)?,
            },
            ["check", check] => FieldRef::OfficeCheck {
                check: CheckId::parse(check)?,
            },
            ["finding", finding, field] => FieldRef::Finding {
                finding: FindingId::parse(finding)?,
                field: *FindingField::ALL
                    .iter()
                    .find(|f| f.key() == *field)
                    .ok_or_else(bad)?,
            },
            ["status"] => FieldRef::Status,
            _ => return Err(bad()),
        })
    }

    /// The field in words, with staff names resolved from `state`.
    pub fn describe(&self, lang: Lang, state: &VisitState) -> String {
        match (self, lang) {
            (FieldRef::Attendance { staff }, Lang::Vi) => {
                format!("Điểm danh {}", state.staff_name(staff))
            }
            (FieldRef::Attendance { staff }, Lang::En) => {
                format!("Attendance of {}", state.staff_name(staff))
            }
            (FieldRef::Conduct { staff, check }, Lang::Vi) => {
                format!("{} – {}", state.staff_name(staff), check.label(lang))
            }
            (FieldRef::Conduct { staff, check }, Lang::En) => {
                format!(
                    "{} of {}",
                    capitalise(check.label(lang)),
                    state.staff_name(staff)
                )
            }
            (FieldRef::OfficeCheck { check }, _) => state
                .template
                .check(check)
                .map(|c| c.label.get(lang).to_owned())
                .unwrap_or_else(|| check.to_string()),
            (FieldRef::Finding { finding, field }, Lang::Vi) => {
                format!(
                    "Tồn tại {} – {}",
                    short(finding.as_str()),
                    field.label(lang)
                )
            }
            (FieldRef::Finding { finding, field }, Lang::En) => {
                format!(
                    "Finding {} – {}",
                    short(finding.as_str()),
                    field.label(lang)
                )
            }
            (FieldRef::Status, Lang::Vi) => "Trạng thái biên bản".into(),
            (FieldRef::Status, Lang::En) => "Visit status".into(),
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn short(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(10)
        .map(|(i, _)| i)
        .unwrap_or(id.len());
    &id[..end]
}

/// A value of one of a finding's fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingValue {
    Category(String),
    Severity(Severity),
    Text(String),
    Recommendation(String),
    RelatedStaff(Vec<StaffId>),
    Withdrawn(bool),
}

impl FindingValue {
    pub fn field(&self) -> FindingField {
        match self {
            Self::Category(_) => FindingField::Category,
            Self::Severity(_) => FindingField::Severity,
            Self::Text(_) => FindingField::Text,
            Self::Recommendation(_) => FindingField::Recommendation,
            Self::RelatedStaff(_) => FindingField::RelatedStaff,
            Self::Withdrawn(_) => FindingField::Withdrawn,
        }
    }
}

/// The value of any conflictable field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    Attendance(Attendance),
    Conduct(ConductEntry),
    OfficeCheck(CheckEntry),
    Finding(FindingValue),
    Status(StatusEntry),
}

impl FieldValue {
    /// The value in words.
    pub fn describe(&self, lang: Lang, state: &VisitState) -> String {
        let with_note = |s: String, note: &str| {
            if note.is_empty() {
                s
            } else {
                format!("{s} – {note}")
            }
        };
        match self {
            FieldValue::Attendance(a) => with_note(a.mark.label(lang), &a.note),
            FieldValue::Conduct(c) => with_note(c.result.label(lang).into(), &c.note),
            FieldValue::OfficeCheck(c) => {
                let result = c.result.label(lang).to_owned();
                let shown = match &c.value {
                    Some(v) => format!("{result}: {}", v.describe(lang)),
                    None => result,
                };
                with_note(shown, &c.note)
            }
            FieldValue::Status(s) => with_note(s.status.label(lang).into(), &s.note),
            FieldValue::Finding(v) => match v {
                FindingValue::Category(s)
                | FindingValue::Text(s)
                | FindingValue::Recommendation(s) => {
                    format!("«{s}»")
                }
                FindingValue::Severity(s) => s.label(lang).into(),
                FindingValue::RelatedStaff(ids) => ids
                    .iter()
                    .map(|id| state.staff_name(id))
                    .collect::<Vec<_>>()
                    .join(", "),
                FindingValue::Withdrawn(true) => match lang {
                    Lang::Vi => "đã rút lại".into(),
                    Lang::En => "withdrawn".into(),
                },
                FindingValue::Withdrawn(false) => match lang {
                    Lang::Vi => "còn hiệu lực".into(),
                    Lang::En => "in force".into(),
                },
            },
        }
    }
}

impl FieldValue {
    /// The value in words as a value of `field`: as [`FieldValue::describe`],
    /// with an office check's value shown by its check (the unit, the
    /// option's label).
    pub fn describe_for(&self, field: &FieldRef, lang: Lang, state: &VisitState) -> String {
        if let (FieldValue::OfficeCheck(c), FieldRef::OfficeCheck { check }) = (self, field)
            && let (Some(v), Some(def)) = (&c.value, state.template.check(check))
        {
            let shown = format!("{}: {}", c.result.label(lang), def.describe_value(v, lang));
            return if c.note.is_empty() {
                shown
            } else {
                format!("{shown} – {}", c.note)
            };
        }
        self.describe(lang, state)
    }
}

/// What a slot's record observed, to tell agreement from conflict: two
/// concurrent records of the same observation (both groups found the same
/// person present, at their own moments) are one observation made twice,
/// not a conflict.
pub trait Observation: PartialEq {
    /// Whether `self` and `other` record the same observation.
    fn agrees(&self, other: &Self) -> bool {
        self == other
    }
    /// When it was observed, if the record says (else its stamp's time).
    fn observed_at(&self) -> Option<DateTime<Utc>> {
        None
    }
}

/// Attendance agrees on its mark (status and reason); the note and the
/// moment may differ.
impl Observation for Attendance {
    fn agrees(&self, other: &Self) -> bool {
        self.mark == other.mark
    }
    fn observed_at(&self) -> Option<DateTime<Utc>> {
        Some(self.observed_at)
    }
}

/// A conduct mark agrees on its result.
impl Observation for ConductEntry {
    fn agrees(&self, other: &Self) -> bool {
        self.result == other.result
    }
}

/// An office check agrees on its result and its value (a number, an
/// option, a text); the note may differ.
impl Observation for CheckEntry {
    fn agrees(&self, other: &Self) -> bool {
        self.result == other.result && self.value == other.value
    }
}

/// A status move or a finding's field agrees only when equal.
impl Observation for StatusEntry {}
impl Observation for FindingValue {}

/// Any field's value agrees as its own kind does.
impl Observation for FieldValue {
    fn agrees(&self, other: &Self) -> bool {
        match (self, other) {
            (FieldValue::Attendance(a), FieldValue::Attendance(b)) => a.agrees(b),
            (FieldValue::Conduct(a), FieldValue::Conduct(b)) => a.agrees(b),
            (FieldValue::OfficeCheck(a), FieldValue::OfficeCheck(b)) => a.agrees(b),
            (FieldValue::Finding(a), FieldValue::Finding(b)) => a.agrees(b),
            (FieldValue::Status(a), FieldValue::Status(b)) => a.agrees(b),
            _ => false,
        }
    }
    fn observed_at(&self) -> Option<DateTime<Utc>> {
        match self {
            FieldValue::Attendance(a) => a.observed_at(),
            _ => None,
        }
    }
}

/// The value a field shows, and any concurrent disagreeing values.
///
/// The concurrent records of a slot are grouped by what they observed
/// ([`Observation`]). `winner` is the earliest record of the group holding
/// Automerge's deterministic choice (so the same on every replica);
/// `agreeing` the rest of that group (every recorder of the same
/// observation, kept, not a conflict); `others` the earliest record of
/// each disagreeing group: a conflict when there is any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot<T> {
    pub winner: Stamped<T>,
    pub others: Vec<Stamped<T>>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub agreeing: Vec<Stamped<T>>,
}

impl<T: Observation> Slot<T> {
    /// The slot of one record.
    pub fn single(winner: Stamped<T>) -> Self {
        Self {
            winner,
            others: Vec::new(),
            agreeing: Vec::new(),
        }
    }

    /// Groups concurrent records: `winner` is Automerge's choice, `rest`
    /// the other values at the key, in Automerge's (deterministic) order.
    pub fn of(winner: Stamped<T>, rest: Vec<Stamped<T>>) -> Self {
        let mut groups: Vec<Vec<Stamped<T>>> = vec![vec![winner]];
        for c in rest {
            match groups.iter_mut().find(|g| g[0].value.agrees(&c.value)) {
                Some(g) => g.push(c),
                None => groups.push(vec![c]),
            }
        }
        let when = |c: &Stamped<T>| c.value.observed_at().unwrap_or(c.stamp.at);
        let mut heads = Vec::with_capacity(groups.len());
        let mut agreeing = Vec::new();
        for (i, mut g) in groups.into_iter().enumerate() {
            // Earliest first; a stable sort keeps Automerge's order for ties.
            g.sort_by(|a, b| {
                (when(a), &a.stamp.by, &a.stamp.device).cmp(&(
                    when(b),
                    &b.stamp.by,
                    &b.stamp.device,
                ))
            });
            let mut g = g.into_iter();
            if let Some(first) = g.next() {
                heads.push(first);
            }
            if i == 0 {
                agreeing.extend(g);
            }
        }
        let mut heads = heads.into_iter();
        let winner = heads.next().expect("the winner's group is never empty");
        Self {
            winner,
            others: heads.collect(),
            agreeing,
        }
    }
}

impl<T> Slot<T> {
    pub fn value(&self) -> &T {
        &self.winner.value
    }
    pub fn in_conflict(&self) -> bool {
        !self.others.is_empty()
    }
    /// Winner first, then the others.
    pub fn candidates(&self) -> impl Iterator<Item = &Stamped<T>> {
        std::iter::once(&self.winner).chain(self.others.iter())
    }
}

/// One finding and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingState {
    pub id: FindingId,
    pub created: Stamp,
    pub fields: BTreeMap<FindingField, Slot<FindingValue>>,
}

impl FindingState {
    fn text_of(&self, field: FindingField) -> &str {
        match self.fields.get(&field).map(|s| s.value()) {
            Some(
                FindingValue::Category(s) | FindingValue::Text(s) | FindingValue::Recommendation(s),
            ) => s,
            _ => "",
        }
    }
    pub fn category(&self) -> &str {
        self.text_of(FindingField::Category)
    }
    pub fn text(&self) -> &str {
        self.text_of(FindingField::Text)
    }
    pub fn recommendation(&self) -> &str {
        self.text_of(FindingField::Recommendation)
    }
    pub fn severity(&self) -> Option<Severity> {
        match self.fields.get(&FindingField::Severity).map(|s| s.value()) {
            Some(FindingValue::Severity(s)) => Some(*s),
            _ => None,
        }
    }
    pub fn related_staff(&self) -> &[StaffId] {
        match self
            .fields
            .get(&FindingField::RelatedStaff)
            .map(|s| s.value())
        {
            Some(FindingValue::RelatedStaff(ids)) => ids,
            _ => &[],
        }
    }
    pub fn withdrawn(&self) -> bool {
        matches!(
            self.fields.get(&FindingField::Withdrawn).map(|s| s.value()),
            Some(FindingValue::Withdrawn(true))
        )
    }
}

/// A supervisor's approval: the document heads it approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    /// Hex change hashes of the approved heads.
    pub heads: Vec<String>,
    #[serde(flatten)]
    pub stamp: Stamp,
    /// The approving device's Ed25519 signature over
    /// [`Approval::message`], hex; empty when approved without a key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

impl Approval {
    /// The bytes an approving device signs: a domain tag, the visit id, a
    /// zero byte and the approved heads, sorted.
    pub fn message(visit_id: &str, heads: &[ChangeHash]) -> Vec<u8> {
        let mut sorted = heads.to_vec();
        sorted.sort();
        let mut m = b"kiemtra-approval-v1\0".to_vec();
        m.extend_from_slice(visit_id.as_bytes());
        m.push(0);
        for h in sorted {
            m.extend_from_slice(&h.0);
        }
        m
    }

    pub fn head_hashes(&self) -> Result<Vec<ChangeHash>> {
        self.heads
            .iter()
            .map(|h| {
                h.parse::<ChangeHash>()
                    .map_err(|_| Error::Corrupt(format!("approval head {h}")))
            })
            .collect()
    }
}

/// The whole visit, decoded, at one point in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitState {
    pub schema: u64,
    pub meta: VisitMeta,
    pub template: Template,
    pub staff: BTreeMap<StaffId, Stamped<StaffMember>>,
    /// The staff in roster order: as the visit was created, then those
    /// found on site as they were added.
    #[serde(default)]
    pub roster: Vec<StaffId>,
    pub attendance: BTreeMap<StaffId, Slot<Attendance>>,
    pub conduct: BTreeMap<(StaffId, ConductKind), Slot<ConductEntry>>,
    pub checks: BTreeMap<CheckId, Slot<CheckEntry>>,
    pub evidence: BTreeMap<CheckId, BTreeSet<EvidenceHash>>,
    pub findings: BTreeMap<FindingId, FindingState>,
    pub narrative: String,
    pub status: Slot<StatusEntry>,
    pub approvals: Vec<Approval>,
}

/// A field whose replicas disagree, with every candidate value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub field: FieldRef,
    /// Candidates, the one currently shown first.
    pub candidates: Vec<Stamped<FieldValue>>,
}

/// What differs between a conflict's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// What was observed (the mark, the result, the value).
    Observation,
    /// The note written with it.
    Note,
    /// When it was observed (attendance) or recorded.
    ObservedAt,
    /// Who recorded it, or on which device.
    Recorder,
}

impl Aspect {
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Aspect::Observation, Lang::Vi) => "kết quả ghi nhận",
            (Aspect::Observation, Lang::En) => "what was observed",
            (Aspect::Note, Lang::Vi) => "ghi chú",
            (Aspect::Note, Lang::En) => "note",
            (Aspect::ObservedAt, Lang::Vi) => "thời điểm",
            (Aspect::ObservedAt, Lang::En) => "time",
            (Aspect::Recorder, Lang::Vi) => "người ghi nhận",
            (Aspect::Recorder, Lang::En) => "recorder",
        }
    }
}

impl FieldValue {
    /// The note written with the value, if its kind has one.
    pub fn note(&self) -> &str {
        match self {
            FieldValue::Attendance(a) => &a.note,
            FieldValue::Conduct(c) => &c.note,
            FieldValue::OfficeCheck(c) => &c.note,
            FieldValue::Status(s) => &s.note,
            FieldValue::Finding(_) => "",
        }
    }
}

impl Conflict {
    /// What differs among the candidates, so that a supervisor can tell
    /// them apart: always what was observed, and any of the note, the
    /// time and the recorder.
    pub fn differences(&self) -> Vec<Aspect> {
        let mut out = Vec::new();
        let Some(first) = self.candidates.first() else {
            return out;
        };
        let time = |c: &Stamped<FieldValue>| c.value.observed_at().unwrap_or(c.stamp.at);
        let rest = &self.candidates[1..];
        if rest.iter().any(|c| !c.value.agrees(&first.value)) {
            out.push(Aspect::Observation);
        }
        if rest.iter().any(|c| c.value.note() != first.value.note()) {
            out.push(Aspect::Note);
        }
        if rest.iter().any(|c| time(c) != time(first)) {
            out.push(Aspect::ObservedAt);
        }
        if rest
            .iter()
            .any(|c| c.stamp.by != first.stamp.by || c.stamp.device != first.stamp.device)
        {
            out.push(Aspect::Recorder);
        }
        out
    }
}

impl VisitState {
    pub fn status(&self) -> VisitStatus {
        self.status.value().status
    }

    /// The staff member's name, or the id when unknown.
    pub fn staff_name(&self, id: &StaffId) -> String {
        self.staff
            .get(id)
            .map(|s| s.value.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Whether any office check refers to this evidence file.
    pub fn refers_to(&self, hash: &EvidenceHash) -> bool {
        self.evidence.values().any(|set| set.contains(hash))
    }

    /// Tallies derived from the roster and the attendance shown.
    pub fn tally(&self) -> Tally {
        Tally::from_state(self)
    }

    /// The latest approval by time (ties broken by id), if any.
    pub fn latest_approval(&self) -> Option<&Approval> {
        self.approvals
            .iter()
            .max_by(|a, b| a.stamp.at.cmp(&b.stamp.at).then_with(|| a.id.cmp(&b.id)))
    }

    /// Every field whose replicas disagree, in field order.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut out = Vec::new();
        fn push<T: Clone>(
            out: &mut Vec<Conflict>,
            field: FieldRef,
            slot: &Slot<T>,
            wrap: impl Fn(T) -> FieldValue,
        ) {
            if slot.in_conflict() {
                out.push(Conflict {
                    field,
                    candidates: slot
                        .candidates()
                        .map(|c| Stamped {
                            value: wrap(c.value.clone()),
                            stamp: c.stamp.clone(),
                        })
                        .collect(),
                });
            }
        }
        for (staff, slot) in &self.attendance {
            push(
                &mut out,
                FieldRef::Attendance {
                    staff: staff.clone(),
                },
                slot,
                FieldValue::Attendance,
            );
        }
        for ((staff, check), slot) in &self.conduct {
            let field = FieldRef::Conduct {
                staff: staff.clone(),
                check: *check,
            };
            push(&mut out, field, slot, FieldValue::Conduct);
        }
        for (check, slot) in &self.checks {
            push(
                &mut out,
                FieldRef::OfficeCheck {
                    check: check.clone(),
                },
                slot,
                FieldValue::OfficeCheck,
            );
        }
        for (id, finding) in &self.findings {
            for (field, slot) in &finding.fields {
                let f = FieldRef::Finding {
                    finding: id.clone(),
                    field: *field,
                };
                push(&mut out, f, slot, FieldValue::Finding);
            }
        }
        push(&mut out, FieldRef::Status, &self.status, FieldValue::Status);
        out
    }

    /// The value a field shows, if the field has one.
    pub fn field_value(&self, field: &FieldRef) -> Option<Stamped<FieldValue>> {
        fn wrap<T: Clone>(s: &Slot<T>, f: impl Fn(T) -> FieldValue) -> Stamped<FieldValue> {
            Stamped {
                value: f(s.winner.value.clone()),
                stamp: s.winner.stamp.clone(),
            }
        }
        match field {
            FieldRef::Attendance { staff } => self
                .attendance
                .get(staff)
                .map(|s| wrap(s, FieldValue::Attendance)),
            FieldRef::Conduct { staff, check } => self
                .conduct
                .get(&(staff.clone(), *check))
                .map(|s| wrap(s, FieldValue::Conduct)),
            FieldRef::OfficeCheck { check } => self
                .checks
                .get(check)
                .map(|s| wrap(s, FieldValue::OfficeCheck)),
            FieldRef::Finding { finding, field } => self
                .findings
                .get(finding)
                .and_then(|f| f.fields.get(field))
                .map(|s| wrap(s, FieldValue::Finding)),
            FieldRef::Status => Some(wrap(&self.status, FieldValue::Status)),
        }
    }

    /// Every field with a value, for comparing two points in history.
    pub fn fields(&self) -> BTreeMap<FieldRef, Stamped<FieldValue>> {
        let mut refs: Vec<FieldRef> = Vec::new();
        refs.extend(
            self.attendance
                .keys()
                .map(|s| FieldRef::Attendance { staff: s.clone() }),
        );
        refs.extend(self.conduct.keys().map(|(s, c)| FieldRef::Conduct {
            staff: s.clone(),
            check: *c,
        }));
        refs.extend(
            self.checks
                .keys()
                .map(|c| FieldRef::OfficeCheck { check: c.clone() }),
        );
        for (id, f) in &self.findings {
            refs.extend(f.fields.keys().map(|field| FieldRef::Finding {
                finding: id.clone(),
                field: *field,
            }));
        }
        refs.push(FieldRef::Status);
        refs.into_iter()
            .filter_map(|r| self.field_value(&r).map(|v| (r, v)))
            .collect()
    }
}

/// Reads a document now (`heads == None`) or as of the given heads.
pub(crate) struct Reader<'a> {
    doc: &'a Automerge,
    heads: Option<&'a [ChangeHash]>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(doc: &'a Automerge, heads: Option<&'a [ChangeHash]>) -> Self {
        Self { doc, heads }
    }

    fn get(
        &self,
        obj: &automerge::ObjId,
        key: &str,
    ) -> Result<Option<(Value<'a>, automerge::ObjId)>> {
        Ok(match self.heads {
            Some(h) => self.doc.get_at(obj, key, h)?,
            None => self.doc.get(obj, key)?,
        })
    }

    fn get_all(
        &self,
        obj: &automerge::ObjId,
        key: &str,
    ) -> Result<Vec<(Value<'a>, automerge::ObjId)>> {
        Ok(match self.heads {
            Some(h) => self.doc.get_all_at(obj, key, h)?,
            None => self.doc.get_all(obj, key)?,
        })
    }

    fn keys(&self, obj: &automerge::ObjId) -> Vec<String> {
        match self.heads {
            Some(h) => self.doc.keys_at(obj, h).collect(),
            None => self.doc.keys(obj).collect(),
        }
    }

    /// Every key of a map with its shown value (when a string) and whether
    /// other values are concurrent with it: one pass over the map.
    /// The staff map's entries with the op that wrote each (counter, actor).
    fn staff_entries(&self, obj: &automerge::ObjId) -> Vec<StaffEntry> {
        let to_entry = |item: automerge::iter::MapRangeItem<'_>| {
            let at = match item.id() {
                automerge::ObjId::Id(counter, actor, _) => (counter, actor.to_bytes().to_vec()),
                automerge::ObjId::Root => (0, Vec::new()),
            };
            let value = match item.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                    Some(s.into_owned())
                }
                _ => None,
            };
            (item.key.into_owned(), value, at)
        };
        match self.heads {
            Some(h) => self.doc.map_range_at(obj, .., h).map(to_entry).collect(),
            None => self.doc.map_range(obj, ..).map(to_entry).collect(),
        }
    }

    fn entries(&self, obj: &automerge::ObjId) -> Vec<(String, Option<String>, bool)> {
        let to_entry = |item: automerge::iter::MapRangeItem<'_>| {
            let value = match item.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                    Some(s.into_owned())
                }
                _ => None,
            };
            (item.key.into_owned(), value, item.conflict)
        };
        match self.heads {
            Some(h) => self.doc.map_range_at(obj, .., h).map(to_entry).collect(),
            None => self.doc.map_range(obj, ..).map(to_entry).collect(),
        }
    }

    /// The slot behind one entry: decoded from the entry when there is no
    /// conflict, otherwise read whole with every candidate.
    fn slot_of<T: DeserializeOwned + Observation>(
        &self,
        obj: &automerge::ObjId,
        entry: &(String, Option<String>, bool),
    ) -> Result<Option<Slot<T>>> {
        let (key, value, conflict) = entry;
        match (value, conflict) {
            (Some(json), false) => {
                let winner: Stamped<T> = serde_json::from_str(json)
                    .map_err(|e| Error::Corrupt(format!("{key}: {e}")))?;
                Ok(Some(Slot::single(winner)))
            }
            _ => self.slot(obj, key),
        }
    }

    pub(crate) fn map(&self, parent: &automerge::ObjId, key: &str) -> Result<automerge::ObjId> {
        match self.get(parent, key)? {
            Some((Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(Error::Corrupt(format!("{key} is not a map"))),
        }
    }

    fn text(&self, parent: &automerge::ObjId, key: &str) -> Result<String> {
        match self.get(parent, key)? {
            Some((Value::Object(ObjType::Text), id)) => Ok(match self.heads {
                Some(h) => self.doc.text_at(&id, h)?,
                None => self.doc.text(&id)?,
            }),
            _ => Err(Error::Corrupt(format!("{key} is not text"))),
        }
    }

    fn string(value: &Value<'_>, key: &str) -> Result<String> {
        match value {
            Value::Scalar(s) => match s.as_ref() {
                automerge::ScalarValue::Str(s) => Ok(s.to_string()),
                _ => Err(Error::Corrupt(format!("{key} is not a string"))),
            },
            _ => Err(Error::Corrupt(format!("{key} is not a string"))),
        }
    }

    /// One JSON value stored at `key`; the winner if concurrent.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        obj: &automerge::ObjId,
        key: &str,
    ) -> Result<Option<T>> {
        match self.get(obj, key)? {
            None => Ok(None),
            Some((v, _)) => {
                let s = Self::string(&v, key)?;
                serde_json::from_str(&s)
                    .map(Some)
                    .map_err(|e| Error::Corrupt(format!("{key}: {e}")))
            }
        }
    }

    /// A slot: the winner and every concurrent different value.
    pub(crate) fn slot<T: DeserializeOwned + Observation>(
        &self,
        obj: &automerge::ObjId,
        key: &str,
    ) -> Result<Option<Slot<T>>> {
        let all = self.get_all(obj, key)?;
        let Some((_, winner_id)) = self.get(obj, key)? else {
            return Ok(None);
        };
        let mut winner = None;
        let mut rest = Vec::new();
        for (v, id) in all {
            let s = Self::string(&v, key)?;
            let parsed: Stamped<T> =
                serde_json::from_str(&s).map_err(|e| Error::Corrupt(format!("{key}: {e}")))?;
            if id == winner_id {
                winner = Some(parsed);
            } else {
                rest.push(parsed);
            }
        }
        let Some(winner) = winner else {
            return Err(Error::Corrupt(format!(
                "{key}: winner missing from candidates"
            )));
        };
        Ok(Some(Slot::of(winner, rest)))
    }

    /// The schema version, if this is a kiemtra document at this point.
    pub(crate) fn schema(&self) -> Result<Option<u64>> {
        match self.get(&ROOT, keys::SCHEMA)? {
            None => Ok(None),
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                automerge::ScalarValue::Uint(v) => Ok(Some(*v)),
                automerge::ScalarValue::Int(v) if *v >= 0 => Ok(Some(*v as u64)),
                _ => Err(Error::NotAVisit("schema is not a number".into())),
            },
            Some(_) => Err(Error::NotAVisit("schema is not a number".into())),
        }
    }

    /// Refuses documents that are not visits or come from a newer schema.
    pub(crate) fn check_schema(&self) -> Result<u64> {
        match self.schema()? {
            None => Err(Error::NotAVisit("no schema version".into())),
            Some(v) if v > SCHEMA_VERSION => Err(Error::NewerSchema {
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(v) => Ok(v),
        }
    }

    pub(crate) fn state(&self) -> Result<VisitState> {
        let schema = self.check_schema()?;
        let meta: VisitMeta = self
            .json(&ROOT, keys::META)?
            .ok_or_else(|| Error::NotAVisit("no metadata".into()))?;
        let template: Template = self
            .json(&ROOT, keys::TEMPLATE)?
            .ok_or_else(|| Error::NotAVisit("no template".into()))?;

        let staff_obj = self.map(&ROOT, keys::STAFF)?;
        let mut staff = BTreeMap::new();
        let mut written = Vec::new();
        for (key, value, at) in self.staff_entries(&staff_obj) {
            let json =
                value.ok_or_else(|| Error::Corrupt(format!("staff {key} is not a record")))?;
            let s: Stamped<StaffMember> = serde_json::from_str(&json)
                .map_err(|e| Error::Corrupt(format!("staff {key}: {e}")))?;
            written.push((at, s.value.id.clone()));
            staff.insert(s.value.id.clone(), s);
        }
        // Each roster entry is written once, so the order of the ops that
        // wrote them is the order of the roster the visit was created with
        // (its first change writes them in that order), then of the staff
        // found on site as they were added (ties between devices by actor).
        written.sort();
        let roster = written.into_iter().map(|(_, id)| id).collect();

        let att_obj = self.map(&ROOT, keys::ATTENDANCE)?;
        let mut attendance = BTreeMap::new();
        for entry in self.entries(&att_obj) {
            let id = StaffId::parse(&entry.0).map_err(|e| Error::Corrupt(e.to_string()))?;
            if let Some(slot) = self.slot_of(&att_obj, &entry)? {
                attendance.insert(id, slot);
            }
        }

        let conduct_obj = self.map(&ROOT, keys::CONDUCT)?;
        let mut conduct = BTreeMap::new();
        for entry in self.entries(&conduct_obj) {
            let (staff, check) = split_pair(&entry.0)?;
            let key = (
                StaffId::parse(staff).map_err(|e| Error::Corrupt(e.to_string()))?,
                ConductKind::parse(check).map_err(|e| Error::Corrupt(e.to_string()))?,
            );
            if let Some(slot) = self.slot_of(&conduct_obj, &entry)? {
                conduct.insert(key, slot);
            }
        }

        let checks_obj = self.map(&ROOT, keys::CHECKS)?;
        let mut checks = BTreeMap::new();
        for entry in self.entries(&checks_obj) {
            let id = CheckId::parse(&entry.0).map_err(|e| Error::Corrupt(e.to_string()))?;
            if let Some(slot) = self.slot_of(&checks_obj, &entry)? {
                checks.insert(id, slot);
            }
        }

        let ev_obj = self.map(&ROOT, keys::EVIDENCE)?;
        let mut evidence: BTreeMap<CheckId, BTreeSet<EvidenceHash>> = BTreeMap::new();
        for k in self.keys(&ev_obj) {
            let (check, hash) = split_pair(&k)?;
            let check = CheckId::parse(check).map_err(|e| Error::Corrupt(e.to_string()))?;
            let hash = EvidenceHash::parse(hash).map_err(|e| Error::Corrupt(e.to_string()))?;
            evidence.entry(check).or_default().insert(hash);
        }

        let findings_obj = self.map(&ROOT, keys::FINDINGS)?;
        let mut findings = BTreeMap::new();
        for k in self.keys(&findings_obj) {
            let id = FindingId::parse(&k).map_err(|e| Error::Corrupt(e.to_string()))?;
            let fobj = self.map(&findings_obj, &k)?;
            let mut created: Option<Stamp> = None;
            let mut fields = BTreeMap::new();
            for entry in self.entries(&fobj) {
                if entry.0 == keys::CREATED {
                    let json = entry.1.as_deref().unwrap_or("");
                    created = Some(
                        serde_json::from_str(json)
                            .map_err(|e| Error::Corrupt(format!("finding {k}: {e}")))?,
                    );
                    continue;
                }
                let Some(field) = FindingField::ALL.iter().find(|f| f.key() == entry.0) else {
                    continue;
                };
                if let Some(slot) = self.slot_of::<FindingValue>(&fobj, &entry)? {
                    if slot.candidates().any(|c| c.value.field() != *field) {
                        return Err(Error::Corrupt(format!(
                            "finding {k}: value of the wrong field"
                        )));
                    }
                    fields.insert(*field, slot);
                }
            }
            let created = created
                .ok_or_else(|| Error::Corrupt(format!("finding {k} has no creation stamp")))?;
            findings.insert(
                id.clone(),
                FindingState {
                    id,
                    created,
                    fields,
                },
            );
        }

        let narrative = self.text(&ROOT, keys::NARRATIVE)?;
        let status = self
            .slot(&ROOT, keys::STATUS)?
            .ok_or_else(|| Error::NotAVisit("no status".into()))?;

        let appr_obj = self.map(&ROOT, keys::APPROVALS)?;
        let mut approvals = Vec::new();
        for (key, value, _) in self.entries(&appr_obj) {
            let json =
                value.ok_or_else(|| Error::Corrupt(format!("approval {key} is not a record")))?;
            approvals.push(
                serde_json::from_str::<Approval>(&json)
                    .map_err(|e| Error::Corrupt(format!("approval {key}: {e}")))?,
            );
        }

        Ok(VisitState {
            schema,
            meta,
            template,
            staff,
            roster,
            attendance,
            conduct,
            checks,
            evidence,
            findings,
            narrative,
            status,
            approvals,
        })
    }
}

fn split_pair(key: &str) -> Result<(&str, &str)> {
    key.split_once('/')
        .ok_or_else(|| Error::Corrupt(format!("malformed key {key}")))
}
