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

/// The tenants with work due, the one served longest ago first, leaving out those whose
/// Keap budget has no room yet and those already holding `$2` workers.
const TENANTS_DUE: &str = "SELECT t.id FROM tenants t
 WHERE t.paced_until <= $1
   AND EXISTS (SELECT 1 FROM jobs j WHERE j.tenant_id = t.id
                 AND ((j.state IN ('pending', 'blocked') AND j.run_at <= $1)
                      OR (j.state = 'running' AND j.lease_until <= $1)))
   AND (SELECT COUNT(*) FROM jobs r WHERE r.tenant_id = t.id AND r.state = 'running'
          AND r.lease_until > $1) < $2
 ORDER BY t.claim_turn, t.id";

/// The claim within one tenant (`$3`): its next job that is due, or whose worker's lease ran
/// out, and whose subject no other worker holds; an opt-out in Keap before a push to a
/// sending provider (the push is the second line, Keap the record). `$lock` is where the
/// dialects differ.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2
 WHERE id = (
   SELECT j.id FROM jobs j
    WHERE j.tenant_id = $3
      AND ((j.state IN ('pending', 'blocked') AND j.run_at <= $2) OR (j.state = 'running' AND j.lease_until <= $2))
      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.subject = j.subject
                       AND r.id <> j.id AND r.state = 'running' AND r.lease_until > $2)
    ORDER BY j.kind = 'push', j.run_at, j.id LIMIT 1",
            $lock,
            ")
 RETURNING id, tenant_id, subject, attempts, blocked_since, created_at"
        )
    };
}

fn claim_sql(backend: Backend) -> &'static str {
    match backend {
        // One writer: the single statement is already atomic.
        Backend::Sqlite => claim_sql!(""),
        // Skip rows another instance is claiming at this moment.
        Backend::Postgres => claim_sql!(" FOR UPDATE SKIP LOCKED"),
    }
}

impl Store {
    /// Claims the next job that is due, or whose worker's lease ran out.
    /// Claims the next job, taking tenants in turns: the tenant served longest ago that has
    /// a job due, is not paced and holds fewer than `per_tenant` running jobs. Its turn moves
    /// to the back of the line.
    pub async fn claim(
        &self,
        now: Millis,
        lease_ms: i64,
        per_tenant: i64,
    ) -> Result<Option<ClaimedJob>> {
        let tenants: Vec<TenantId> = sqlx::query_scalar(TENANTS_DUE)
            .bind(now)
            .bind(per_tenant)
            .fetch_all(self.pool())
            .await?;
        for tenant in tenants {
            // A tenant whose due jobs all wait on a running subject yields to the next.
            if let Some(job) = self.claim_in(tenant, now, lease_ms).await? {
                sqlx::query(
                    "UPDATE tenants SET claim_turn = (SELECT COALESCE(MAX(claim_turn), 0) + 1 FROM tenants) WHERE id = $1",
                )
                .bind(tenant)
                .execute(self.pool())
                .await?;
                return Ok(Some(job));
            }
        }
        Ok(None)
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
        let r = sqlx::query(claim_sql(self.backend()))
            .bind(now + lease_ms)
            .bind(now)
            .bind(tenant)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = r else {
            return Ok(None);
        };
        Ok(Some(ClaimedJob {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            subject: r.try_get("subject")?,
            attempts: r.try_get("attempts")?,
            lease_until: now + lease_ms,
            blocked_since: r.try_get("blocked_since")?,
            created_at: r.try_get("created_at")?,
        }))
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
