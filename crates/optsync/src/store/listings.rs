//! Listings of events and jobs: `optsync events`, the console, the report, the job gauges.

use super::Store;
use super::TenantId;
use super::ids::{EventId, JobId};
use super::model::{EventKind, EventSource, JobState};
use crate::clock::Millis;
use crate::error::Result;

/// The select every [`EventSummary`] listing starts from; each adds its WHERE and ORDER.
pub(super) const EVENT_SUMMARY: &str =
    "SELECT e.id, t.app, e.source, e.kind, e.contact_id, e.email, e.received_at, e.honoured_at,
        e.job_id, j.state AS job_state, j.attempts, j.last_error
   FROM events e
   JOIN tenants t ON t.id = e.tenant_id
   LEFT JOIN jobs j ON j.id = e.job_id";

/// An event with its job's state, for `optsync events`, the console and the report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventSummary {
    pub id: EventId,
    pub app: String,
    pub source: EventSource,
    pub kind: EventKind,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub received_at: Millis,
    pub honoured_at: Option<Millis>,
    pub job_id: Option<JobId>,
    pub job_state: Option<JobState>,
    pub attempts: Option<i64>,
    pub last_error: Option<String>,
}

/// An event and when it was honoured.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HonouredEvent {
    pub source: EventSource,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub received_at: Millis,
    pub honoured_at: Millis,
}

impl Store {
    /// Events, newest first, with their job's state; filtered by tenant and job state.
    pub async fn events(
        &self,
        tenant_id: Option<TenantId>,
        state: Option<JobState>,
        limit: i64,
    ) -> Result<Vec<EventSummary>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{EVENT_SUMMARY} WHERE ($1 IS NULL OR e.tenant_id = $1) AND ($2 IS NULL OR j.state = $2)
              ORDER BY e.id DESC LIMIT $3"
        )))
        .bind(tenant_id)
        .bind(state)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every honoured event, oldest first.
    pub async fn honoured_events(&self) -> Result<Vec<HonouredEvent>> {
        Ok(sqlx::query_as(
            "SELECT source, contact_id, email, received_at, honoured_at FROM events WHERE honoured_at IS NOT NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// How many jobs are in each state.
    pub async fn job_counts(&self) -> Result<Vec<(JobState, i64)>> {
        Ok(
            sqlx::query_as("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// How many of a tenant's jobs are in each state.
    pub async fn tenant_job_counts(&self, tenant_id: TenantId) -> Result<Vec<(JobState, i64)>> {
        Ok(sqlx::query_as(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE tenant_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?)
    }
}
