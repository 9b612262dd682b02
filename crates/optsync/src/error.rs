//! The one error type of the service. Each variant says what went wrong, so that a caller
//! (the worker's retry policy, an HTTP status, a CLI message) can act on it.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Keap refused, failed, or could not be reached.
    #[error("Keap: {0}")]
    Keap(#[from] keap::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("secrets: {0}")]
    Crypto(String),
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    /// What was asked cannot be done as asked; nothing was stored.
    #[error("{0}")]
    BadInput(String),
    /// Stored state this version cannot read.
    #[error("stored state is unreadable: {0}")]
    CorruptState(String),
    /// No opt-out path works for the app just now (each one ignored, refused or
    /// unavailable): what each path answered, in words.
    #[error("blocked: {0}")]
    NoOptOutPath(String),
    /// An ACME order failed: what the CA answered, or why there was no answer.
    #[error("ACME: {0}")]
    Acme(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
