#![doc = include_str!("../README.md")]

mod client;
mod error;

pub use client::{
    Credentials, EvidenceError, EvidenceReport, PEER, Progress, SyncClient, SyncOptions,
    SyncReport, VisitError, enroll,
};
pub use error::Error;
