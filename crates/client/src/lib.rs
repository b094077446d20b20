#![doc = include_str!("../README.md")]

mod client;
mod error;

pub use client::{
    Credentials, EvidenceError, EvidenceReport, PEER, Progress, SyncClient, SyncOptions,
    SyncReport, VisitError, enroll, enroll_with,
};
pub use error::Error;
