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
    /// Enrolling a store that is enrolled already.
    #[error("{0} is enrolled already")]
    AlreadyEnrolled(String),
    /// The store's key is kept by the app's key store under this alias.
    #[error("the device key is kept by the app's key store (alias {0}); open the store with it")]
    KeyElsewhere(String),
    /// The key given is not the one the store names.
    #[error("the key given is not the device key the store names ({0})")]
    KeyMismatch(String),
    #[error("sync cancelled")]
    Cancelled,
}
