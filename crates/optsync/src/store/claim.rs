//! The claim: the next job due, taking tenants in turns. A job is not claimed while another
//! job for its subject runs, so one contact is worked on by one worker at a time; a crashed
//! worker's job is taken over when its lease runs out.

use super::TenantId;
use crate::clock::Millis;
use sqlx::Row;

use super::ids::JobId;
use super::model::Subject;
use super::{Backend, Store};
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: JobId,
    pub tenant_id: TenantId,
    pub subject: Subject,
    /// Including this run.
    pub attempts: i64,
    /// The lease this claim holds (epoch ms): completing checks it is still ours.
    pub lease_until: Millis,
    /// Since when no opt-out path could do this job, if it was blocked.
    pub blocked_since: Option<Millis>,
    /// When the job was first queued: it is buried only after a horizon counted from here.
    pub created_at: Millis,
}

/// A job is due when its time came, or when it runs but its worker's lease ran out: two
/// ranges of `jobs_ready` (state, run_at), so the claim reads the due and the running jobs,
/// never the done ones.
macro_rules! due {
    ($now:literal) => {
        concat!(
            "((j.state IN ('pending', 'blocked') AND j.run_at <= ",
            $now,
            ") OR (j.state = 'running' AND j.lease_until <= ",
            $now,
            "))"
        )
    };
}

/// No other worker holds the job's subject (one job per subject at a time). A scalar
/// subquery, one probe of `jobs_subject` per due job: PostgreSQL would turn `NOT EXISTS`
/// into an anti-join, and with statistics taken before a burst it joins every due job
/// against every running one.
macro_rules! subject_free {
    ($now:literal) => {
        concat!(
            "(SELECT 1 FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.subject = j.subject
                AND r.id <> j.id AND r.state = 'running' AND r.lease_until > ",
            $now,
            " LIMIT 1) IS NULL"
        )
    };
}

/// The claim across tenants: of the due jobs whose subject no other worker holds, the one of
/// the tenant served longest ago that is not paced (`paced_until`) and holds fewer than `$3`
/// running jobs; within a tenant an opt-out in Keap before a push to a sending provider (the
/// push is the second line, Keap the record), then the oldest. It reads the due jobs and
/// looks their tenant up by key, so its cost follows the due jobs, not the tenants: the
/// tenant is read through scalar subqueries rather than a join, which would let PostgreSQL's
/// planner walk every tenant in turn order instead. `$lock` is where the dialects differ.
macro_rules! claim_next_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2
 WHERE id = (
   SELECT j.id FROM jobs j
    WHERE ",
            due!("$2"),
            "
      AND (SELECT t.paced_until FROM tenants t WHERE t.id = j.tenant_id) <= $2
      AND ",
            subject_free!("$2"),
            "
      AND (SELECT COUNT(*) FROM jobs c WHERE c.tenant_id = j.tenant_id AND c.state = 'running'
             AND c.lease_until > $2) < $3
    ORDER BY (SELECT t.claim_turn FROM tenants t WHERE t.id = j.tenant_id), j.tenant_id,
             j.kind = 'push', j.run_at, j.id LIMIT 1",
            $lock,
            ")
 RETURNING id, tenant_id, subject, attempts, blocked_since, created_at"
        )
    };
}

/// The claim within one tenant (`$3`): as [`claim_next_sql`], for `optsync reconcile APP`.
macro_rules! claim_in_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2
 WHERE id = (
   SELECT j.id FROM jobs j
    WHERE j.tenant_id = $3 AND ",
            due!("$2"),
            "
      AND ",
            subject_free!("$2"),
            "
    ORDER BY j.kind = 'push', j.run_at, j.id LIMIT 1",
            $lock,
            ")
 RETURNING id, tenant_id, subject, attempts, blocked_since, created_at"
        )
    };
}

pub(super) fn claim_next_sql(backend: Backend) -> &'static str {
    match backend {
        // One writer: the single statement is already atomic.
        Backend::Sqlite => claim_next_sql!(""),
        // Skip jobs another instance is claiming at this moment.
        Backend::Postgres => claim_next_sql!(" FOR UPDATE SKIP LOCKED"),
    }
}

fn claim_in_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => claim_in_sql!(""),
        Backend::Postgres => claim_in_sql!(" FOR UPDATE SKIP LOCKED"),
    }
}

/// The claimed tenant's turn moves to the back of the line.
pub(super) const NEXT_TURN: &str = "UPDATE tenants SET claim_turn = (SELECT COALESCE(MAX(claim_turn), 0) + 1 FROM tenants) WHERE id = $1";

impl Store {
    /// Claims the next job, taking tenants in turns: of the tenants that have a job due, are
    /// not paced and hold fewer than `per_tenant` running jobs, the one served longest ago.
    /// Its turn moves to the back of the line in the same transaction.
    pub async fn claim(
        &self,
        now: Millis,
        lease_ms: i64,
        per_tenant: i64,
    ) -> Result<Option<ClaimedJob>> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(claim_next_sql(self.backend()))
            .bind(now + lease_ms)
            .bind(now)
            .bind(per_tenant)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(r) = r else {
            return Ok(None);
        };
        let job = claimed(&r, now + lease_ms)?;
        sqlx::query(NEXT_TURN)
            .bind(job.tenant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    /// Claims the next job due of one tenant alone (`optsync reconcile APP` runs that app's
    /// jobs and no other's), unless its Keap budget has no room before `paced_until`.
    pub async fn claim_tenant(
        &self,
        tenant: TenantId,
        now: Millis,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>> {
        let paced_until: Option<Millis> =
            sqlx::query_scalar("SELECT paced_until FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_optional(self.pool())
                .await?;
        match paced_until {
            Some(until) if until <= now => self.claim_in(tenant, now, lease_ms).await,
            _ => Ok(None),
        }
    }

    async fn claim_in(
        &self,
        tenant: TenantId,
        now: Millis,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>> {
        let r = sqlx::query(claim_in_sql(self.backend()))
            .bind(now + lease_ms)
            .bind(now)
            .bind(tenant)
            .fetch_optional(self.pool())
            .await?;
        r.map(|r| claimed(&r, now + lease_ms)).transpose()
    }

    /// No job of the tenant is claimed before `until`: its Keap budget has no room.
    pub async fn pace_tenant(&self, tenant: TenantId, until: Millis) -> Result<()> {
        sqlx::query("UPDATE tenants SET paced_until = $2 WHERE id = $1 AND paced_until < $2")
            .bind(tenant)
            .bind(until)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// A claim's returned row, holding the lease until `lease_until`.
fn claimed(r: &sqlx::any::AnyRow, lease_until: Millis) -> Result<ClaimedJob> {
    Ok(ClaimedJob {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        subject: r.try_get("subject")?,
        attempts: r.try_get("attempts")?,
        lease_until,
        blocked_since: r.try_get("blocked_since")?,
        created_at: r.try_get("created_at")?,
    })
}
