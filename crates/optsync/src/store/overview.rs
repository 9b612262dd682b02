//! The numbers an operator watches, per tenant, read from the store so that every instance
//! sharing one database reports the same: jobs by state, subjects stuck blocked or dead, the
//! last Keap post and the last finished sweep. `/metrics` turns them into gauges.

use super::TenantId;
use crate::clock::Millis;
use std::collections::HashMap;

use super::Store;
use super::model::JobState;
use crate::error::Result;

/// One tenant's queue and freshness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantOverview {
    pub tenant_id: TenantId,
    pub app: String,
    pub jobs: HashMap<JobState, i64>,
    /// Distinct subjects (contacts or addresses) with a blocked job.
    pub blocked_subjects: i64,
    /// Distinct subjects with a dead job.
    pub dead_subjects: i64,
    /// When the last Keap post arrived (epoch ms).
    pub last_post_at: Option<Millis>,
    /// When the last sweep finished (epoch ms).
    pub last_sweep_at: Option<Millis>,
}

impl Store {
    /// Every tenant's overview, ordered by app.
    pub async fn overview(&self) -> Result<Vec<TenantOverview>> {
        let tenants: Vec<(TenantId, String)> =
            sqlx::query_as("SELECT id, app FROM tenants ORDER BY app")
                .fetch_all(self.pool())
                .await?;
        let mut out: Vec<TenantOverview> = tenants
            .into_iter()
            .map(|(tenant_id, app)| TenantOverview {
                tenant_id,
                app,
                ..TenantOverview::default()
            })
            .collect();
        let by_id: HashMap<TenantId, usize> = out
            .iter()
            .enumerate()
            .map(|(i, t)| (t.tenant_id, i))
            .collect();
        let jobs: Vec<(TenantId, JobState, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, state, COUNT(*), COUNT(DISTINCT subject) FROM jobs GROUP BY tenant_id, state",
        )
        .fetch_all(self.pool())
        .await?;
        for (tenant, state, n, subjects) in jobs {
            let Some(t) = by_id.get(&tenant).map(|&i| &mut out[i]) else {
                continue;
            };
            t.jobs.insert(state, n);
            match state {
                JobState::Blocked => t.blocked_subjects = subjects,
                JobState::Dead => t.dead_subjects = subjects,
                _ => {}
            }
        }
        for t in &mut out {
            t.last_post_at = self
                .last_received(t.tenant_id, super::EventSource::KeapPost)
                .await?;
            t.last_sweep_at = self.sweep(t.tenant_id).await?.and_then(|s| s.finished_at);
        }
        Ok(out)
    }
}
