//! A tenant's jobs backed off after failures: how soon the next is retried (so that one of
//! them notices within a short while that Keap answers again), and releasing them all at
//! once when one has gone through. A job that failed keeps its attempt; one deferred,
//! rechecked or blocked gives it back, so "pending with attempts" is "failed before".

use super::Store;
use super::ids::{JobId, TenantId};
use crate::clock::Millis;
use crate::error::Result;

impl Store {
    /// When the tenant's next job that failed before is due, leaving out `except`.
    pub async fn next_retry(&self, tenant: TenantId, except: JobId) -> Result<Option<Millis>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(run_at) FROM jobs
              WHERE tenant_id = $1 AND state = 'pending' AND attempts > 0 AND id <> $2",
        )
        .bind(tenant)
        .bind(except)
        .fetch_one(self.pool())
        .await?)
    }

    /// Every job of the tenant backed off after a failure is due at `now`; how many. Its
    /// credential's pacer still paces them.
    pub async fn release_backoff(&self, tenant: TenantId, now: Millis) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET run_at = $2, updated_at = $2
              WHERE tenant_id = $1 AND state = 'pending' AND attempts > 0 AND run_at > $2",
        )
        .bind(tenant)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}
