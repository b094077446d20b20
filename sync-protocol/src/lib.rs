#![doc = include_str!("../README.md")]

mod error;
mod message;
mod wire;

pub use error::DecodeError;
pub use message::{
    Cursor, Hash, Listing, MAX_REASONS, MAX_SIGNATURES, MAX_SIGNED, MAX_VISITS, MEDIA_TYPE,
    PROTOCOL_VERSION, SeqRange, Signature, SyncRequest, SyncResponse, VisitOffer, VisitResult,
    VisitStatus,
};
pub use wire::{DECODE_PER_BYTE, DECODE_SLACK, MAX_HEADS, MAX_ID, MAX_MESSAGE, decode_budget};
