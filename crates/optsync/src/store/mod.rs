//! Durable state on SQLite (embedded default) or PostgreSQL (several instances), through one
//! set of queries on sqlx's `Any` driver. The SQL is written to run unchanged on both
//! (`$n` parameters, `RETURNING`, `ON CONFLICT`, partial unique indexes); where the dialects
//! must differ — claiming a job — the statement is chosen by [`Backend`].

mod accounts;
mod backoff;
mod claim;
#[cfg(test)]
mod claim_plan_tests;
mod compliance;
mod console;
mod decision;
mod group_commit;
mod health;
mod honour_times;
mod ids;
mod intake;
mod jobs;
mod keap_connect;
mod listings;
#[cfg(test)]
mod migration_tests;
pub mod model;
mod oauth_tokens;
mod overview;
mod payload;
mod providers;
mod push;
mod push_jobs;
mod records;
mod schema;
mod seen_in;
mod sweeps;
mod tenants;

pub use accounts::{AccountRow, NewInvite, OpenInvite};
pub use claim::ClaimedJob;
pub use compliance::JobAddress;
pub use console::{AdminAction, SessionRow};
pub use decision::{AddressDecision, AuditEntry, JobReport, Write};
pub use group_commit::{Committer, GroupCommit};
pub use health::FailingJobs;
pub use honour_times::HonourTimes;
pub use ids::{EventId, JobId, TenantId};
pub use intake::{Accepted, NewEvent};
pub use jobs::EventRow;
pub use keap_connect::{NewConnectState, TakenConnectState};
pub use listings::{EventSummary, HonouredEvent};
pub use model::{
    AuditAction, CredentialKind, EventKind, EventSource, JobKind, JobState, LedgerOrigin,
    OptOutApi, Outcome, Proof, RETRYABLE, RETRYABLE_WORDS, Requeue, Role, Rule, Subject, SweepKind,
    SweepState, UnknownValue, WritePath,
};
pub use oauth_tokens::{OAuthTokenRow, ReconnectNeeded};
pub use overview::TenantOverview;
pub use payload::{ContactSnapshot, EventPayload, PostedAddresses, ProviderEvent};
pub use providers::{Delivery, DeliveryOutcome, SignatureToken};
pub use push_jobs::{Suppression, SuppressionRow};
pub use schema::{MigrationState, SchemaStatus};
pub use sweeps::{IndexedAddress, PageCommit, SweepJobsLeft, SweepRow};
pub use tenants::{NewTenant, TenantRow};

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::error::{Error, Result};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects without migrating. `sqlite://PATH` (the file is created) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(Error::Config(format!(
                "database URL must start with sqlite:// or postgres:// (got {})",
                redact(url)
            )));
        };
        let pool = match backend {
            Backend::Sqlite => {
                let path = sqlite_path(url).unwrap_or(std::path::Path::new(""));
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                    && !dir.exists()
                {
                    std::fs::create_dir_all(dir)?;
                    // The database holds sealed secrets and token digests: keep it private.
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
                    }
                }
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                // One connection: SQLite has one writer anyway, and a single connection
                // cannot meet SQLITE_BUSY from itself. WAL lets other processes (the CLI)
                // read while the service writes; the busy timeout makes their writes wait.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?
            }
        };
        Ok(Self { pool, backend })
    }

    /// Connects and applies the embedded migrations (refusing a newer schema).
    pub async fn open(url: &str) -> Result<Self> {
        let s = Self::connect(url).await?;
        s.migrate().await?;
        Ok(s)
    }

    /// Connects to a database whose schema must be exactly this binary's; migrates nothing.
    pub async fn open_current(url: &str) -> Result<Self> {
        let s = Self::connect(url).await?;
        s.schema_status().await?.refuse_not_current()?;
        Ok(s)
    }

    /// Applies pending migrations; refuses a schema newer than this binary knows.
    pub async fn migrate(&self) -> Result<()> {
        self.schema_status().await?.refuse_newer()?;
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// A consistent copy of a SQLite database into the new file `dest`, read in one
    /// transaction while the service goes on writing (`optsync backup`).
    pub async fn vacuum_into(&self, dest: &std::path::Path) -> Result<()> {
        let path = dest
            .to_str()
            .ok_or_else(|| Error::BadInput(format!("{} is not UTF-8", dest.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool; every later call fails (used to simulate a database outage).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file a `sqlite:` URL names (`None` for another scheme or an in-memory database).
pub fn sqlite_path(url: &str) -> Option<&std::path::Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::Path::new(path))
}

/// A database URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparseable URL)".into(),
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
