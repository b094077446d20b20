#![doc = include_str!("../README.md")]

mod error;
mod evidence;
mod registry;
mod schema;
mod store;

pub use error::{Error, Result};
pub use evidence::{EvidenceRefusal, EvidenceStatus, PendingEvidence, evidence_hash};
pub use registry::{
    DeviceRecord, EnrollmentRefusal, FeedEntry, OwnChange, Receipt, Receipts, SignatureRecord,
};
pub use schema::SCHEMA_VERSION;
pub use store::{COMPACT_AFTER, CURSOR_SETTING, Store, Verified, VisitSummary};
