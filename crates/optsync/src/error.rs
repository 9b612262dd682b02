//! The one error type of the service.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("Keap: {0}")]
    Keap(#[from] keap::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("secrets: {0}")]
    Crypto(String),
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    #[error("{0}")]
    Invalid(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
