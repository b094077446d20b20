#![doc = include_str!("../README.md")]

mod error;
mod evidence;
mod registry;
mod schema;
mod store;

pub use error::{Error, ErrorClass, Result};
pub use evidence::{
    EvidenceRefusal, EvidenceStatus, PendingEvidence, PieceAction, PiecePlan, copy_range,
    evidence_hash, plan_piece,
};
pub use registry::{
    ConsoleAccount, ConsoleSession, DeviceRecord, EnrollmentRefusal, FeedEntry, OwnChange, Receipt,
    Receipts, SignatureRecord, covering_newest_first, ranges_from_json, ranges_json, receipts_from,
};
pub use schema::SCHEMA_VERSION;
pub use store::{COMPACT_AFTER, CURSOR_SETTING, Store, Verified, VisitSummary};
