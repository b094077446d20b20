#![doc = include_str!("../README.md")]

mod bundle;
mod client;
mod device;
mod error;

pub use bundle::{
    BUNDLE_MAGIC, BUNDLE_VERSION, Bundle, BundleError, BundleReport, KnownTeam, MAX_BUNDLE,
    TeamDevice, read_bundle, team_devices, write_bundle,
};
pub use client::{
    Applied, CANCEL_POLL, Credentials, DeviceEngine, EvidenceError, EvidenceReport, PEER, Progress,
    Round, SyncClient, SyncOptions, SyncReport, VisitError, enroll, enroll_with, enroll_with_key,
    new_device_key, public_key_of,
};
pub use device::{Device, Enrollment, KEY_ALIAS_SETTING, key_alias, session_for};
pub use error::Error;
