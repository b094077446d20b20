//! The phone API of kiemtra, exported through UniFFI to Kotlin, Swift and
//! Python.
//!
//! Thin wrappers only: every operation is one call into `kiemtra-store`
//! (which makes the edit durable before it returns), `kiemtra-core` (the
//! visit document and its rules) or `kiemtra-client` (enrollment, sync).
//! Enumerated values cross the boundary as their stable keys (`"present"`,
//! `"business_trip"`, `"badge"`, …), checked by the core; a wrong key is an
//! [`ApiError::Invalid`]. Nothing panics across the boundary: every failure
//! is an `ApiError`.
//!
//! Calls block, except the `…_async` forms of the calls that wait on the
//! network (`enroll_async`, `sync_async`, `upload_evidence_async`,
//! `refresh_team_async`): Kotlin `suspend` functions, Swift `async`
//! methods, Python coroutines, each running on a thread of its own and
//! cancelled with the caller's coroutine, task or `CancelToken`. Apps call
//! the blocking ones off the main thread. One store is used by one call at
//! a time; a sync holds the store while it applies, so a tap during a sync
//! waits for it.
//!
//! The device key is kept in the store unless the app passes a
//! [`KeyStore`] of its own (Android Keystore, the iOS Keychain) to
//! `enroll` and `DeviceStore.open`.

use kiemtra_client::{Credentials, Device, SyncClient, SyncOptions};
use kiemtra_core::{
    AttendanceMark, CheckId, CheckKind, CheckResult, CheckValue, ChoiceId, ConductKind,
    ConductResult, FieldRef, FindingField, FindingId, FindingValue, Lang, NewFinding, NewVisit,
    Observation, Severity, StaffCategory, StaffId, StaffMember, Tally, Template, Unit, UnitCode,
    UnitKind, Visit, VisitId, VisitState,
};
use kiemtra_store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

uniffi::setup_scaffolding!();

/// Every failure of the API, by kind, with a readable message.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ApiError {
    /// A value was refused: an unknown key, an empty or overlong text, a
    /// move the visit's life cycle does not allow, a malformed id.
    #[error("invalid: {detail}")]
    Invalid { detail: String },
    /// No such visit, staff member, check, finding, conflict or point in history.
    #[error("not found: {detail}")]
    NotFound { detail: String },
    /// The device's role may not do this (an inspector approving, say).
    #[error("not allowed: {detail}")]
    NotAllowed { detail: String },
    /// The store has no enrollment.
    #[error("not enrolled: {detail}")]
    NotEnrolled { detail: String },
    /// The store is enrolled already (open it with `DeviceStore.open`).
    #[error("enrolled already: {detail}")]
    AlreadyEnrolled { detail: String },
    /// The server could not be reached or answered garbage; retry later.
    #[error("network: {detail}")]
    Network { detail: String },
    /// The server refused (a used code, a revoked device, …).
    #[error("refused: {detail}")]
    Refused { detail: String },
    /// The sync was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The device database failed.
    #[error("storage: {detail}")]
    Storage { detail: String },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// The app's key store failed, holds no key for this device or holds
    /// another one; retrying helps only once the key store answers.
    #[error("key store: {detail}")]
    KeyStore { detail: String },
}

type ApiResult<T> = Result<T, ApiError>;

impl From<kiemtra_core::Error> for ApiError {
    fn from(e: kiemtra_core::Error) -> Self {
        use kiemtra_core::Error as E;
        let detail = e.to_string();
        match e {
            E::SupervisorOnly(_) | E::ReadOnlyRole(_) => ApiError::NotAllowed { detail },
            E::UnknownStaff(_)
            | E::UnknownCheck(_)
            | E::UnknownFinding(_)
            | E::NoConflict(_)
            | E::UnknownHeads(_) => ApiError::NotFound { detail },
            E::Corrupt(_) | E::Automerge(_) => ApiError::Storage { detail },
            _ => ApiError::Invalid { detail },
        }
    }
}

impl From<kiemtra_store::Error> for ApiError {
    fn from(e: kiemtra_store::Error) -> Self {
        use kiemtra_store::Error as E;
        match e {
            E::Visit(e) => e.into(),
            E::UnknownVisit(_) => ApiError::NotFound {
                detail: e.to_string(),
            },
            E::VisitExists(_) => ApiError::Invalid {
                detail: e.to_string(),
            },
            _ => ApiError::Storage {
                detail: e.to_string(),
            },
        }
    }
}

impl From<kiemtra_client::Error> for ApiError {
    fn from(e: kiemtra_client::Error) -> Self {
        use kiemtra_client::Error as E;
        let detail = e.to_string();
        match e {
            E::Store(e) => e.into(),
            E::Network(_) | E::Decode(_) => ApiError::Network {
                detail: format!("{detail} (nothing was lost; retrying later may help)"),
            },
            E::Refused { .. } => ApiError::Refused { detail },
            E::NotEnrolled => ApiError::NotEnrolled { detail },
            E::AlreadyEnrolled(_) => ApiError::AlreadyEnrolled { detail },
            E::KeyElsewhere(_) | E::KeyMismatch(_) => ApiError::KeyStore { detail },
            E::Cancelled => ApiError::Cancelled,
        }
    }
}

impl From<kiemtra_client::BundleError> for ApiError {
    fn from(e: kiemtra_client::BundleError) -> Self {
        match e {
            kiemtra_client::BundleError::Device(e) => e.into(),
            other => ApiError::Invalid {
                detail: other.to_string(),
            },
        }
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        detail: message.into(),
    }
}

fn runtime() -> ApiResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ApiError::Network {
            detail: format!("no async runtime: {e}"),
        })
}

fn parse_time(s: &str) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| invalid(format!("time {s:?} is not RFC 3339: {e}")))
}

fn parse_heads(heads: &[String]) -> ApiResult<kiemtra_core::Heads> {
    kiemtra_core::Heads::parse(heads).map_err(|e| invalid(e.to_string()))
}

// ---------------------------------------------------------------- records

/// Who this device is, as the server enrolled it.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct DeviceIdentity {
    pub server: String,
    pub device_id: String,
    pub user_id: String,
    pub team: String,
    /// `inspector`, `supervisor`, `auditor` or `administrator`.
    pub role: String,
}

/// How many absent staff gave one reason.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u32,
}

/// Attendance figures of a visit, derived from the roster and the marks shown.
/// Percentages are hundredths of a percent (7628 = 76.28%), rounded half up;
/// `present_text` etc. are the Vietnamese forms (`76,28%`).
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct TallyView {
    pub payroll: u32,
    pub present: u32,
    pub late: u32,
    pub absent: u32,
    pub unrecorded: u32,
    pub present_pct: u32,
    pub absent_pct: u32,
    pub present_text: String,
    pub absent_text: String,
    pub absent_by_reason: Vec<ReasonCount>,
}

impl From<&Tally> for TallyView {
    fn from(t: &Tally) -> Self {
        Self {
            payroll: t.payroll,
            present: t.present,
            late: t.late,
            absent: t.absent,
            unrecorded: t.unrecorded,
            present_pct: t.present_pct().0,
            absent_pct: t.absent_pct().0,
            present_text: format!("{}%", t.present_pct().format(Lang::Vi)),
            absent_text: format!("{}%", t.absent_pct().format(Lang::Vi)),
            absent_by_reason: t
                .absent_by_reason
                .iter()
                .map(|(r, n)| ReasonCount {
                    reason: r.key().into(),
                    count: *n,
                })
                .collect(),
        }
    }
}

/// A visit as a list shows it, read without loading the document.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct VisitSummary {
    pub id: String,
    pub unit_code: String,
    pub unit_name: String,
    pub unit_kind: String,
    pub campaign: String,
    pub team: String,
    pub scheduled_on: String,
    pub status: String,
    pub conflicts: u32,
    pub tally: TallyView,
    pub heads: Vec<String>,
}

impl From<kiemtra_store::VisitSummary> for VisitSummary {
    fn from(s: kiemtra_store::VisitSummary) -> Self {
        Self {
            id: s.id.to_string(),
            tally: (&s.tally).into(),
            unit_code: s.unit_code,
            unit_name: s.unit_name,
            unit_kind: s.unit_kind,
            campaign: s.campaign,
            team: s.team,
            scheduled_on: s.scheduled_on,
            status: s.status,
            conflicts: s.conflicts,
            heads: s.heads.to_hex(),
        }
    }
}

/// A staff member of the roster, for a new visit or found on site.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct StaffInput {
    pub id: String,
    pub name: String,
    pub position: String,
    /// `leader`, `civil_servant`, `public_employee` or `contract`.
    pub category: String,
    pub on_payroll: bool,
}

impl StaffInput {
    fn to_member(&self) -> ApiResult<StaffMember> {
        Ok(StaffMember::new(
            StaffId::parse(&self.id)?,
            &self.name,
            &self.position,
            StaffCategory::parse(&self.category)?,
            self.on_payroll,
        )?)
    }
}

/// What a new visit is created with.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct NewVisitInput {
    pub unit_code: String,
    pub unit_name: String,
    /// `department`, `district_office`, `commune_committee` or `one_stop_centre`.
    pub unit_kind: String,
    pub area: String,
    pub campaign: String,
    /// `yyyy-mm-dd`.
    pub scheduled_on: String,
    pub roster: Vec<StaffInput>,
}

/// A new finding.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct FindingInput {
    pub category: String,
    /// `minor`, `moderate` or `serious`.
    pub severity: String,
    pub text: String,
    pub recommendation: String,
    pub related_staff: Vec<String>,
}

/// One staff member and what was recorded about them.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct StaffView {
    /// Place in the roster, from 1: the order the visit was created with,
    /// then staff found on site as they were added.
    pub roster_index: u32,
    pub id: String,
    pub name: String,
    pub position: String,
    pub category: String,
    pub on_payroll: bool,
    pub found_on_site: bool,
    /// `present`, `late` or `absent`; `None` when not yet recorded.
    pub attendance: Option<String>,
    pub absence_reason: Option<String>,
    pub attendance_note: String,
    pub attendance_in_conflict: bool,
    pub conduct: Vec<ConductView>,
}

#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ConductView {
    /// `attire`, `badge`, `personal_use` or `alcohol`.
    pub check: String,
    /// `compliant` or `violation`.
    pub result: String,
    pub note: String,
}

/// One option of a `choice` office check.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ChoiceView {
    pub id: String,
    pub label_vi: String,
    pub label_en: String,
}

/// An office check of the template and its outcome.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct CheckView {
    pub id: String,
    pub label_vi: String,
    pub label_en: String,
    /// `pass_fail`, `number`, `choice` or `text`: what a record of it holds
    /// besides its result (record a valued one with `record_check_number`,
    /// `record_check_choice`, `record_check_text`).
    pub kind: String,
    /// A number's bounds (inclusive), when the template sets them.
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// A number's unit (`%`, `lượt`); empty when none.
    pub unit_vi: String,
    pub unit_en: String,
    /// A choice's options, in the template's order.
    pub options: Vec<ChoiceView>,
    /// `pass`, `fail` or `not_applicable`; `None` when not yet checked.
    pub result: Option<String>,
    /// The value recorded, by kind (at most one is set).
    pub number: Option<i64>,
    pub choice: Option<String>,
    pub text: Option<String>,
    /// The value in words, with its unit or the option's label.
    pub value_vi: Option<String>,
    pub value_en: Option<String>,
    pub note: String,
    /// SHA-256 (hex) of attached photos.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct FindingView {
    pub id: String,
    pub category: String,
    pub severity: Option<String>,
    pub text: String,
    pub recommendation: String,
    pub related_staff: Vec<String>,
    pub withdrawn: bool,
}

#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ApprovalView {
    pub id: String,
    pub by: String,
    pub at: String,
    pub heads: Vec<String>,
    pub signed: bool,
}

/// The whole visit at one point of its history.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct VisitView {
    pub id: String,
    pub unit_code: String,
    pub unit_name: String,
    pub unit_kind: String,
    pub area: String,
    pub campaign: String,
    pub team: String,
    pub scheduled_on: String,
    /// `draft`, `submitted`, `approved` or `returned`.
    pub status: String,
    pub status_note: String,
    pub staff: Vec<StaffView>,
    pub checks: Vec<CheckView>,
    pub findings: Vec<FindingView>,
    pub narrative: String,
    pub approvals: Vec<ApprovalView>,
    pub tally: TallyView,
}

impl From<&VisitState> for VisitView {
    fn from(s: &VisitState) -> Self {
        // Roster order; any member the order misses (none in a visit this
        // build wrote) after it, by id.
        let ordered: Vec<&StaffId> = s
            .roster
            .iter()
            .chain(s.staff.keys().filter(|id| !s.roster.contains(id)))
            .collect();
        let staff = ordered
            .into_iter()
            .enumerate()
            .filter_map(|(i, id)| s.staff.get(id).map(|m| (i, id, m)))
            .map(|(i, id, m)| {
                let att = s.attendance.get(id);
                let mark = att.map(|a| a.value().mark);
                StaffView {
                    roster_index: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    id: id.to_string(),
                    name: m.value.name.clone(),
                    position: m.value.position.clone(),
                    category: m.value.category.key().into(),
                    on_payroll: m.value.on_payroll,
                    found_on_site: m.value.found_on_site,
                    attendance: mark.map(|m| m.status_key().into()),
                    absence_reason: mark.and_then(|m| m.reason()).map(|r| r.key().into()),
                    attendance_note: att.map(|a| a.value().note.clone()).unwrap_or_default(),
                    attendance_in_conflict: att.is_some_and(|a| a.in_conflict()),
                    conduct: s
                        .conduct
                        .iter()
                        .filter(|((sid, _), _)| sid == id)
                        .map(|((_, kind), slot)| ConductView {
                            check: kind.key().into(),
                            result: slot.value().result.key().into(),
                            note: slot.value().note.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        let checks = s
            .template
            .checks
            .iter()
            .map(|def| {
                let slot = s.checks.get(&def.id);
                let value = slot.and_then(|c| c.value().value.as_ref());
                let (min, max, unit) = match &def.kind {
                    CheckKind::Number { min, max, unit } => (*min, *max, unit.as_ref()),
                    _ => (None, None, None),
                };
                let options = match &def.kind {
                    CheckKind::Choice { options } => options
                        .iter()
                        .map(|o| ChoiceView {
                            id: o.id.to_string(),
                            label_vi: o.label.get(Lang::Vi).into(),
                            label_en: o.label.get(Lang::En).into(),
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                CheckView {
                    id: def.id.to_string(),
                    label_vi: def.label.get(Lang::Vi).into(),
                    label_en: def.label.get(Lang::En).into(),
                    kind: def.kind.key().into(),
                    min,
                    max,
                    unit_vi: unit.map(|u| u.vi.clone()).unwrap_or_default(),
                    unit_en: unit.map(|u| u.en.clone()).unwrap_or_default(),
                    options,
                    result: slot.map(|c| c.value().result.key().into()),
                    number: match value {
                        Some(CheckValue::Number(n)) => Some(*n),
                        _ => None,
                    },
                    choice: match value {
                        Some(CheckValue::Choice(id)) => Some(id.to_string()),
                        _ => None,
                    },
                    text: match value {
                        Some(CheckValue::Text(t)) => Some(t.clone()),
                        _ => None,
                    },
                    value_vi: value.map(|v| def.describe_value(v, Lang::Vi)),
                    value_en: value.map(|v| def.describe_value(v, Lang::En)),
                    note: slot.map(|c| c.value().note.clone()).unwrap_or_default(),
                    evidence: s
                        .evidence
                        .get(&def.id)
                        .map(|set| set.iter().map(|h| h.as_str().to_owned()).collect())
                        .unwrap_or_default(),
                }
            })
            .collect();
        let findings = s
            .findings
            .values()
            .map(|f| FindingView {
                id: f.id.to_string(),
                category: f.category().into(),
                severity: f.severity().map(|v| v.key().into()),
                text: f.text().into(),
                recommendation: f.recommendation().into(),
                related_staff: f.related_staff().iter().map(|s| s.to_string()).collect(),
                withdrawn: f.withdrawn(),
            })
            .collect();
        Self {
            id: s.meta.visit_id.to_string(),
            unit_code: s.meta.unit.code.to_string(),
            unit_name: s.meta.unit.name.clone(),
            unit_kind: s.meta.unit.kind.key().into(),
            area: s.meta.unit.area.clone(),
            campaign: s.meta.campaign.to_string(),
            team: s.meta.team.to_string(),
            scheduled_on: s.meta.scheduled_on.to_string(),
            status: s.status().key().into(),
            status_note: s.status.value().note.clone(),
            staff,
            checks,
            findings,
            narrative: s.narrative.clone(),
            approvals: s
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    id: a.id.clone(),
                    by: a.stamp.by.to_string(),
                    at: a.stamp.at.to_rfc3339(),
                    heads: a.heads.clone(),
                    signed: !a.signature.is_empty(),
                })
                .collect(),
            tally: (&s.tally()).into(),
        }
    }
}

/// One value a conflicting field holds, with who wrote it and when.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct CandidateView {
    pub value_vi: String,
    pub value_en: String,
    /// The note written with it ("" when none).
    pub note: String,
    /// When it was observed (attendance) or recorded, RFC 3339.
    pub observed_at: String,
    pub by: String,
    pub device: String,
    /// Device time, RFC 3339.
    pub at: String,
}

/// A field the replicas disagree on. `field` is what `resolve` takes.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ConflictView {
    pub field: String,
    pub label_vi: String,
    pub label_en: String,
    /// What differs among the candidates, in both languages
    /// (`kết quả ghi nhận` / `what was observed`, note, time, recorder).
    pub differs_vi: Vec<String>,
    pub differs_en: Vec<String>,
    /// The value shown first.
    pub candidates: Vec<CandidateView>,
}

/// What reading a bundle did.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct BundleReadReport {
    /// The device that wrote it.
    pub writer: String,
    /// Visits new to this device.
    pub added: Vec<String>,
    /// Visits held that got changes.
    pub updated: Vec<String>,
    /// Visits whose changes were all held already.
    pub unchanged: Vec<String>,
    pub new_changes: u64,
}

/// One line of history or of a diff, in both languages.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ChangeLine {
    pub vi: String,
    pub en: String,
}

/// One change of a visit's history.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct HistoryEntryView {
    /// The change hash: a point in history for `state_at` and `diff`.
    pub hash: String,
    pub user: Option<String>,
    pub device: Option<String>,
    /// The device's clock when the change was made, RFC 3339.
    pub device_time: String,
    pub after_approval: bool,
    pub lines: Vec<ChangeLine>,
}

/// Reported after each request of a sync.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct SyncProgress {
    pub visits_done: u64,
    pub visits_total: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct VisitSyncError {
    pub visit_id: String,
    pub message: String,
}

/// What one sync did.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct SyncReport {
    pub requests: u32,
    pub retries: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub visits_uploaded: u64,
    pub visits_downloaded: u64,
    /// Visits the server would not take, each with its reason.
    pub errors: Vec<VisitSyncError>,
    /// The photos uploaded after the sync (none when told not to).
    pub evidence: Option<EvidenceUploadReport>,
}

/// How a store's network calls retry: time allowed for one exchange, and
/// attempts per request with exponential backoff (full jitter) from
/// `base_backoff_ms` up to `max_backoff_ms`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct RetryPolicy {
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

/// What `upload_evidence` did.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct EvidenceUploadReport {
    /// Photos the server now holds whole.
    pub uploaded: u64,
    pub requests: u32,
    pub retries: u32,
    pub bytes_sent: u64,
    /// Photos the server would not take (yet), each with its reason; they
    /// stay waiting for the next call.
    pub errors: Vec<EvidenceUploadError>,
    /// Photos detached from their check on this device: kept, not sent.
    pub skipped: u64,
}

#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct EvidenceUploadError {
    pub visit_id: String,
    pub sha256: String,
    /// The server's problem kind, e.g. `not-found` for a visit not synced yet.
    pub kind: String,
    pub message: String,
}

/// What `verify_received` did.
#[derive(Debug, Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ReceivedCheck {
    /// Visits loaded and checked.
    pub verified: u64,
    /// Visits whose received document was damaged: removed, and downloaded
    /// again at the next sync.
    pub removed: Vec<String>,
}

// ---------------------------------------------------------------- sync hooks

/// Implemented by the app to follow a sync (a progress bar).
#[uniffi::export(with_foreign)]
pub trait SyncListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgress);
}

/// Cancels a running sync from another thread; the sync stops at its next
/// step with `ApiError.Cancelled`, keeping what was already applied.
#[derive(uniffi::Object, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------- key store

/// What an app's [`KeyStore`] reports when it cannot do what was asked.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyStoreError {
    #[error("{detail}")]
    Failed { detail: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyStoreError::Failed { detail: e.reason }
    }
}

impl From<KeyStoreError> for ApiError {
    fn from(e: KeyStoreError) -> Self {
        ApiError::KeyStore {
            detail: e.to_string(),
        }
    }
}

/// Implemented by an app that keeps the device's private key itself (in
/// Android Keystore, the iOS Keychain) instead of in the store. `alias`
/// names one key (`kiemtra-device-` and the hex of its public half); `key`
/// is the private key as PKCS#8 bytes. The key is kept before the device
/// enrolls with it and read back when the store opens; while a store is
/// open the key is in the process's memory, as it is to sign.
#[uniffi::export(with_foreign)]
pub trait KeyStore: Send + Sync {
    /// Keeps `key` under `alias`, replacing any key kept under it.
    fn save_key(&self, alias: String, key: Vec<u8>) -> Result<(), KeyStoreError>;
    /// The key kept under `alias`, or nothing.
    fn load_key(&self, alias: String) -> Result<Option<Vec<u8>>, KeyStoreError>;
    /// Forgets `alias` (an enrollment that failed after its key was kept).
    fn delete_key(&self, alias: String) -> Result<(), KeyStoreError>;
}

/// Opens the enrolled store at `store_path` as a [`Device`], with the
/// device key read from `key_store` when the app keeps it there.
fn open_device(store_path: &str, key_store: Option<&Arc<dyn KeyStore>>) -> ApiResult<Device> {
    let path = std::path::Path::new(store_path);
    let Some(enrollment) = Device::enrollment(path)? else {
        return Err(kiemtra_client::Error::NotEnrolled.into());
    };
    let Some(alias) = enrollment.key_alias.clone() else {
        return Ok(Device::open_enrolled(path, enrollment, None)?);
    };
    let Some(keys) = key_store else {
        return Err(ApiError::KeyStore {
            detail: format!(
                "the device key of {store_path} is kept by the app's key store \
                 (alias {alias}); open the store with it"
            ),
        });
    };
    let key = keys
        .load_key(alias.clone())?
        .ok_or_else(|| ApiError::KeyStore {
            detail: format!("the app's key store holds no key under {alias}"),
        })?;
    Ok(Device::open_enrolled(path, enrollment, Some(&key))?)
}

// ---------------------------------------------------------------- async

/// Cancels a call when dropped before it finished: Kotlin and Python drop
/// the call when its coroutine or task is cancelled, and the call stops at
/// once where it waits on the network (within `CANCEL_POLL`) or at its
/// next step, keeping what was already applied.
struct CancelOnDrop {
    token: Arc<CancelToken>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.token.cancel();
        }
    }
}

/// Runs `f` on a thread of its own and waits for it without blocking the
/// caller's thread; `token` is cancelled if the waiting is given up.
async fn off_thread<T: Send + 'static>(
    token: Arc<CancelToken>,
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let mut guard = CancelOnDrop { token, armed: true };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kiemtra-call".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| ApiError::Storage {
            detail: format!("no thread for the call: {e}"),
        })?;
    let out = rx.await.map_err(|_| ApiError::Storage {
        detail: "the call ended without an answer".into(),
    });
    guard.armed = false;
    out?
}

/// The token a call uses: the caller's, or a fresh one that only dropping
/// the call sets.
fn token_or_new(cancel: Option<Arc<CancelToken>>) -> Arc<CancelToken> {
    cancel.unwrap_or_default()
}

// ---------------------------------------------------------------- the store

struct Inner {
    device: Mutex<Option<Device>>,
    /// The device's credentials, read without taking the store.
    creds: Credentials,
    options: Mutex<SyncOptions>,
}

impl Inner {
    fn new(device: Device, options: SyncOptions) -> Arc<Self> {
        Arc::new(Self {
            creds: device.creds.clone(),
            device: Mutex::new(Some(device)),
            options: Mutex::new(options),
        })
    }
    fn lock(&self) -> ApiResult<MutexGuard<'_, Option<Device>>> {
        self.device.lock().map_err(|_| ApiError::Storage {
            detail: "an earlier call failed while holding the store".into(),
        })
    }
    fn with_device<T>(&self, f: impl FnOnce(&mut Device) -> ApiResult<T>) -> ApiResult<T> {
        match self.lock()?.as_mut() {
            Some(device) => f(device),
            None => Err(ApiError::Closed),
        }
    }
    fn with<T>(&self, f: impl FnOnce(&mut Store) -> ApiResult<T>) -> ApiResult<T> {
        self.with_device(|d| f(&mut d.store))
    }
}

/// The device's local store of visits, opened as the enrolled user.
#[derive(uniffi::Object)]
pub struct DeviceStore {
    inner: Arc<Inner>,
}

/// Enrolls this device with a server using a single-use code from an
/// administrator, and creates its store at `store_path`. A new Ed25519 key
/// is made on the device (only its public half is sent) and kept in the
/// store, or in `key_store` when the app gives one. A lost or cut answer
/// is retried with the same key under `retry_policy` (the default
/// otherwise), so a bad link does not burn the code.
#[uniffi::export(default(key_store = None, retry_policy = None))]
pub fn enroll(
    store_path: String,
    server_url: String,
    code: String,
    device_name: String,
    key_store: Option<Arc<dyn KeyStore>>,
    retry_policy: Option<RetryPolicy>,
) -> ApiResult<Arc<DeviceStore>> {
    let path = std::path::Path::new(&store_path);
    if Device::enrollment(path)?.is_some() {
        return Err(ApiError::AlreadyEnrolled {
            detail: format!("{store_path} is enrolled already"),
        });
    }
    let mut options = SyncOptions::default();
    if let Some(policy) = &retry_policy {
        apply_policy(&mut options, policy)?;
    }
    let key = kiemtra_client::new_device_key()?;
    let alias = kiemtra_client::key_alias(&kiemtra_client::public_key_of(&key)?);
    if let Some(keys) = &key_store {
        keys.save_key(alias.clone(), key.clone())?;
    }
    let enrolled = runtime()?.block_on(Device::enroll(
        path,
        &server_url,
        &code,
        &device_name,
        &options,
        &key,
        key_store.as_ref().map(|_| alias.as_str()),
    ));
    let device = match enrolled {
        Ok(d) => d,
        Err(e) => {
            // The key is forgotten only when the server did not take it; a
            // store that failed after the server enrolled the key keeps it
            // in the app's key store (the server vouches for it).
            let server_took_it = matches!(e, kiemtra_client::Error::Store(_));
            if let (Some(keys), false) = (&key_store, server_took_it) {
                let _ = keys.delete_key(alias);
            }
            return Err(e.into());
        }
    };
    Ok(Arc::new(DeviceStore {
        inner: Inner::new(device, options),
    }))
}

/// `enroll` as an async call (Kotlin `suspend`, Swift `async`, Python
/// coroutine). Given up before it answers, the enrollment still either
/// completes (the store is then enrolled: open it) or leaves nothing.
#[uniffi::export(default(key_store = None, retry_policy = None))]
pub async fn enroll_async(
    store_path: String,
    server_url: String,
    code: String,
    device_name: String,
    key_store: Option<Arc<dyn KeyStore>>,
    retry_policy: Option<RetryPolicy>,
) -> ApiResult<Arc<DeviceStore>> {
    off_thread(CancelToken::new(), move || {
        enroll(
            store_path,
            server_url,
            code,
            device_name,
            key_store,
            retry_policy,
        )
    })
    .await
}

fn apply_policy(o: &mut SyncOptions, policy: &RetryPolicy) -> ApiResult<()> {
    if policy.max_attempts == 0
        || policy.timeout_ms < 100
        || policy.max_backoff_ms < policy.base_backoff_ms
    {
        return Err(invalid(format!(
            "a retry policy needs at least one attempt, a timeout of at least 100 ms \
             and max_backoff_ms >= base_backoff_ms: {policy:?}"
        )));
    }
    o.timeout = std::time::Duration::from_millis(policy.timeout_ms);
    o.max_attempts = policy.max_attempts;
    o.base_backoff = std::time::Duration::from_millis(policy.base_backoff_ms);
    o.max_backoff = std::time::Duration::from_millis(policy.max_backoff_ms);
    Ok(())
}

impl DeviceStore {
    /// A sync client with this device's credentials, stopped by `cancel`.
    fn client(&self, cancel: Option<&CancelToken>) -> ApiResult<SyncClient> {
        let options = self
            .inner
            .options
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default();
        let client = SyncClient::new(self.inner.creds.clone(), options)?;
        Ok(match cancel {
            Some(token) => client.with_cancel(token.flag.clone()),
            None => client,
        })
    }
}

#[uniffi::export]
impl DeviceStore {
    /// Opens an enrolled device's store (after `enroll`, on a later
    /// start); `key_store` is the app's key store when it was given to
    /// `enroll`, and is then required.
    #[uniffi::constructor(default(key_store = None))]
    pub fn open(store_path: String, key_store: Option<Arc<dyn KeyStore>>) -> ApiResult<Arc<Self>> {
        let device = open_device(&store_path, key_store.as_ref())?;
        Ok(Arc::new(Self {
            inner: Inner::new(device, SyncOptions::default()),
        }))
    }

    /// Closes the database; later calls on this store or its visits fail
    /// with `ApiError.Closed`. Every acknowledged edit is already on disk.
    /// (Not `close`: Kotlin objects already have `close()`, which frees the
    /// handle itself.)
    pub fn close_store(&self) -> ApiResult<()> {
        match self.inner.lock()?.take() {
            Some(_) => Ok(()),
            None => Err(ApiError::Closed),
        }
    }

    pub fn identity(&self) -> DeviceIdentity {
        let c = &self.inner.creds;
        DeviceIdentity {
            server: c.server.clone(),
            device_id: c.device_id.clone(),
            user_id: c.user_id.clone(),
            team: c.team.clone(),
            role: c.role.clone(),
        }
    }

    /// Every visit on the device, with its tallies.
    pub fn list_visits(&self) -> ApiResult<Vec<VisitSummary>> {
        self.inner.with(|s| {
            Ok(s.list_visits()?
                .into_iter()
                .map(VisitSummary::from)
                .collect())
        })
    }

    /// Creates a visit for the device's team from a template (its JSON, as
    /// shipped with the app). Works offline; it reaches the server at the
    /// next sync.
    pub fn create_visit(
        &self,
        input: NewVisitInput,
        template_json: String,
    ) -> ApiResult<Arc<VisitHandle>> {
        let template = Template::from_json(&template_json)?;
        let roster = input
            .roster
            .iter()
            .map(StaffInput::to_member)
            .collect::<ApiResult<Vec<_>>>()?;
        let new = NewVisit {
            visit_id: VisitId::generate(),
            unit: Unit::new(
                UnitCode::parse(&input.unit_code)?,
                &input.unit_name,
                UnitKind::parse(&input.unit_kind)?,
                &input.area,
            )?,
            campaign: kiemtra_core::CampaignId::parse(&input.campaign)?,
            team: kiemtra_core::TeamId::parse(&self.inner.creds.team)?,
            scheduled_on: chrono::NaiveDate::parse_from_str(&input.scheduled_on, "%Y-%m-%d")
                .map_err(|e| invalid(format!("scheduled_on {:?}: {e}", input.scheduled_on)))?,
            roster,
        };
        let summary = self.inner.with(|s| Ok(s.create_visit(new, &template)?))?;
        Ok(Arc::new(VisitHandle {
            inner: self.inner.clone(),
            id: summary.id,
        }))
    }

    /// Opens a visit held on the device.
    pub fn open_visit(&self, visit_id: String) -> ApiResult<Arc<VisitHandle>> {
        let id = VisitId::parse(&visit_id)?;
        self.inner.with(|s| {
            s.summary(&id)?;
            Ok(())
        })?;
        Ok(Arc::new(VisitHandle {
            inner: self.inner.clone(),
            id,
        }))
    }

    /// Loads and checks every visit received from the server and not opened
    /// yet; for when the app is idle. A sync stores received visits without
    /// loading them and the list shows the server's listing until then;
    /// opening a visit does the same check for that one.
    pub fn verify_received(&self) -> ApiResult<ReceivedCheck> {
        let done = self.inner.with(|s| Ok(s.verify_pending()?))?;
        Ok(ReceivedCheck {
            verified: done.verified as u64,
            removed: done
                .removed
                .into_iter()
                .map(|(id, _)| id.to_string())
                .collect(),
        })
    }

    /// Photos kept on this device that the server does not hold whole yet.
    pub fn pending_evidence(&self) -> ApiResult<u64> {
        Ok(self.inner.with(|s| Ok(s.evidence_to_upload()?))?.len() as u64)
    }

    /// Uploads every waiting photo in pieces, each resuming where the
    /// server's copy stops; call after `sync` (the server takes only photos
    /// of visits it holds). A photo the server refuses stays waiting and is
    /// reported; `cancel` stops at the next piece.
    #[uniffi::method(default(cancel = None))]
    pub fn upload_evidence(
        &self,
        cancel: Option<Arc<CancelToken>>,
    ) -> ApiResult<EvidenceUploadReport> {
        let client = self.client(cancel.as_deref())?;
        let rt = runtime()?;
        let report = self
            .inner
            .with(|store| Ok(rt.block_on(client.upload_evidence(store))?))?;
        Ok(EvidenceUploadReport {
            uploaded: report.uploaded as u64,
            requests: report.requests,
            retries: report.retries,
            bytes_sent: report.bytes_sent,
            skipped: report.skipped as u64,
            errors: report
                .errors
                .into_iter()
                .map(|e| EvidenceUploadError {
                    visit_id: e.visit_id,
                    sha256: e.hash,
                    kind: e.kind,
                    message: e.message,
                })
                .collect(),
        })
    }

    /// The retry policy this store's syncs, uploads and refreshes use.
    pub fn retry_policy(&self) -> RetryPolicy {
        let o = self
            .inner
            .options
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default();
        RetryPolicy {
            timeout_ms: o.timeout.as_millis() as u64,
            max_attempts: o.max_attempts,
            base_backoff_ms: o.base_backoff.as_millis() as u64,
            max_backoff_ms: o.max_backoff.as_millis() as u64,
        }
    }

    /// Sets the retry policy for this store's later calls (a rural link
    /// may want more attempts and a longer timeout). At least one attempt,
    /// a timeout of at least 100 ms, and backoffs that do not shrink.
    pub fn set_retry_policy(&self, policy: RetryPolicy) -> ApiResult<()> {
        let mut o = self.inner.options.lock().map_err(|_| ApiError::Storage {
            detail: "an earlier call failed while holding the options".into(),
        })?;
        apply_policy(&mut o, &policy)
    }

    /// Fetches the team's devices and keys while there is a signal, so
    /// that bundles can be read with none (`sync` also does it when the
    /// list is missing or a day old). Returns how many devices.
    #[uniffi::method(default(cancel = None))]
    pub fn refresh_team(&self, cancel: Option<Arc<CancelToken>>) -> ApiResult<u32> {
        let client = self.client(cancel.as_deref())?;
        let rt = runtime()?;
        let n = self
            .inner
            .with(|store| Ok(rt.block_on(client.refresh_team(store))?))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The visits `visit_ids` (every visit held, when empty) with their
    /// signatures, as a bundle file's bytes for a colleague's device
    /// (share sheet, cable, Bluetooth, chat); no network needed.
    pub fn write_bundle(&self, visit_ids: Vec<String>) -> ApiResult<Vec<u8>> {
        let ids = visit_ids
            .iter()
            .map(|v| VisitId::parse(v).map_err(|e| invalid(e.to_string())))
            .collect::<ApiResult<Vec<_>>>()?;
        let creds = self.inner.creds.clone();
        self.inner
            .with(|store| Ok(kiemtra_client::write_bundle(store, &creds, &ids)?))
    }

    /// Reads a colleague's bundle in, with no network: checked whole (its
    /// team, the acceptance rule, every signature against the team's
    /// keys) and stored, or refused with `ApiError.Invalid` saying why and
    /// nothing changed.
    pub fn read_bundle(&self, bytes: Vec<u8>) -> ApiResult<BundleReadReport> {
        let creds = self.inner.creds.clone();
        let r = self
            .inner
            .with(|store| Ok(kiemtra_client::read_bundle(store, &creds, &bytes)?))?;
        let ids = |v: Vec<VisitId>| v.into_iter().map(|id| id.to_string()).collect();
        Ok(BundleReadReport {
            writer: r.writer,
            added: ids(r.added),
            updated: ids(r.updated),
            unchanged: ids(r.unchanged),
            new_changes: r.new_changes as u64,
        })
    }

    /// Sends what the server lacks and receives what the device lacks
    /// (including visits new to it), then, unless `upload_evidence` is
    /// false, the photos waiting for the server (`SyncReport.evidence`).
    /// `listener` hears progress after each request; `cancel` stops the
    /// sync at its next step.
    #[uniffi::method(default(listener = None, cancel = None, upload_evidence = true))]
    pub fn sync(
        &self,
        listener: Option<Arc<dyn SyncListener>>,
        cancel: Option<Arc<CancelToken>>,
        upload_evidence: bool,
    ) -> ApiResult<SyncReport> {
        let client = self.client(cancel.as_deref())?;
        let rt = runtime()?;
        let report = self.inner.with(|store| {
            let mut progress = |p: &kiemtra_client::Progress| {
                if let Some(l) = &listener {
                    l.on_progress(SyncProgress {
                        visits_done: p.visits_done as u64,
                        visits_total: p.visits_total as u64,
                        bytes_sent: p.bytes_sent,
                        bytes_received: p.bytes_received,
                    });
                }
            };
            Ok(rt.block_on(client.sync(store, &mut progress))?)
        })?;
        let evidence = if upload_evidence {
            Some(self.upload_evidence(cancel)?)
        } else {
            None
        };
        Ok(SyncReport {
            evidence,
            requests: report.requests,
            retries: report.retries,
            bytes_sent: report.bytes_sent,
            bytes_received: report.bytes_received,
            visits_uploaded: report.visits_uploaded as u64,
            visits_downloaded: report.visits_downloaded as u64,
            errors: report
                .errors
                .into_iter()
                .map(|e| VisitSyncError {
                    visit_id: e.visit_id,
                    message: e.message,
                })
                .collect(),
        })
    }
}

/// The async forms of the calls that wait on the network (Kotlin
/// `suspend`, Swift `async`, Python coroutines). Each runs on a thread of
/// its own. Cancelling the Kotlin coroutine or the Python task cancels the
/// call; Swift does not tell a call its task was cancelled, so pass a
/// `CancelToken` and cancel it from `withTaskCancellationHandler`. A
/// cancelled call answers `ApiError.Cancelled` (or, when dropped, nothing)
/// and keeps what was already applied; the next sync carries on.
#[uniffi::export]
impl DeviceStore {
    /// `sync` as an async call.
    #[uniffi::method(default(listener = None, cancel = None, upload_evidence = true))]
    pub async fn sync_async(
        &self,
        listener: Option<Arc<dyn SyncListener>>,
        cancel: Option<Arc<CancelToken>>,
        upload_evidence: bool,
    ) -> ApiResult<SyncReport> {
        let token = token_or_new(cancel);
        let (me, t) = (self.handle(), token.clone());
        off_thread(token, move || me.sync(listener, Some(t), upload_evidence)).await
    }

    /// `upload_evidence` as an async call.
    #[uniffi::method(default(cancel = None))]
    pub async fn upload_evidence_async(
        &self,
        cancel: Option<Arc<CancelToken>>,
    ) -> ApiResult<EvidenceUploadReport> {
        let token = token_or_new(cancel);
        let (me, t) = (self.handle(), token.clone());
        off_thread(token, move || me.upload_evidence(Some(t))).await
    }

    /// `refresh_team` as an async call.
    #[uniffi::method(default(cancel = None))]
    pub async fn refresh_team_async(&self, cancel: Option<Arc<CancelToken>>) -> ApiResult<u32> {
        let token = token_or_new(cancel);
        let (me, t) = (self.handle(), token.clone());
        off_thread(token, move || me.refresh_team(Some(t))).await
    }
}

impl DeviceStore {
    /// Another handle on the same store, for a call on another thread.
    fn handle(&self) -> DeviceStore {
        DeviceStore {
            inner: self.inner.clone(),
        }
    }
}

// ---------------------------------------------------------------- one visit

/// One visit of the store. Every recording call is one durable change:
/// when it returns, the edit survives the app being killed.
#[derive(uniffi::Object)]
pub struct VisitHandle {
    inner: Arc<Inner>,
    id: VisitId,
}

impl VisitHandle {
    fn record_valued(
        &self,
        check_id: &str,
        result: &str,
        value: CheckValue,
        note: &str,
    ) -> ApiResult<()> {
        let check = CheckId::parse(check_id)?;
        let result = CheckResult::parse(result)?;
        self.edit(|v| v.record_check_value(&check, result, value, note))
    }

    fn edit<T>(&self, f: impl FnOnce(&mut Visit) -> kiemtra_core::Result<T>) -> ApiResult<T> {
        self.inner.with(|s| Ok(s.edit(&self.id, f)?))
    }
    fn read<T>(&self, f: impl FnOnce(&Visit) -> ApiResult<T>) -> ApiResult<T> {
        self.inner.with(|s| f(s.visit(&self.id)?))
    }
}

fn describe_lines(changes: &[kiemtra_core::DomainChange], state: &VisitState) -> Vec<ChangeLine> {
    changes
        .iter()
        .map(|c| ChangeLine {
            vi: c.describe(Lang::Vi, state),
            en: c.describe(Lang::En, state),
        })
        .collect()
}

#[uniffi::export]
impl VisitHandle {
    pub fn id(&self) -> String {
        self.id.to_string()
    }

    /// The visit as it stands on this device.
    pub fn state(&self) -> ApiResult<VisitView> {
        self.read(|v| Ok((&v.state()?).into()))
    }

    pub fn tally(&self) -> ApiResult<TallyView> {
        self.read(|v| Ok((&v.tally()?).into()))
    }

    /// `status`: `present`, `late` or `absent`; `reason` only with `absent`
    /// (`business_trip`, `training`, `leave`, `sick`, `unexcused`, `other`
    /// — `other` needs a note). `observed_at` (RFC 3339) defaults to now.
    #[uniffi::method(default(reason = None, note = "", observed_at = None))]
    pub fn record_attendance(
        &self,
        staff_id: String,
        status: String,
        reason: Option<String>,
        note: String,
        observed_at: Option<String>,
    ) -> ApiResult<()> {
        let staff = StaffId::parse(&staff_id)?;
        let mark = AttendanceMark::parse(&status, reason.as_deref())?;
        let at = observed_at.as_deref().map(parse_time).transpose()?;
        self.edit(|v| v.record_attendance(&staff, mark, &note, at))
    }

    /// `check`: `attire`, `badge`, `personal_use`, `alcohol`;
    /// `result`: `compliant` or `violation`.
    #[uniffi::method(default(note = ""))]
    pub fn record_conduct(
        &self,
        staff_id: String,
        check: String,
        result: String,
        note: String,
    ) -> ApiResult<()> {
        let staff = StaffId::parse(&staff_id)?;
        let check = ConductKind::parse(&check)?;
        let result = ConductResult::parse(&result)?;
        self.edit(|v| v.record_conduct(&staff, check, result, &note))
    }

    /// An office check of the visit's template; `result`: `pass`, `fail`
    /// or `not_applicable`.
    #[uniffi::method(default(note = ""))]
    pub fn record_check(&self, check_id: String, result: String, note: String) -> ApiResult<()> {
        let check = CheckId::parse(&check_id)?;
        let result = CheckResult::parse(&result)?;
        self.edit(|v| v.record_check(&check, result, &note))
    }

    /// A `number` office check: the result and the number measured
    /// (within the check's `min`..`max`). A valued check found not
    /// applicable is recorded with `record_check` and no value.
    #[uniffi::method(default(note = ""))]
    pub fn record_check_number(
        &self,
        check_id: String,
        result: String,
        value: i64,
        note: String,
    ) -> ApiResult<()> {
        self.record_valued(&check_id, &result, CheckValue::Number(value), &note)
    }

    /// A `choice` office check: the result and the option found, by id.
    #[uniffi::method(default(note = ""))]
    pub fn record_check_choice(
        &self,
        check_id: String,
        result: String,
        option_id: String,
        note: String,
    ) -> ApiResult<()> {
        let option = ChoiceId::parse(&option_id)?;
        self.record_valued(&check_id, &result, CheckValue::Choice(option), &note)
    }

    /// A `text` office check: the result and a short text (at most 200
    /// characters).
    #[uniffi::method(default(note = ""))]
    pub fn record_check_text(
        &self,
        check_id: String,
        result: String,
        text: String,
        note: String,
    ) -> ApiResult<()> {
        self.record_valued(&check_id, &result, CheckValue::Text(text), &note)
    }

    /// A person found on site who was not on the roster.
    pub fn add_staff(&self, member: StaffInput) -> ApiResult<()> {
        let member = member.to_member()?;
        self.edit(|v| v.add_staff(member))
    }

    /// Takes a photo's bytes: keeps them on the device and references them
    /// from the office check, in one durable step; `upload_evidence` sends
    /// them later. Returns the photo's SHA-256 (hex), its name.
    pub fn add_evidence(&self, check_id: String, bytes: Vec<u8>) -> ApiResult<String> {
        let check = CheckId::parse(&check_id)?;
        let hash = self
            .inner
            .with(|s| Ok(s.add_evidence(&self.id, &check, &bytes)?))?;
        Ok(hash.to_string())
    }

    /// A photo (by its SHA-256, hex) supporting an office check; the bytes
    /// are kept elsewhere (see `add_evidence` to keep them here).
    pub fn attach_evidence(&self, check_id: String, sha256: String) -> ApiResult<()> {
        let check = CheckId::parse(&check_id)?;
        let hash = kiemtra_core::EvidenceHash::parse(&sha256)?;
        self.edit(|v| v.attach_evidence(&check, &hash))
    }

    pub fn detach_evidence(&self, check_id: String, sha256: String) -> ApiResult<()> {
        let check = CheckId::parse(&check_id)?;
        let hash = kiemtra_core::EvidenceHash::parse(&sha256)?;
        self.edit(|v| v.detach_evidence(&check, &hash))
    }

    /// Adds a finding; returns its id.
    pub fn add_finding(&self, finding: FindingInput) -> ApiResult<String> {
        let new = NewFinding {
            category: finding.category,
            severity: Severity::parse(&finding.severity)?,
            text: finding.text,
            recommendation: finding.recommendation,
            related_staff: finding
                .related_staff
                .iter()
                .map(|s| StaffId::parse(s))
                .collect::<kiemtra_core::Result<_>>()?,
        };
        Ok(self.edit(|v| v.add_finding(new))?.to_string())
    }

    /// Changes one field of a finding. `field`: `category`, `severity`,
    /// `text`, `recommendation`, `related_staff` (ids separated by commas)
    /// or `withdrawn` (`true`/`false`).
    pub fn update_finding(
        &self,
        finding_id: String,
        field: String,
        value: String,
    ) -> ApiResult<()> {
        let finding = FindingId::parse(&finding_id)?;
        let field = FindingField::ALL
            .iter()
            .find(|f| f.key() == field)
            .ok_or_else(|| invalid(format!("unknown finding field {field:?}")))?;
        let value = match field {
            FindingField::Category => FindingValue::Category(value),
            FindingField::Severity => FindingValue::Severity(Severity::parse(&value)?),
            FindingField::Text => FindingValue::Text(value),
            FindingField::Recommendation => FindingValue::Recommendation(value),
            FindingField::RelatedStaff => FindingValue::RelatedStaff(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(StaffId::parse)
                    .collect::<kiemtra_core::Result<_>>()?,
            ),
            FindingField::Withdrawn => FindingValue::Withdrawn(match value.as_str() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(invalid(format!(
                        "withdrawn must be true or false, not {other:?}"
                    )));
                }
            }),
        };
        self.edit(|v| v.update_finding(&finding, value))
    }

    /// Replaces the narrative (the smallest edit is written, so concurrent
    /// edits elsewhere in the text survive a merge).
    pub fn set_narrative(&self, text: String) -> ApiResult<()> {
        self.edit(|v| v.set_narrative(&text))
    }

    /// Deletes `delete` characters at `position` and inserts `insert` there.
    pub fn splice_narrative(&self, position: u32, delete: u32, insert: String) -> ApiResult<()> {
        self.edit(|v| v.splice_narrative(position as usize, delete as usize, &insert))
    }

    /// Draft or returned → submitted.
    pub fn submit(&self, note: String) -> ApiResult<()> {
        self.edit(|v| v.submit(&note))
    }

    /// Submitted → returned, with the reason (supervisors only).
    pub fn return_visit(&self, reason: String) -> ApiResult<()> {
        self.edit(|v| v.return_visit(&reason))
    }

    /// Submitted → approved, signed with this device's key (supervisors
    /// only; refused while conflicts remain). Returns the approval's id.
    pub fn approve(&self, note: String) -> ApiResult<String> {
        // Fails early (NotEnrolled) when the key is unusable, rather than
        // writing an approval without a signature.
        self.inner
            .with_device(|d| Ok(d.approve(&self.id, &note)?.id))
    }

    /// Fields the replicas disagree on, with every candidate.
    pub fn conflicts(&self) -> ApiResult<Vec<ConflictView>> {
        self.read(|v| {
            let state = v.state()?;
            Ok(state
                .conflicts()
                .into_iter()
                .map(|c| ConflictView {
                    field: c.field.to_string(),
                    label_vi: c.field.describe(Lang::Vi, &state),
                    label_en: c.field.describe(Lang::En, &state),
                    differs_vi: c
                        .differences()
                        .iter()
                        .map(|a| a.label(Lang::Vi).to_owned())
                        .collect(),
                    differs_en: c
                        .differences()
                        .iter()
                        .map(|a| a.label(Lang::En).to_owned())
                        .collect(),
                    candidates: c
                        .candidates
                        .iter()
                        .map(|cand| CandidateView {
                            value_vi: cand.value.describe_for(&c.field, Lang::Vi, &state),
                            value_en: cand.value.describe_for(&c.field, Lang::En, &state),
                            note: cand.value.note().to_owned(),
                            observed_at: cand
                                .value
                                .observed_at()
                                .unwrap_or(cand.stamp.at)
                                .to_rfc3339(),
                            by: cand.stamp.by.to_string(),
                            device: cand.stamp.device.to_string(),
                            at: cand.stamp.at.to_rfc3339(),
                        })
                        .collect(),
                })
                .collect())
        })
    }

    /// Settles a conflict with candidate `candidate` (0 = the value shown);
    /// supervisors only.
    pub fn resolve(&self, field: String, candidate: u32) -> ApiResult<()> {
        let field = FieldRef::parse(&field)?;
        self.edit(|v| v.resolve(&field, candidate as usize))
    }

    /// Every change, oldest first, in domain terms.
    pub fn history(&self) -> ApiResult<Vec<HistoryEntryView>> {
        self.read(|v| {
            let state = v.state()?;
            Ok(v.history()?
                .into_iter()
                .map(|h| HistoryEntryView {
                    lines: describe_lines(&h.changes, &state),
                    hash: h.hash,
                    user: h.author.as_ref().map(|a| a.user.to_string()),
                    device: h.author.as_ref().map(|a| a.device.to_string()),
                    device_time: h.device_time.to_rfc3339(),
                    after_approval: h.after_approval,
                })
                .collect())
        })
    }

    /// The current heads: the point in history "now".
    pub fn heads(&self) -> ApiResult<Vec<String>> {
        self.read(|v| Ok(v.heads().iter().map(|h| h.to_string()).collect()))
    }

    /// The visit as it was at a point in history (change hashes from
    /// `history` or `heads`).
    pub fn state_at(&self, heads: Vec<String>) -> ApiResult<VisitView> {
        let heads = parse_heads(&heads)?;
        self.read(|v| Ok((&v.state_at(&heads)?).into()))
    }

    /// The visit as it was at a moment (RFC 3339, by device clocks).
    pub fn state_at_time(&self, at: String) -> ApiResult<VisitView> {
        let at = parse_time(&at)?;
        self.read(|v| {
            let heads = v.heads_at_time(at);
            if heads.is_empty() {
                return Err(ApiError::NotFound {
                    detail: format!("the visit did not exist yet at {}", at.to_rfc3339()),
                });
            }
            Ok((&v.state_at(&heads)?).into())
        })
    }

    /// What changed between two points in history, field by field.
    pub fn diff(&self, from: Vec<String>, to: Vec<String>) -> ApiResult<Vec<ChangeLine>> {
        let (from, to) = (parse_heads(&from)?, parse_heads(&to)?);
        self.read(|v| {
            let state = v.state()?;
            Ok(describe_lines(&v.diff(&from, &to)?, &state))
        })
    }
}
