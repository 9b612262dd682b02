//! The ledger of optsync's own writes, the record of fanned-out sources, and the audit log.

use super::TenantId;
use crate::clock::Millis;
use std::collections::HashMap;

use keap::EmailStatus;
use sqlx::Row;

use super::Store;
use super::decision::{AUDIT_SELECT, AuditEntry};
use super::ids::JobId;
use super::model::LedgerOrigin;
use crate::error::Result;
use crate::rules::OwnWrite;

/// A ledger row's `status_written` as the rules see it.
pub(super) fn own_write(written: Option<String>) -> OwnWrite {
    match written.as_deref().map(str::parse::<EmailStatus>) {
        Some(Ok(s)) => OwnWrite::Wrote(s),
        // NULL: the write was under way when the process stopped.
        _ => OwnWrite::Intended,
    }
}

impl Store {
    /// Records that optsync is about to write an address, before it does: if it stops
    /// between the write and the record, the next run still knows the status is its own.
    pub async fn ledger_intent(
        &self,
        tenant_id: TenantId,
        email_key: &str,
        origin: LedgerOrigin,
        source: Option<&str>,
        job_id: JobId,
        now: Millis,
    ) -> Result<i64> {
        let r = sqlx::query(
            "INSERT INTO ledger (tenant_id, email_key, origin, source_email, status_written, job_id, written_at)
             VALUES ($1, $2, $3, $4, NULL, $5, $6) RETURNING id",
        )
        .bind(tenant_id)
        .bind(email_key)
        .bind(origin)
        .bind(source)
        .bind(job_id)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(r.try_get("id")?)
    }

    /// Records the status Keap reported after the write.
    pub async fn ledger_resolve(&self, id: i64, status: EmailStatus, now: Millis) -> Result<()> {
        sqlx::query("UPDATE ledger SET status_written = $1, written_at = $2 WHERE id = $3")
            .bind(status.type_name())
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes back an intent whose write, Keap's answer shows, left the address as it was
    /// (already stopped by someone else, or the write ignored): the status is not optsync's.
    pub async fn ledger_withdraw(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM ledger WHERE id = $1 AND status_written IS NULL")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// What optsync last wrote to each of these addresses (keys: [`keap::EmailAddress::key`]).
    pub async fn own_writes(
        &self,
        tenant_id: TenantId,
        keys: &[String],
    ) -> Result<HashMap<String, OwnWrite>> {
        let mut out = HashMap::new();
        for key in keys {
            let r = sqlx::query(
                "SELECT status_written FROM ledger WHERE tenant_id = $1 AND email_key = $2 ORDER BY id DESC LIMIT 1",
            )
            .bind(tenant_id)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
            if let Some(r) = r {
                out.insert(key.clone(), own_write(r.try_get("status_written")?));
            }
        }
        Ok(out)
    }

    /// Marks a stop source as fanned out to its other holders; false if it already was.
    pub async fn mark_fanned_out(
        &self,
        tenant_id: TenantId,
        email_key: &str,
        now: Millis,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO fanned_out (tenant_id, email_key, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(email_key)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn is_fanned_out(&self, tenant_id: TenantId, email_key: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 AS one FROM fanned_out WHERE tenant_id = $1 AND email_key = $2")
                .bind(tenant_id)
                .bind(email_key)
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// Audit rows, newest first; optionally one tenant's, or one address's.
    pub async fn audit(
        &self,
        tenant_id: Option<TenantId>,
        email: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{AUDIT_SELECT} WHERE ($1 IS NULL OR a.tenant_id = $1) AND ($2 IS NULL OR LOWER(a.email) = LOWER($2))
              ORDER BY a.id DESC LIMIT $3"
        )))
        .bind(tenant_id)
        .bind(email)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
