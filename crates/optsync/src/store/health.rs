//! What `optsync doctor` and the console ask of the queue: failing and unfinished jobs, and
//! when each source was last heard from.

use super::Store;
use super::TenantId;
use super::model::{EventSource, JobState};
use crate::clock::Millis;
use crate::error::Result;

/// Jobs that failed and are waiting for their next try (`optsync doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingJobs {
    pub count: i64,
    pub oldest_created_at: Option<Millis>,
    pub last_error: Option<String>,
}

impl Store {
    /// When the tenant's last event from this source arrived.
    pub async fn last_received(
        &self,
        tenant_id: TenantId,
        source: EventSource,
    ) -> Result<Option<Millis>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(received_at) FROM events WHERE tenant_id = $1 AND source = $2",
        )
        .bind(tenant_id)
        .bind(source)
        .fetch_one(self.pool())
        .await?)
    }

    /// A tenant's jobs that have failed and wait to be tried again: how many, since when the
    /// oldest was queued, and the newest error.
    pub async fn failing_jobs(&self, tenant_id: TenantId) -> Result<FailingJobs> {
        let (count, oldest): (i64, Option<Millis>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE tenant_id = $1 AND state = 'pending' AND attempts > 0 AND last_error IS NOT NULL",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?;
        let last_error = sqlx::query_scalar(
            "SELECT last_error FROM jobs WHERE tenant_id = $1 AND state = 'pending' AND attempts > 0 AND last_error IS NOT NULL ORDER BY updated_at DESC, id DESC LIMIT 1",
        )
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(FailingJobs {
            count,
            oldest_created_at: oldest,
            last_error,
        })
    }

    /// Jobs waiting (blocked ones too) or under way.
    pub async fn unfinished_jobs(&self) -> Result<i64> {
        Ok(self
            .job_counts()
            .await?
            .iter()
            .filter(|(s, _)| matches!(s, JobState::Pending | JobState::Running | JobState::Blocked))
            .map(|(_, n)| n)
            .sum())
    }
}
