#![doc = include_str!("../README.md")]

mod accept;
mod error;
mod fixture;
mod heads;
pub mod hex;
mod history;
mod ids;
mod model;
mod pipeline;
mod session;
mod state;
mod tally;
mod template;
pub mod text;
mod visit;

pub use accept::{
    Accepted, MAX_CLOCK_ENTRIES, MAX_FINDINGS, MAX_OPS_PER_CHANGE, MAX_OPS_PER_VISIT, Refusal,
    RefusalKind, Roles, op_budget,
};
pub use automerge::{ActorId, Change, ChangeHash};
pub use error::{Error, Result};
pub use fixture::{
    AttendanceFixture, CAMPAIGN_FORMAT, CampaignFixture, CampaignInfo, StaffFixture, UnitFixture,
};
pub use heads::Heads;
pub use history::{DomainChange, HistoryEntry, diff_states, format_time, vietnam_time};
pub use ids::{
    CampaignId, CheckId, ChoiceId, DeviceId, EvidenceHash, FindingId, StaffId, TeamId, TemplateId,
    UnitCode, UserId, VisitId,
};
pub use model::{
    AbsenceReason, Attendance, AttendanceMark, CheckEntry, CheckResult, CheckValue, ConductEntry,
    ConductKind, ConductResult, FindingField, Lang, NewFinding, Role, Severity, StaffCategory,
    StaffMember, StatusEntry, Unit, UnitKind, VisitMeta, VisitStatus,
};
pub use pipeline::{Loads, load_pipelined, map_pipelined};
pub use session::{Editor, Session, Stamp, Stamped};
pub use state::{
    Approval, Aspect, Conflict, FieldRef, FieldValue, FindingState, FindingValue, Observation,
    SCHEMA_VERSION, Slot, VisitState,
};
pub use tally::{Percent, Tally, format_count, format_int};
pub use template::{
    CheckDef, CheckKind, ChoiceOption, Label, MAX_CHOICES, TEMPLATE_FORMAT, Template,
};
pub use text::{MAX_CHECK_TEXT, MAX_FINDING_TEXT, MAX_NAME, MAX_NARRATIVE, MAX_NOTE};
pub use visit::{
    ChangeIndex, Implied, MAX_STAFF, NewVisit, SentChange, Visit, implied_by, sent_changes,
    seq_ranges_of,
};
