//! What the compliance report reads: the opt-out events of a period with their job's state,
//! and the audit rows of their jobs (one per address).

use super::Store;
use super::model::{AuditAction, EventKind, EventSource, JobState};
use crate::error::Result;

/// One opt-out event as stored, with its tenant and its job's state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OptOutRow {
    pub id: i64,
    pub app: String,
    pub source: EventSource,
    pub kind: EventKind,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub received_at: i64,
    pub honoured_at: Option<i64>,
    pub job_id: Option<i64>,
    pub job_state: Option<JobState>,
    pub last_error: Option<String>,
}

/// One address a job acted on (or looked at).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobAddress {
    pub job_id: i64,
    pub email: String,
    pub action: AuditAction,
}

/// `kind IN (…)` for the given kinds (their fixed names, never input).
fn kinds_sql(kinds: &[EventKind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
    names.join(", ")
}

impl Store {
    /// Events of `kinds` received in `[since, until)`, of one app or all, oldest first.
    pub async fn opt_out_rows(
        &self,
        app: Option<&str>,
        kinds: &[EventKind],
        since: i64,
        until: i64,
    ) -> Result<Vec<OptOutRow>> {
        let sql = format!(
            "SELECT e.id, t.app, e.source, e.kind, e.contact_id, e.email, e.received_at, e.honoured_at,
                    e.job_id, j.state AS job_state, j.last_error
               FROM events e JOIN tenants t ON t.id = e.tenant_id
               LEFT JOIN jobs j ON j.id = e.job_id
              WHERE e.received_at >= $1 AND e.received_at < $2 AND t.app = COALESCE($3, t.app)
                AND e.kind IN ({})
              ORDER BY e.received_at, e.id",
            kinds_sql(kinds)
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .bind(until)
            .bind(app)
            .fetch_all(self.pool())
            .await?)
    }

    /// The audit rows (address and action) of the jobs of those events.
    pub async fn opt_out_addresses(
        &self,
        app: Option<&str>,
        kinds: &[EventKind],
        since: i64,
        until: i64,
    ) -> Result<Vec<JobAddress>> {
        let sql = format!(
            "SELECT a.job_id, a.email, a.action FROM audit a
              WHERE a.email <> '' AND a.job_id IN (
                SELECT e.job_id FROM events e JOIN tenants t ON t.id = e.tenant_id
                 WHERE e.received_at >= $1 AND e.received_at < $2 AND t.app = COALESCE($3, t.app)
                   AND e.kind IN ({}) AND e.job_id IS NOT NULL)
              ORDER BY a.job_id, a.id",
            kinds_sql(kinds)
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .bind(until)
            .bind(app)
            .fetch_all(self.pool())
            .await?)
    }
}
