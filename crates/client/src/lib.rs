#![doc = include_str!("../README.md")]

mod bundle;
mod client;
mod error;

pub use bundle::{
    BUNDLE_MAGIC, BUNDLE_VERSION, Bundle, BundleError, BundleReport, KnownTeam, MAX_BUNDLE,
    TeamDevice, read_bundle, team_devices, write_bundle,
};
pub use client::{
    Credentials, EvidenceError, EvidenceReport, PEER, Progress, SyncClient, SyncOptions,
    SyncReport, VisitError, enroll, enroll_with,
};
pub use error::Error;
