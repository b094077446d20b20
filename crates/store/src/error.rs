use kiemtra_core::VisitId;
use thiserror::Error;

/// Everything the store can refuse. A database error keeps its cause (as
/// [`std::error::Error::source`]) without naming the database library in
/// the public surface; [`Error::class`] says once, for every caller, whose
/// fault an error is.
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
    /// The database failed; `detail` reads the cause out, and `source`
    /// keeps it.
    #[error("database: {detail}")]
    Database {
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
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

/// Whose fault an error is, and so what a server answers and whether a
/// client should try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database failed (or is of a newer schema): the request fails
    /// as a whole (a 500 the client retries); nothing of it is the
    /// sender's fault.
    Server,
    /// Stored data are damaged (a visit's chunks, an index row): a route
    /// answers 500; a sync answers that visit as invalid and goes on with
    /// the others, since every later sync would offer it again.
    Damaged,
    /// No such visit.
    NotFound,
    /// What was asked for or sent is not acceptable: retrying will not help.
    Invalid,
    /// Not allowed.
    Refused,
}

impl Error {
    /// A database failure described by `message`, with no further cause.
    pub fn database(message: impl Into<String>) -> Self {
        Error::Database {
            detail: message.into(),
            source: None,
        }
    }

    /// A database failure with its cause.
    pub fn database_cause(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Database {
            detail: format!("{}: {source}", message.into()),
            source: Some(Box::new(source)),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Database { .. } | Error::Migration(_) | Error::NewerDatabase { .. } => {
                ErrorClass::Server
            }
            Error::Corrupt(_) | Error::Refetch { .. } => ErrorClass::Damaged,
            // A stored document that does not read is damaged data; the
            // other core errors are about what was asked or sent.
            Error::Visit(
                kiemtra_core::Error::NotAVisit(_)
                | kiemtra_core::Error::Corrupt(_)
                | kiemtra_core::Error::Automerge(_)
                | kiemtra_core::Error::NewerSchema { .. },
            ) => ErrorClass::Damaged,
            Error::UnknownVisit(_) => ErrorClass::NotFound,
            Error::Refused(_) => ErrorClass::Refused,
            Error::Visit(_) | Error::VisitExists(_) => ErrorClass::Invalid,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::database_cause("SQLite", e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
