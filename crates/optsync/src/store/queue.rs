//! Events and the job queue, in the same database and the same transaction: an event is
//! accepted only when its job is committed with it.
//!
//! A job's [`Subject`] is a contact or an address. There is at most one pending job per
//! subject — a new event joins it — and a job is not claimed while another job for its
//! subject runs, so one contact is worked on by one worker at a time. A crash loses nothing:
//! the claimed job's lease runs out and another worker takes it.

use keap::{ContactId, EmailAddress};
use sqlx::Row;

use super::model::{EventKind, EventSource, JobState, Requeue, Subject};
use super::{Backend, Store, is_unique_violation};
use crate::error::Result;

/// An event as intake, provider hooks, fan-out and reconciliation hand it to the store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: i64,
    pub source: EventSource,
    pub kind: EventKind,
    pub contact_id: Option<ContactId>,
    pub email: Option<EmailAddress>,
    /// The provider's id for the event, for de-duplication.
    pub provider_event_id: Option<String>,
    /// SHA-256 (hex) of the raw body the event came in (or what produced it).
    pub body_digest: String,
    pub received_at: i64,
    /// What a reconcile sweep saw of the contact (JSON), so the worker need not read it.
    pub snapshot: Option<String>,
    /// The job that honours it; `None`: recorded only (soft bounces, resubscribes), honoured
    /// on arrival since there is nothing to do.
    pub subject: Option<Subject>,
}

impl NewEvent {
    /// An event with a job for `subject`, without contact, address or provider id.
    pub fn new(
        tenant_id: i64,
        source: EventSource,
        kind: EventKind,
        subject: Subject,
        received_at: i64,
    ) -> Self {
        Self {
            tenant_id,
            source,
            kind,
            contact_id: None,
            email: None,
            provider_event_id: None,
            body_digest: String::new(),
            received_at,
            snapshot: None,
            subject: Some(subject),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: i64,
    /// 0 for an event recorded without a job.
    pub job_id: i64,
    /// The provider had sent this event before; nothing new was stored.
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub tenant_id: i64,
    pub subject: Subject,
    /// Including this run.
    pub attempts: i64,
    /// The lease this claim holds (epoch ms): completing checks it is still ours.
    pub lease_until: i64,
    /// Since when no opt-out path could do this job, if it was blocked.
    pub blocked_since: Option<i64>,
    /// When the job was first queued: it is buried only after a horizon counted from here.
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub source: EventSource,
    pub kind: EventKind,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub received_at: i64,
    pub snapshot: Option<String>,
}

impl EventRow {
    /// The address the event names, if it names a valid one.
    pub fn address(&self) -> Option<EmailAddress> {
        self.email
            .as_deref()
            .and_then(|e| EmailAddress::parse(e).ok())
    }
}

/// Jobs that failed and are waiting for their next try (`optsync doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingJobs {
    pub count: i64,
    pub oldest_created_at: Option<i64>,
    pub last_error: Option<String>,
}

/// The select every [`EventSummary`] listing starts from; each adds its WHERE and ORDER.
pub(super) const EVENT_SUMMARY: &str =
    "SELECT e.id, t.app, e.source, e.kind, e.contact_id, e.email, e.received_at, e.honoured_at,
        e.job_id, j.state AS job_state, j.attempts, j.last_error
   FROM events e
   JOIN tenants t ON t.id = e.tenant_id
   LEFT JOIN jobs j ON j.id = e.job_id";

/// An event with its job's state, for `optsync events`, the console and the report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventSummary {
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
    pub attempts: Option<i64>,
    pub last_error: Option<String>,
}

/// An event and when it was honoured.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HonouredEvent {
    pub source: EventSource,
    pub contact_id: Option<i64>,
    pub email: Option<String>,
    pub received_at: i64,
    pub honoured_at: i64,
}

/// Inserts one event inside the caller's transaction, with (or joining) its subject's
/// pending job. An event whose (source, provider id, kind) was stored before is not stored
/// again: the earlier ids come back, marked duplicate. This is the one de-duplication path.
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ev: &NewEvent,
) -> Result<Accepted, sqlx::Error> {
    if let Some(pid) = &ev.provider_event_id {
        let prev = sqlx::query(
            "SELECT id, job_id FROM events WHERE tenant_id = $1 AND source = $2 AND provider_event_id = $3 AND kind = $4",
        )
        .bind(ev.tenant_id)
        .bind(ev.source)
        .bind(pid)
        .bind(ev.kind)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = prev {
            return Ok(Accepted {
                event_id: r.try_get("id")?,
                job_id: r.try_get::<Option<i64>, _>("job_id")?.unwrap_or_default(),
                duplicate: true,
            });
        }
    }
    let job_id = match &ev.subject {
        Some(subject) => Some(join_pending_job(tx, ev.tenant_id, subject, ev.received_at).await?),
        None => None,
    };
    let event_id: i64 = sqlx::query(
        "INSERT INTO events (tenant_id, source, kind, contact_id, email, provider_event_id, body_digest, received_at, job_id, snapshot, honoured_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(ev.tenant_id)
    .bind(ev.source)
    .bind(ev.kind)
    .bind(ev.contact_id.map(ContactId::get))
    .bind(ev.email.as_ref().map(EmailAddress::as_str))
    .bind(&ev.provider_event_id)
    .bind(&ev.body_digest)
    .bind(ev.received_at)
    .bind(job_id)
    .bind(&ev.snapshot)
    // Nothing to do for a recorded-only event: honoured on arrival.
    .bind(job_id.is_none().then_some(ev.received_at))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    Ok(Accepted {
        event_id,
        job_id: job_id.unwrap_or_default(),
        duplicate: false,
    })
}

/// The subject's pending job, created if there is none.
async fn join_pending_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: i64,
    subject: &Subject,
    at: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO jobs (tenant_id, subject, state, attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3)
         ON CONFLICT (tenant_id, subject) WHERE state = 'pending'
         DO UPDATE SET updated_at = excluded.updated_at
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(subject)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")
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
/// out, and whose subject no other worker holds. `$lock` is where the dialects differ.
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
    ORDER BY j.run_at, j.id LIMIT 1",
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
    /// Stores an event and its job in one transaction. A provider event id seen before is a
    /// duplicate: nothing is stored and the earlier ids are returned.
    pub async fn accept(&self, ev: &NewEvent) -> Result<Accepted> {
        let out = self
            .store_delivery(&super::Delivery {
                events: vec![ev.clone()],
                token: None,
                at: ev.received_at,
            })
            .await?;
        Ok(out.accepted.into_iter().next().unwrap_or(Accepted {
            event_id: 0,
            job_id: 0,
            duplicate: true,
        }))
    }

    /// Claims the next job that is due, or whose worker's lease ran out.
    /// Claims the next job, taking tenants in turns: the tenant served longest ago that has
    /// a job due, is not paced and holds fewer than `per_tenant` running jobs. Its turn moves
    /// to the back of the line.
    pub async fn claim(
        &self,
        now: i64,
        lease_ms: i64,
        per_tenant: i64,
    ) -> Result<Option<ClaimedJob>> {
        let tenants: Vec<i64> = sqlx::query_scalar(TENANTS_DUE)
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

    async fn claim_in(&self, tenant: i64, now: i64, lease_ms: i64) -> Result<Option<ClaimedJob>> {
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

    /// The tenant a job belongs to.
    pub async fn job_tenant(&self, job_id: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// No job of the tenant is claimed before `until`: its Keap budget has no room.
    pub async fn pace_tenant(&self, tenant: i64, until: i64) -> Result<()> {
        sqlx::query("UPDATE tenants SET paced_until = $2 WHERE id = $1 AND paced_until < $2")
            .bind(tenant)
            .bind(until)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn job_events(&self, job_id: i64) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, source, kind, contact_id, email, received_at, snapshot FROM events WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Marks a job done (its events honoured) or `not_found` (nothing to honour), with the
    /// audit rows, in one transaction. Returns false if the job was no longer this worker's
    /// (its lease ran out and another worker took it): then nothing is written.
    pub async fn complete(
        &self,
        job_id: i64,
        lease_until_seen: Option<i64>,
        now: i64,
        outcome: JobState,
        audits: &[super::AuditRow],
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = $1, lease_until = NULL, last_error = NULL, updated_at = $2
             WHERE id = $3 AND state = 'running' AND ($4 IS NULL OR lease_until = $4)",
        )
        .bind(outcome)
        .bind(now)
        .bind(job_id)
        .bind(lease_until_seen)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        if outcome == JobState::Done {
            sqlx::query(
                "UPDATE events SET honoured_at = $1 WHERE job_id = $2 AND honoured_at IS NULL",
            )
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        }
        for a in audits {
            super::records::insert_audit(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Puts a job back in the queue, or buries it. If another pending job for the subject
    /// appeared meanwhile, this job's events move to it and this one is `merged`.
    pub async fn requeue(&self, job_id: i64, how: Requeue, error: &str, now: i64) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let job = sqlx::query("SELECT tenant_id, subject FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(job) = job else {
            return Ok(());
        };
        let tenant_id: i64 = job.try_get("tenant_id")?;
        let subject: Subject = job.try_get("subject")?;
        let (state, run_at, give_back) = match how {
            Requeue::Defer(at) => (JobState::Pending, at, 1_i64),
            Requeue::Retry(at) => (JobState::Pending, at, 0),
            Requeue::Block(at) => (JobState::Blocked, at, 1),
            Requeue::Bury => (JobState::Dead, now, 0),
        };
        let other = match state {
            JobState::Pending => pending_job(&mut tx, tenant_id, &subject, job_id).await?,
            _ => None,
        };
        let blocked_since = matches!(how, Requeue::Block(_)).then_some(now);
        match other {
            Some(other) => merge_into(&mut tx, job_id, other, run_at, error, now).await?,
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
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Re-drives a dead, blocked or pending job: pending now, attempts reset.
    pub async fn retry_job(&self, job_id: i64, now: i64) -> Result<bool> {
        let state: Option<JobState> = sqlx::query("SELECT state FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.try_get("state"))
            .transpose()?;
        match state {
            Some(JobState::Dead | JobState::Pending | JobState::Blocked) => {
                sqlx::query("UPDATE jobs SET attempts = 0 WHERE id = $1")
                    .bind(job_id)
                    .execute(self.pool())
                    .await?;
                self.requeue(job_id, Requeue::Retry(now), "re-driven by an operator", now)
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Re-drives every dead job; how many.
    pub async fn retry_dead(&self, now: i64) -> Result<usize> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'dead' ORDER BY id")
                .fetch_all(self.pool())
                .await?;
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
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{EVENT_SUMMARY} WHERE ($1 IS NULL OR e.tenant_id = $1) AND ($2 IS NULL OR j.state = $2)
              ORDER BY e.id DESC LIMIT $3"
        )))
        .bind(tenant_id)
        .bind(state)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every honoured event, oldest first.
    pub async fn honoured_events(&self) -> Result<Vec<HonouredEvent>> {
        Ok(sqlx::query_as(
            "SELECT source, contact_id, email, received_at, honoured_at FROM events WHERE honoured_at IS NOT NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// How many jobs are in each state.
    pub async fn job_counts(&self) -> Result<Vec<(JobState, i64)>> {
        Ok(
            sqlx::query_as("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// How many of a tenant's jobs are in each state.
    pub async fn tenant_job_counts(&self, tenant_id: i64) -> Result<Vec<(JobState, i64)>> {
        Ok(sqlx::query_as(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE tenant_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// When the tenant's last event from this source arrived.
    pub async fn last_received(&self, tenant_id: i64, source: EventSource) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(received_at) FROM events WHERE tenant_id = $1 AND source = $2",
        )
        .bind(tenant_id)
        .bind(source)
        .fetch_one(self.pool())
        .await?)
    }

    /// A tenant's jobs that have failed and wait to be tried again: how many, since when the
    /// oldest was queued, and the newest error.
    pub async fn failing_jobs(&self, tenant_id: i64) -> Result<FailingJobs> {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE tenant_id = $1 AND state = 'pending' AND attempts > 0 AND last_error IS NOT NULL",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?;
        let last_error = sqlx::query_scalar(
            "SELECT last_error FROM jobs WHERE tenant_id = $1 AND state = 'pending' AND attempts > 0 AND last_error IS NOT NULL ORDER BY updated_at DESC, id DESC LIMIT 1",
        )
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(FailingJobs {
            count,
            oldest_created_at: oldest,
            last_error,
        })
    }

    /// Jobs waiting (blocked ones too) or under way.
    pub async fn unfinished_jobs(&self) -> Result<i64> {
        Ok(self
            .job_counts()
            .await?
            .iter()
            .filter(|(s, _)| matches!(s, JobState::Pending | JobState::Running | JobState::Blocked))
            .map(|(_, n)| n)
            .sum())
    }
}

/// Another pending job for the same subject, if one appeared while this one ran.
async fn pending_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: i64,
    subject: &Subject,
    except: i64,
) -> Result<Option<i64>> {
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
    job_id: i64,
    into: i64,
    run_at: i64,
    error: &str,
    now: i64,
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

/// A unique violation on the provider-id index: the same provider event raced in through
/// another connection. Storing again finds it as a duplicate.
pub(super) fn is_duplicate_race(e: &sqlx::Error) -> bool {
    is_unique_violation(e)
}
