#![doc = include_str!("../README.md")]

mod client;
mod error;

pub use client::{
    Credentials, PEER, Progress, SyncClient, SyncOptions, SyncReport, VisitError, enroll,
};
pub use error::Error;
