use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The server could not be reached or kept failing after every retry.
    #[error("network: {0}")]
    Network(String),
    /// The server refused the request (a 4xx answer); retrying will not help.
    #[error("server refused ({status} {kind}): {detail}")]
    Refused {
        status: u16,
        kind: String,
        detail: String,
    },
    #[error("the server's answer could not be decoded: {0}")]
    Decode(String),
    #[error(transparent)]
    Store(#[from] kiemtra_store::Error),
    #[error("this device is not enrolled (no credentials in its store)")]
    NotEnrolled,
    #[error("sync cancelled")]
    Cancelled,
}
