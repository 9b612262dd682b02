//! What the compliance report reads: the opt-out events of a period with their job's state,
//! and the audit rows of their jobs (one per address).

use super::Store;
use super::ids::JobId;
use super::listings::{EVENT_SUMMARY, EventSummary};
use super::model::{AuditAction, EventKind};
use crate::clock::Millis;
use crate::error::Result;

/// One address a job acted on (or looked at).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobAddress {
    pub job_id: JobId,
    pub email: String,
    pub action: AuditAction,
}

/// The events of `kinds` received in `[$1, $2)`, of the app `$3` or (NULL) every app.
fn period_filter(kinds: &[EventKind]) -> String {
    // The kinds' fixed names, never input.
    let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
    format!(
        "e.received_at >= $1 AND e.received_at < $2 AND t.app = COALESCE($3, t.app) AND e.kind IN ({})",
        names.join(", ")
    )
}

impl Store {
    /// Events of `kinds` received in `[since, until)`, of one app or all, oldest first.
    pub async fn opt_out_rows(
        &self,
        app: Option<&str>,
        kinds: &[EventKind],
        since: Millis,
        until: Millis,
    ) -> Result<Vec<EventSummary>> {
        let sql = format!(
            "{EVENT_SUMMARY} WHERE {} ORDER BY e.received_at, e.id",
            period_filter(kinds)
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
        since: Millis,
        until: Millis,
    ) -> Result<Vec<JobAddress>> {
        let sql = format!(
            "SELECT a.job_id, a.email, a.action FROM audit a
              WHERE a.email <> '' AND a.job_id IN (
                SELECT e.job_id FROM events e JOIN tenants t ON t.id = e.tenant_id
                 WHERE {} AND e.job_id IS NOT NULL)
              ORDER BY a.job_id, a.id",
            period_filter(kinds)
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .bind(until)
            .bind(app)
            .fetch_all(self.pool())
            .await?)
    }
}
