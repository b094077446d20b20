//! The one error type of the core crate.

use thiserror::Error;

/// Everything the visit document can refuse. Every variant leaves the
/// document unchanged: validation happens before a change is committed and a
/// failed transaction is rolled back.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is too long: {len} characters, at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid {field} {value:?}; expected one of: {expected}")]
    InvalidValue {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown staff member {0}")]
    UnknownStaff(String),
    #[error("staff member {0} already exists in this visit")]
    DuplicateStaff(String),
    #[error("unknown office check {0} (not in this visit's template)")]
    UnknownCheck(String),
    #[error("unknown finding {0}")]
    UnknownFinding(String),
    #[error("an absence reason is only allowed on an absent record, not on {0}")]
    ReasonNotAllowed(&'static str),
    #[error("an absent record needs a reason")]
    ReasonRequired,
    #[error("absence reason \"other\" needs a note saying what it was")]
    NoteRequired,
    #[error("unsupported template format {found}; this build reads format {supported}")]
    UnknownTemplateFormat { found: u32, supported: u32 },
    #[error("template {id} has no checks")]
    EmptyTemplate { id: String },
    #[error("template {id} defines check {check} twice")]
    DuplicateCheck { id: String, check: String },
    #[error("template {id}: check {check} {reason}")]
    InvalidCheckKind {
        id: String,
        check: String,
        reason: String,
    },
    #[error("office check {check} takes {expected}, not {found}")]
    CheckValueKind {
        check: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("office check {check} needs {expected} unless it is not applicable")]
    CheckValueRequired {
        check: String,
        expected: &'static str,
    },
    #[error("office check {check} is recorded as not applicable, so it takes no value")]
    CheckValueNotApplicable { check: String },
    #[error("office check {check}: {value} is out of its range ({range})")]
    CheckNumberOutOfRange {
        check: String,
        value: i64,
        range: String,
    },
    #[error("office check {check} has no option {option:?}")]
    UnknownChoice { check: String, option: String },
    #[error("the template is not valid JSON: {0}")]
    TemplateJson(String),
    #[error("the roster has {0} staff; at most {1} are allowed in one visit")]
    RosterTooLarge(usize, usize),
    #[error("cannot move a visit from {from} to {to}")]
    InvalidTransition {
        from: &'static str,
        to: &'static str,
    },
    #[error("only a supervisor may {0}")]
    SupervisorOnly(&'static str),
    #[error("{0}s never write visit contents")]
    ReadOnlyRole(&'static str),
    #[error("{0} unresolved conflict(s) must be resolved before approval")]
    UnresolvedConflicts(usize),
    #[error("no conflict on {0}")]
    NoConflict(String),
    #[error("conflict on {field} has {count} candidates; {index} is out of range")]
    NoSuchCandidate {
        field: String,
        count: usize,
        index: usize,
    },
    #[error("narrative edit out of range: position {pos} + delete {del} > length {len}")]
    NarrativeRange { pos: usize, del: usize, len: usize },
    #[error(
        "this visit was written with document schema {found}; this build reads up to {supported}. Update the app."
    )]
    NewerSchema { found: u64, supported: u64 },
    #[error("changes arrived without what they depend on ({0}); a fuller exchange is needed")]
    MissingChanges(String),
    #[error("not a kiemtra visit document: {0}")]
    NotAVisit(String),
    #[error("the visit document is damaged: {0}")]
    Corrupt(String),
    #[error("unknown point in history: {0}")]
    UnknownHeads(String),
    #[error("automerge: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Automerge(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
