use kiemtra_core::VisitId;
use thiserror::Error;

/// Everything the store can refuse. Database errors are carried as text so
/// that rusqlite never shows through the public surface.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Visit(#[from] kiemtra_core::Error),
    #[error("unknown visit {0}")]
    UnknownVisit(VisitId),
    #[error("visit {0} already exists in this store")]
    VisitExists(VisitId),
    #[error(
        "the store at {path} was written by a newer version of kiemtra (schema {found}, this build knows {supported})"
    )]
    NewerDatabase {
        path: String,
        found: usize,
        supported: usize,
    },
    #[error("database: {0}")]
    Database(String),
    #[error("database migration: {0}")]
    Migration(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A visit stored as received from the server, not yet loaded, did not
    /// load or is not what it claimed to be. It has been removed (nothing
    /// of it was edited here) and the sync cursor reset, so the next sync
    /// downloads it again.
    #[error(
        "visit {id} as received from the server is damaged ({reason}); it was removed and will be downloaded again at the next sync"
    )]
    Refetch { id: VisitId, reason: String },
    #[error("{0}")]
    Refused(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
