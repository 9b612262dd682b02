//! A claimed job's events and its end: completed with a terminal outcome and its report, put
//! back (merged into a newer pending job for its subject if one appeared), or re-driven by an
//! operator.

use super::TenantId;
use crate::clock::Millis;
use keap::EmailAddress;
use sqlx::Row;

use super::Store;
use super::decision::JobReport;
use super::ids::{EventId, JobId};
use super::model::{JobState, Outcome, RETRYABLE, Requeue, Subject};
use super::payload::EventPayload;
use crate::error::Result;

/// One of a job's events, as the worker reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: EventId,
    pub payload: EventPayload,
    pub received_at: Millis,
}

impl Store {
    /// The tenant a job belongs to.
    pub async fn job_tenant(&self, job_id: JobId) -> Result<Option<TenantId>> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn job_events(&self, job_id: JobId) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, payload, received_at FROM events WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Ends a job with a terminal outcome — done (its events honoured), not found or no
    /// opt-out in Keap (not honoured) — and records its report, and queues the pushes of the
    /// addresses a person's opt-out covers (`report.push`), in one transaction. Returns
    /// false if the job was no longer this worker's (its lease ran out and another worker
    /// took it): then nothing is written.
    pub async fn complete(
        &self,
        job_id: JobId,
        lease_until_seen: Option<Millis>,
        now: Millis,
        outcome: Outcome,
        report: &JobReport,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = $1, lease_until = NULL, last_error = $5, updated_at = $2
             WHERE id = $3 AND state = 'running' AND ($4 IS NULL OR lease_until = $4)",
        )
        .bind(outcome.state())
        .bind(now)
        .bind(job_id)
        .bind(lease_until_seen)
        .bind(outcome.note())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        if outcome == Outcome::Done {
            sqlx::query(
                "UPDATE events SET honoured_at = $1 WHERE job_id = $2 AND honoured_at IS NULL",
            )
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        }
        super::decision::insert(&mut tx, report, now).await?;
        if outcome != Outcome::NoOptOut {
            let (push, at) = (&report.push, report.received_at);
            super::push_jobs::queue_pushes(&mut tx, job_id, push, at, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Puts a job back in the queue, or buries it. If another pending job for the subject
    /// appeared meanwhile, this job's events move to it and this one is `merged`.
    pub async fn requeue(
        &self,
        job_id: JobId,
        how: Requeue,
        error: &str,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        requeue_in(&mut tx, job_id, how, error, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a job back as [`Store::requeue`] does and queues the pushes of the addresses
    /// it leaves mailable, in one transaction: a job no Keap path can do still has its
    /// addresses suppressed at the sending providers.
    pub async fn requeue_pushing(
        &self,
        job_id: JobId,
        how: Requeue,
        error: &str,
        now: Millis,
        pushes: &[EmailAddress],
        requested_at: Millis,
    ) -> Result<usize> {
        let mut tx = self.pool().begin().await?;
        requeue_in(&mut tx, job_id, how, error, now).await?;
        let queued =
            super::push_jobs::queue_pushes(&mut tx, job_id, pushes, requested_at, now).await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Re-drives a job in one of the [`RETRYABLE`] states: pending now, attempts reset, in
    /// one transaction. False when the job is in another state (or does not exist).
    pub async fn retry_job(&self, job_id: JobId, now: Millis) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let state: Option<JobState> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        if !state.is_some_and(|s| RETRYABLE.contains(&s)) {
            return Ok(false);
        }
        sqlx::query("UPDATE jobs SET attempts = 0 WHERE id = $1")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        let how = Requeue::Retry(now);
        requeue_in(&mut tx, job_id, how, "re-driven by an operator", now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Re-drives every dead job; how many.
    pub async fn retry_dead(&self, now: Millis) -> Result<usize> {
        let ids: Vec<JobId> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'dead' ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        for id in &ids {
            self.retry_job(*id, now).await?;
        }
        Ok(ids.len())
    }
}

/// [`Store::requeue`] inside the caller's transaction.
async fn requeue_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: JobId,
    how: Requeue,
    error: &str,
    now: Millis,
) -> Result<()> {
    let job = sqlx::query("SELECT tenant_id, subject FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(job) = job else {
        return Ok(());
    };
    let tenant_id: TenantId = job.try_get("tenant_id")?;
    let subject: Subject = job.try_get("subject")?;
    let (state, run_at, give_back) = match how {
        Requeue::Defer(at) | Requeue::Recheck(at) => (JobState::Pending, at, 1_i64),
        Requeue::Retry(at) => (JobState::Pending, at, 0),
        Requeue::Block(at) => (JobState::Blocked, at, 1),
        Requeue::Bury => (JobState::Dead, now, 0),
    };
    let other = match state {
        JobState::Pending => pending_job(tx, tenant_id, &subject, job_id).await?,
        _ => None,
    };
    let blocked_since = matches!(how, Requeue::Block(_)).then_some(now);
    match other {
        Some(other) => merge_into(tx, job_id, other, run_at, error, now).await?,
        None => {
            sqlx::query(
                "UPDATE jobs SET state = $1, run_at = $2, lease_until = NULL, last_error = $3, updated_at = $4,
                        attempts = attempts - $5,
                        blocked_since = CASE WHEN $6 IS NULL THEN NULL ELSE COALESCE(blocked_since, $6) END
                 WHERE id = $7",
            )
            .bind(state)
            .bind(run_at)
            .bind(error)
            .bind(now)
            .bind(give_back)
            .bind(blocked_since)
            .bind(job_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Another pending job for the same subject, if one appeared while this one ran.
async fn pending_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: TenantId,
    subject: &Subject,
    except: JobId,
) -> Result<Option<JobId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM jobs WHERE tenant_id = $1 AND subject = $2 AND state = 'pending' AND id <> $3",
    )
    .bind(tenant_id)
    .bind(subject)
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Moves a job's events to `into` (run no later than `run_at`) and marks it merged.
async fn merge_into(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: JobId,
    into: JobId,
    run_at: Millis,
    error: &str,
    now: Millis,
) -> Result<()> {
    sqlx::query("UPDATE events SET job_id = $1 WHERE job_id = $2")
        .bind(into)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE jobs SET run_at = CASE WHEN run_at < $1 THEN run_at ELSE $1 END, updated_at = $2 WHERE id = $3",
    )
    .bind(run_at)
    .bind(now)
    .bind(into)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE jobs SET state = 'merged', lease_until = NULL, last_error = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(error)
    .bind(now)
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
