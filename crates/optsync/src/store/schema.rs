//! Which migrations a database has and which this binary knows. Only `serve` and `migrate`
//! apply migrations; every other command needs the schema exactly current, so that a newer
//! CLI never migrates a database under an older running server, and no binary works on a
//! schema newer than it knows (a downgrade).

use sqlx::Row as _;

use super::{Backend, Store};
use crate::error::{Error, Result};

/// One migration this binary carries, and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// The database's schema against this binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Every migration this binary knows, in order.
    pub known: Vec<MigrationState>,
    /// Versions applied to the database that this binary does not know (a newer binary's).
    pub unknown: Vec<i64>,
}

impl SchemaStatus {
    /// The newest version applied, 0 for an empty database.
    pub fn database_version(&self) -> i64 {
        let known = self.known.iter().filter(|m| m.applied).map(|m| m.version);
        known.chain(self.unknown.iter().copied()).max().unwrap_or(0)
    }

    /// The newest version this binary knows.
    pub fn binary_version(&self) -> i64 {
        self.known.iter().map(|m| m.version).max().unwrap_or(0)
    }

    pub fn pending(&self) -> usize {
        self.known.iter().filter(|m| !m.applied).count()
    }

    /// Refuses a schema newer than this binary (a downgrade), naming both versions.
    pub fn refuse_newer(&self) -> Result<()> {
        if self.unknown.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "the database schema is at version {}, newer than this binary knows (version {}): \
             it was migrated by a newer optsync. Run that version (or newer); an older binary \
             cannot work on it",
            self.database_version(),
            self.binary_version()
        )))
    }

    /// Refuses anything but the exact schema this binary knows.
    pub fn refuse_not_current(&self) -> Result<()> {
        self.refuse_newer()?;
        if self.pending() == 0 {
            return Ok(());
        }
        Err(Error::Config(format!(
            "the database schema is at version {} and this binary needs version {} ({} \
             migration(s) pending): run optsync migrate (stop or upgrade the running service \
             first)",
            self.database_version(),
            self.binary_version(),
            self.pending()
        )))
    }
}

impl Store {
    /// The schema's state; reads only.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        let applied = self.applied_versions().await?;
        let known: Vec<MigrationState> = self
            .migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| MigrationState {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect();
        let unknown = applied
            .into_iter()
            .filter(|v| !known.iter().any(|m| m.version == *v))
            .collect();
        Ok(SchemaStatus { known, unknown })
    }

    /// Versions recorded as applied; none when the migrations table does not exist yet.
    async fn applied_versions(&self) -> Result<Vec<i64>> {
        let exists = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let n: i64 = sqlx::query(exists)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let rows =
            sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(Error::from))
            .collect()
    }
}
