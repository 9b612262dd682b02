//! Events and the job queue, in the same database and the same transaction: an event is
//! accepted only when its job is committed with it.
//!
//! A job's subject is a contact (`contact:ID`) or an address (`email:ADDRESS`). There is at
//! most one pending job per subject — a new event joins it — and a job is not claimed while
//! another job for its subject runs, so one contact is worked on by one worker at a time.
//! A crash loses nothing: the claimed job's lease runs out and another worker takes it.

use sqlx::Row;

use super::{Backend, Store, is_unique_violation};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Done,
    Dead,
    /// Folded into another pending job for the same subject.
    Merged,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Merged => "merged",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: i64,
    pub source: String,
    pub kind: String,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub provider_event_id: Option<String>,
    /// SHA-256 (hex) of the raw body the event came in.
    pub body_digest: String,
    pub received_at: i64,
    /// What a reconcile sweep saw of the contact (JSON), so the worker need not read it.
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: i64,
    pub job_id: i64,
    /// The provider had sent this event before; nothing new was stored.
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub tenant_id: i64,
    pub subject: String,
    /// Including this run.
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub source: String,
    pub kind: String,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub received_at: i64,
    pub snapshot: Option<String>,
}

/// An event with its job's state, for `optsync events`.
#[derive(Debug, Clone)]
pub struct EventSummary {
    pub id: i64,
    pub app: String,
    pub source: String,
    pub kind: String,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub received_at: i64,
    pub honoured_at: Option<i64>,
    pub job_id: Option<i64>,
    pub job_state: Option<String>,
    pub attempts: Option<i64>,
    pub last_error: Option<String>,
}

/// Inserts (or joins) the subject's pending job and the event, inside the caller's
/// transaction; (event id, job id).
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ev: &NewEvent,
    subject: &str,
) -> Result<(i64, i64), sqlx::Error> {
    let job_id: i64 = sqlx::query(
        "INSERT INTO jobs (tenant_id, subject, state, attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3)
         ON CONFLICT (tenant_id, subject) WHERE state = 'pending'
         DO UPDATE SET updated_at = excluded.updated_at
         RETURNING id",
    )
    .bind(ev.tenant_id)
    .bind(subject)
    .bind(ev.received_at)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    let event_id: i64 = sqlx::query(
        "INSERT INTO events (tenant_id, source, kind, contact_id, email, provider_event_id, body_digest, received_at, job_id, snapshot)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(ev.tenant_id)
    .bind(&ev.source)
    .bind(&ev.kind)
    .bind(ev.contact_id)
    .bind(&ev.email)
    .bind(&ev.provider_event_id)
    .bind(&ev.body_digest)
    .bind(ev.received_at)
    .bind(job_id)
    .bind(&ev.snapshot)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    Ok((event_id, job_id))
}

const CLAIM_SQLITE: &str = "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2
 WHERE id = (
   SELECT j.id FROM jobs j
    WHERE ((j.state = 'pending' AND j.run_at <= $2) OR (j.state = 'running' AND j.lease_until <= $2))
      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.subject = j.subject
                       AND r.id <> j.id AND r.state = 'running' AND r.lease_until > $2)
    ORDER BY j.run_at, j.id LIMIT 1)
 RETURNING id, tenant_id, subject, attempts";

/// The same, skipping rows another instance is claiming at this moment.
const CLAIM_POSTGRES: &str = "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2
 WHERE id = (
   SELECT j.id FROM jobs j
    WHERE ((j.state = 'pending' AND j.run_at <= $2) OR (j.state = 'running' AND j.lease_until <= $2))
      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.subject = j.subject
                       AND r.id <> j.id AND r.state = 'running' AND r.lease_until > $2)
    ORDER BY j.run_at, j.id LIMIT 1
    FOR UPDATE SKIP LOCKED)
 RETURNING id, tenant_id, subject, attempts";

impl Store {
    /// Stores an event and its job in one transaction. A provider event id seen before is a
    /// duplicate: nothing is stored and the earlier ids are returned.
    pub async fn accept(&self, ev: &NewEvent, subject: &str) -> Result<Accepted> {
        if let Some(pid) = &ev.provider_event_id
            && let Some(prev) = self
                .find_provider_event(ev.tenant_id, &ev.source, pid)
                .await?
        {
            return Ok(prev);
        }
        let mut tx = self.pool().begin().await?;
        let inserted = insert_event(&mut tx, ev, subject).await;
        let (event_id, job_id) = match inserted {
            Ok(ids) => ids,
            // The same provider event raced in through another connection.
            Err(e) if is_unique_violation(&e) && ev.provider_event_id.is_some() => {
                drop(tx);
                if let Some(prev) = self
                    .find_provider_event(
                        ev.tenant_id,
                        &ev.source,
                        ev.provider_event_id.as_deref().unwrap_or_default(),
                    )
                    .await?
                {
                    return Ok(prev);
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        Ok(Accepted {
            event_id,
            job_id,
            duplicate: false,
        })
    }

    async fn find_provider_event(
        &self,
        tenant_id: i64,
        source: &str,
        pid: &str,
    ) -> Result<Option<Accepted>> {
        let r = sqlx::query(
            "SELECT id, job_id FROM events WHERE tenant_id = $1 AND source = $2 AND provider_event_id = $3",
        )
        .bind(tenant_id)
        .bind(source)
        .bind(pid)
        .fetch_optional(self.pool())
        .await?;
        Ok(match r {
            Some(r) => Some(Accepted {
                event_id: r.try_get("id")?,
                job_id: r.try_get::<Option<i64>, _>("job_id")?.unwrap_or_default(),
                duplicate: true,
            }),
            None => None,
        })
    }

    /// Claims the next job that is due, or whose worker's lease ran out.
    pub async fn claim(&self, now: i64, lease_ms: i64) -> Result<Option<ClaimedJob>> {
        let sql = match self.backend() {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let r = sqlx::query(sql)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        Ok(match r {
            Some(r) => Some(ClaimedJob {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                subject: r.try_get("subject")?,
                attempts: r.try_get("attempts")?,
            }),
            None => None,
        })
    }

    pub async fn job_events(&self, job_id: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT id, source, kind, contact_id, email, received_at, snapshot FROM events WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.try_get("id")?,
                    source: r.try_get("source")?,
                    kind: r.try_get("kind")?,
                    contact_id: r.try_get("contact_id")?,
                    email: r.try_get("email")?,
                    received_at: r.try_get("received_at")?,
                    snapshot: r.try_get("snapshot")?,
                })
            })
            .collect()
    }

    /// Marks a job done and its events honoured, with the audit rows, in one transaction.
    /// Returns false if the job was no longer this worker's (its lease ran out and another
    /// worker took it): then nothing is written.
    pub async fn complete(
        &self,
        job_id: i64,
        lease_until_seen: Option<i64>,
        now: i64,
        audits: &[super::AuditRow],
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = $1
             WHERE id = $2 AND state = 'running' AND ($3 IS NULL OR lease_until = $3)",
        )
        .bind(now)
        .bind(job_id)
        .bind(lease_until_seen)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE events SET honoured_at = $1 WHERE job_id = $2 AND honoured_at IS NULL")
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        for a in audits {
            super::records::insert_audit(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Puts a job back in the queue (or buries it as dead). If another pending job for the
    /// subject appeared meanwhile, this job's events move to it and this one is `merged`.
    /// `count_attempt: false` gives back the attempt the claim took (a rate-limit wait).
    pub async fn requeue(
        &self,
        job_id: i64,
        run_at: i64,
        dead: bool,
        count_attempt: bool,
        error: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let job = sqlx::query("SELECT tenant_id, subject FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(job) = job else {
            return Ok(());
        };
        let tenant_id: i64 = job.try_get("tenant_id")?;
        let subject: String = job.try_get("subject")?;
        let other = if dead {
            None
        } else {
            sqlx::query(
                "SELECT id FROM jobs WHERE tenant_id = $1 AND subject = $2 AND state = 'pending' AND id <> $3",
            )
            .bind(tenant_id)
            .bind(&subject)
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<i64, _>("id"))
            .transpose()?
        };
        match other {
            Some(other) => {
                sqlx::query("UPDATE events SET job_id = $1 WHERE job_id = $2")
                    .bind(other)
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE jobs SET run_at = CASE WHEN run_at < $1 THEN run_at ELSE $1 END, updated_at = $2 WHERE id = $3",
                )
                .bind(run_at)
                .bind(now)
                .bind(other)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE jobs SET state = 'merged', lease_until = NULL, last_error = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(error)
                .bind(now)
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE jobs SET state = $1, run_at = $2, lease_until = NULL, last_error = $3, updated_at = $4,
                            attempts = attempts - $5
                     WHERE id = $6",
                )
                .bind(if dead { "dead" } else { "pending" })
                .bind(run_at)
                .bind(error)
                .bind(now)
                .bind(if count_attempt { 0_i64 } else { 1 })
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Re-drives a dead (or any unfinished) job: pending now, attempts reset.
    pub async fn retry_job(&self, job_id: i64, now: i64) -> Result<bool> {
        let state: Option<String> = sqlx::query("SELECT state FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.try_get("state"))
            .transpose()?;
        match state.as_deref() {
            Some("dead") | Some("pending") => {
                sqlx::query("UPDATE jobs SET attempts = 0 WHERE id = $1")
                    .bind(job_id)
                    .execute(self.pool())
                    .await?;
                self.requeue(job_id, now, false, true, "re-driven by an operator", now)
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Re-drives every dead job; how many.
    pub async fn retry_dead(&self, now: i64) -> Result<usize> {
        let ids: Vec<i64> = sqlx::query("SELECT id FROM jobs WHERE state = 'dead' ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        for id in &ids {
            self.retry_job(*id, now).await?;
        }
        Ok(ids.len())
    }

    /// Events, newest first, with their job's state; filtered by tenant and job state.
    pub async fn events(
        &self,
        tenant_id: Option<i64>,
        state: Option<JobState>,
        limit: i64,
    ) -> Result<Vec<EventSummary>> {
        let rows = sqlx::query(
            "SELECT e.id, t.app, e.source, e.kind, e.contact_id, e.email, e.received_at, e.honoured_at,
                    e.job_id, j.state, j.attempts, j.last_error
               FROM events e
               JOIN tenants t ON t.id = e.tenant_id
               LEFT JOIN jobs j ON j.id = e.job_id
              WHERE ($1 IS NULL OR e.tenant_id = $1) AND ($2 IS NULL OR j.state = $2)
              ORDER BY e.id DESC LIMIT $3",
        )
        .bind(tenant_id)
        .bind(state.map(JobState::as_str))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventSummary {
                    id: r.try_get("id")?,
                    app: r.try_get("app")?,
                    source: r.try_get("source")?,
                    kind: r.try_get("kind")?,
                    contact_id: r.try_get("contact_id")?,
                    email: r.try_get("email")?,
                    received_at: r.try_get("received_at")?,
                    honoured_at: r.try_get("honoured_at")?,
                    job_id: r.try_get("job_id")?,
                    job_state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    /// How many jobs are in each state.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }
}
