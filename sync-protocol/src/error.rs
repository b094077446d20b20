use thiserror::Error;

/// Why a message could not be decoded. The server answers every one of
/// these with a 400 problem response and stores nothing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a kiemtra sync message (bad magic bytes)")]
    BadMagic,
    #[error("unsupported protocol version {found}; this side speaks {supported}")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("message ends inside {0}")]
    Truncated(&'static str),
    #[error("malformed varint in {0}")]
    BadVarint(&'static str),
    #[error("{what} is {len} long; at most {max} allowed")]
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("{0} is not UTF-8")]
    BadUtf8(&'static str),
    #[error("unknown {what} {value}")]
    UnknownValue { what: &'static str, value: u8 },
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    #[error("sequence range {first}..={last} is empty or starts at 0")]
    BadRange { first: u64, last: u64 },
    #[error("a signature is 64 bytes, not {0}")]
    BadSignatureLength(usize),
    #[error("a signature in a response must name its signer")]
    ImpliedSigner,
    #[error("visit {0} leaves its heads to its changes but sends none")]
    ImpliedWithoutChanges(String),
    #[error("visit {0} carries a listing but is not a whole document sent ok")]
    UnexpectedListing(String),
    #[error("the message of {len} bytes would take more than {limit} bytes of memory decoded")]
    TooCostly { len: u64, limit: u64 },
    #[error("visit {0} appears twice in one message")]
    DuplicateVisit(String),
}
