//! The numbers an operator watches, per tenant, read from the store so that every instance
//! sharing one database reports the same: jobs by state, subjects stuck blocked or dead, the
//! last Keap post, the last finished sweep and whether Keap refused an OAuth app's grant.
//! `/metrics` turns them into gauges, the console into its overview. One statement reads
//! every tenant's numbers at once: a thousand apps cost one query, not two thousand.

use std::collections::HashMap;

use sqlx::Row;

use super::model::JobState;
use super::tenants::{TENANT_COLUMNS, TenantRow, row as tenant_row};
use super::{Store, TenantId};
use crate::clock::Millis;
use crate::error::Result;

/// One tenant's queue and freshness.
#[derive(Debug, Clone)]
pub struct TenantOverview {
    /// The tenant itself (its client, learned path and pacer are looked up from it).
    pub tenant: TenantRow,
    pub jobs: HashMap<JobState, i64>,
    /// Distinct subjects (contacts or addresses) with a blocked job.
    pub blocked_subjects: i64,
    /// Distinct subjects with a dead job.
    pub dead_subjects: i64,
    /// When the last Keap post arrived (epoch ms).
    pub last_post_at: Option<Millis>,
    /// When the last sweep finished (epoch ms).
    pub last_sweep_at: Option<Millis>,
    /// Keap refused the app's OAuth grant for good: it must be connected again.
    pub reconnect_needed: bool,
}

impl TenantOverview {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    pub fn app(&self) -> &str {
        &self.tenant.app
    }
}

/// Every tenant with its jobs counted by state (one row per tenant and state, a tenant
/// without jobs once with a NULL state), its last Keap post (one probe of
/// `events_tenant_source` each), its sweep and its OAuth row. Jobs are joined per tenant
/// through `jobs_tenant_state` and grouped (tenants' columns depend on their id), rather
/// than joined to an aggregate of every job, which SQLite would scan once per tenant.
fn overview_sql() -> String {
    let columns = TENANT_COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, j.state, COUNT(j.id) AS n, COUNT(DISTINCT j.subject) AS subjects,
            (SELECT MAX(e.received_at) FROM events e
              WHERE e.tenant_id = t.id AND e.source = 'keap_post') AS last_post_at,
            MAX(s.finished_at) AS last_sweep_at, MAX(o.reconnect_reason) AS reconnect_reason
           FROM tenants t
           LEFT JOIN jobs j ON j.tenant_id = t.id
           LEFT JOIN sweeps s ON s.tenant_id = t.id
           LEFT JOIN oauth_tokens o ON o.tenant_id = t.id
          GROUP BY t.id, j.state
          ORDER BY t.app, t.id, j.state"
    )
}

impl Store {
    /// Every tenant's overview, ordered by app, in one query.
    pub async fn overview(&self) -> Result<Vec<TenantOverview>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(overview_sql()))
            .fetch_all(self.pool())
            .await?;
        let mut out: Vec<TenantOverview> = Vec::new();
        for r in &rows {
            let id: TenantId = r.try_get("id")?;
            if out.last().is_none_or(|t| t.tenant.id != id) {
                out.push(TenantOverview {
                    tenant: tenant_row(r)?,
                    jobs: HashMap::new(),
                    blocked_subjects: 0,
                    dead_subjects: 0,
                    last_post_at: r.try_get("last_post_at")?,
                    last_sweep_at: r.try_get("last_sweep_at")?,
                    reconnect_needed: r
                        .try_get::<Option<String>, _>("reconnect_reason")?
                        .is_some(),
                });
            }
            let Some(state) = r.try_get::<Option<JobState>, _>("state")? else {
                continue;
            };
            let Some(t) = out.last_mut() else { continue };
            let subjects: i64 = r.try_get("subjects")?;
            t.jobs.insert(state, r.try_get("n")?);
            match state {
                JobState::Blocked => t.blocked_subjects = subjects,
                JobState::Dead => t.dead_subjects = subjects,
                _ => {}
            }
        }
        Ok(out)
    }
}
