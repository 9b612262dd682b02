//! Push jobs: one address for one sending provider's own do-not-send lists. They are queued
//! in the transaction that records a person's opt-out (a completed job's report) or that
//! blocks a job no Keap path could do, one per push setting of the app and address; a push
//! that the provider's read confirmed is recorded in `suppressions`, which the audit, the
//! report and echo recognition read.

use keap::EmailAddress;
use sqlx::Row;

use super::Store;
use super::ids::{JobId, TenantId};
use super::model::{JobKind, Subject};
use crate::clock::Millis;
use crate::error::Result;
use crate::providers::Provider;

/// What a push wrote: where, and whether the provider's read showed it everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub provider: Provider,
    pub address: EmailAddress,
    /// The push setting's scope, in words (`regions us-east-1; reason BOUNCE`, …).
    pub scope: String,
    /// False only for a provider with no read call (Mailjet, Brevo).
    pub verified: bool,
}

/// A recorded suppression, for the audit, the report and the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionRow {
    pub tenant_id: TenantId,
    /// The address's key (lower case).
    pub email: String,
    pub provider: Provider,
    pub scope: String,
    pub verified: bool,
    pub job_id: JobId,
    /// The job whose opt-out asked for it.
    pub origin_job: Option<JobId>,
    /// When the opt-out that asked for it was received.
    pub requested_at: Millis,
    /// When the provider's read showed it.
    pub suppressed_at: Millis,
}

/// Queues a push of each address to each of the tenant's push settings, inside the caller's
/// transaction, joining a pending push for the same address and provider. An address already
/// recorded as suppressed with the setting's current scope is not pushed again. How many
/// jobs were queued or joined.
pub(super) async fn queue_pushes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    origin: JobId,
    addresses: &[EmailAddress],
    requested_at: Millis,
    now: Millis,
) -> Result<usize, sqlx::Error> {
    let tenant_id: Option<TenantId> =
        sqlx::query_scalar("SELECT tenant_id FROM jobs WHERE id = $1")
            .bind(origin)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(tenant_id) = tenant_id else {
        return Ok(0);
    };
    if addresses.is_empty() {
        return Ok(0);
    }
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT provider, scope FROM push_settings WHERE tenant_id = $1 ORDER BY provider",
    )
    .bind(tenant_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut queued = 0;
    for (name, scope) in settings {
        let Some(provider) = Provider::from_name(&name) else {
            continue;
        };
        for address in addresses {
            if suppressed_with(tx, tenant_id, provider, address, Some(&scope)).await? {
                continue;
            }
            let subject = Subject::Push {
                provider,
                address: address.clone(),
            };
            join_pending_push(tx, (tenant_id, origin), &subject, requested_at, now).await?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Whether the address is recorded as suppressed at the provider (with `scope`, if given).
pub(super) async fn suppressed_with(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: TenantId,
    provider: Provider,
    address: &EmailAddress,
    scope: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM suppressions
          WHERE tenant_id = $1 AND email_key = $2 AND provider = $3 AND ($4 IS NULL OR scope = $4)",
    )
    .bind(tenant_id)
    .bind(address.key())
    .bind(provider.name())
    .bind(scope)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

/// The subject's pending push, created if there is none; it serves the earliest request.
async fn join_pending_push(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    (tenant_id, origin): (TenantId, JobId),
    subject: &Subject,
    requested_at: Millis,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO jobs (tenant_id, subject, kind, state, attempts, run_at, requested_at, origin_job_id, created_at, updated_at)
         VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6, $4, $4)
         ON CONFLICT (tenant_id, subject) WHERE state = 'pending'
         DO UPDATE SET updated_at = excluded.updated_at,
           requested_at = CASE WHEN excluded.requested_at < jobs.requested_at
                               THEN excluded.requested_at ELSE jobs.requested_at END",
    )
    .bind(tenant_id)
    .bind(subject)
    .bind(JobKind::Push)
    .bind(now)
    .bind(requested_at)
    .bind(origin)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Ends a push job as done and records what it wrote, in one transaction. False if the
    /// job was no longer this worker's (its lease ran out): then nothing is written.
    pub async fn complete_push(
        &self,
        job_id: JobId,
        lease_until_seen: Millis,
        now: Millis,
        done: &Suppression,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = $1
             WHERE id = $2 AND state = 'running' AND lease_until = $3
             RETURNING tenant_id, origin_job_id, COALESCE(requested_at, created_at) AS requested_at",
        )
        .bind(now)
        .bind(job_id)
        .bind(lease_until_seen)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let tenant_id: TenantId = row.try_get("tenant_id")?;
        let requested_at: Millis = row.try_get("requested_at")?;
        let origin: Option<JobId> = row.try_get("origin_job_id")?;
        sqlx::query(
            "INSERT INTO suppressions (tenant_id, email_key, provider, scope, verified, job_id, origin_job_id, requested_at, suppressed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant_id)
        .bind(done.address.key())
        .bind(done.provider.name())
        .bind(&done.scope)
        .bind(i64::from(done.verified))
        .bind(job_id)
        .bind(origin)
        .bind(requested_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The suppressions made since `since` (epoch ms), of one app or all, with the app's name:
    /// what the compliance report shows beside each opt-out of a period starting then.
    pub async fn suppressions_since(
        &self,
        app: Option<&str>,
        since: Millis,
    ) -> Result<Vec<(String, SuppressionRow)>> {
        let sql = format!(
            "SELECT t.app, {} FROM suppressions s JOIN tenants t ON t.id = s.tenant_id
              WHERE s.suppressed_at >= $1 AND t.app = COALESCE($2, t.app)
              ORDER BY s.suppressed_at, s.id",
            prefixed("s.")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .bind(app)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("app")?, suppression_row(r)?)))
            .collect()
    }

    /// No push of the tenant to `provider` runs before `at`: its credential has no room (the
    /// pace, or the provider's 429). Its due pushes wait without a worker claiming each in
    /// turn to find that out.
    pub async fn defer_pushes(
        &self,
        tenant_id: TenantId,
        provider: Provider,
        at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET run_at = $3
              WHERE tenant_id = $1 AND kind = 'push' AND state = 'pending' AND subject LIKE $2
                AND run_at < $3",
        )
        .bind(tenant_id)
        .bind(format!("push:{}:%", provider.name()))
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Jobs of `kind` not finished yet (pending, running or blocked).
    pub async fn unfinished_of(&self, kind: JobKind) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state IN ('pending', 'running', 'blocked')",
        )
        .bind(kind)
        .fetch_one(self.pool())
        .await?)
    }

    /// The latest suppressions, of one tenant or all, of one address or all, newest first,
    /// with the app's name: what `optsync audit` and the console's address page show.
    pub async fn suppressions(
        &self,
        tenant_id: Option<TenantId>,
        email: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, SuppressionRow)>> {
        let sql = format!(
            "SELECT t.app, {} FROM suppressions s JOIN tenants t ON t.id = s.tenant_id
              WHERE s.tenant_id = COALESCE($1, s.tenant_id) AND s.email_key = COALESCE($2, s.email_key)
              ORDER BY s.suppressed_at DESC, s.id DESC LIMIT $3",
            prefixed("s.")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(email.map(str::to_lowercase))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("app")?, suppression_row(r)?)))
            .collect()
    }
}

/// The columns [`suppression_row`] reads.
const SUPPRESSION_COLUMNS: &str = "tenant_id, email_key, provider, scope, verified, job_id, origin_job_id, requested_at, suppressed_at";

/// [`SUPPRESSION_COLUMNS`] of a table alias (`s.tenant_id, s.email_key, …`).
fn prefixed(alias: &str) -> String {
    SUPPRESSION_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn suppression_row(r: &sqlx::any::AnyRow) -> Result<SuppressionRow> {
    let name: String = r.try_get("provider")?;
    let provider = Provider::from_name(&name).ok_or_else(|| {
        crate::Error::CorruptState(format!("unknown provider {name:?} in suppressions"))
    })?;
    Ok(SuppressionRow {
        tenant_id: r.try_get("tenant_id")?,
        email: r.try_get("email_key")?,
        provider,
        scope: r.try_get("scope")?,
        verified: r.try_get::<i64, _>("verified")? != 0,
        job_id: r.try_get("job_id")?,
        origin_job: r.try_get("origin_job_id")?,
        requested_at: r.try_get("requested_at")?,
        suppressed_at: r.try_get("suppressed_at")?,
    })
}
