//! The worker: the loop that claims a job (woken by the queue or on a poll), runs its steps
//! ([`job`]), fans out shared stop sources ([`fanout`]), and ends it — completed with a
//! terminal outcome and its report, or put back as [`policy`] says.

mod fanout;
mod fast;
mod flight;
mod job;
mod paths;
pub mod policy;
mod push;

use crate::clock::Millis;
use crate::clock::Now as _;
use std::time::Duration;

use rand::Rng;
use tracing::Instrument as _;

use crate::error::{Error, Result};
use crate::logfmt::one_line;
use crate::state::AppState;
use crate::store::{ClaimedJob, JobId, JobKind, JobReport, Outcome, Requeue, TenantId};
use policy::{Attempt, Ending, Failure, Policy, Seen};

/// What one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done {
        job_id: JobId,
        writes: usize,
    },
    /// No opt-out path works for the app: tried again after the blocked-retry interval.
    Blocked {
        job_id: JobId,
        reason: String,
    },
    /// Keap has no such contact (or no contact holds the address): nothing to honour.
    NotFound {
        job_id: JobId,
    },
    /// Keap's post named a contact that Keap shows with no stop status, read again for a few
    /// minutes: not honoured.
    NoOptOut {
        job_id: JobId,
    },
    /// Keap's post named a contact that shows no stop status yet: read again at `at`.
    Rechecking {
        job_id: JobId,
        at: Millis,
    },
    Retrying {
        job_id: JobId,
        error: String,
    },
    Deferred {
        job_id: JobId,
        wait: Duration,
    },
    Dead {
        job_id: JobId,
        error: String,
    },
    /// The lease ran out while working and another worker took the job over.
    LostLease {
        job_id: JobId,
    },
}

impl JobOutcome {
    /// The outcome's name in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Done { .. } => "done",
            Self::Blocked { .. } => "blocked",
            Self::NotFound { .. } => "not_found",
            Self::NoOptOut { .. } => "no_opt_out",
            Self::Rechecking { .. } => "rechecking",
            Self::Retrying { .. } => "retrying",
            Self::Deferred { .. } => "deferred",
            Self::Dead { .. } => "dead",
            Self::LostLease { .. } => "lost_lease",
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    state: AppState,
}

impl Worker {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Claims and runs one job; `None` when nothing is due.
    pub async fn run_once(&self) -> Result<Option<JobOutcome>> {
        let Some(job) = self.claim().await? else {
            return Ok(None);
        };
        self.run_job(&job).await.map(Some)
    }

    /// The next job due, taking tenants in turns, within the tenant's share.
    async fn claim(&self) -> Result<Option<ClaimedJob>> {
        let s = &self.state;
        let now = s.clock.now();
        let lease_ms = s.settings.lease.as_millis() as i64;
        let per_tenant = s.settings.tenant_workers as i64;
        s.queue.claim(now, lease_ms, per_tenant).await
    }

    /// Claims and runs one job of `tenant` alone; `None` when none of its jobs is due.
    pub async fn run_once_in(&self, tenant: TenantId) -> Result<Option<JobOutcome>> {
        let s = &self.state;
        let now = s.clock.now();
        let lease_ms = s.settings.lease.as_millis() as i64;
        let Some(job) = s.queue.claim_tenant(tenant, now, lease_ms).await? else {
            return Ok(None);
        };
        self.run_job(&job).await.map(Some)
    }

    /// Runs a claimed job to its end, timed and counted.
    async fn run_job(&self, job: &ClaimedJob) -> Result<JobOutcome> {
        let span = tracing::info_span!("job", job = job.id.get(), tenant = job.tenant_id.get(), subject = %job.subject);
        let started = std::time::Instant::now();
        let outcome = self.run_claimed(job).instrument(span).await?;
        metrics::histogram!(crate::telemetry::JOB_DURATION).record(started.elapsed());
        metrics::counter!(crate::telemetry::JOBS_RUN, "outcome" => outcome.name()).increment(1);
        Ok(outcome)
    }

    async fn run_claimed(&self, job: &ClaimedJob) -> Result<JobOutcome> {
        let s = &self.state;
        tracing::debug!(attempt = job.attempts, "claimed");
        crate::current_job::holding(job.id.get());
        #[cfg(feature = "test-hooks")]
        if let Some(hook) = &s.before_job {
            hook(job.id.get());
        }
        match job.subject.kind() {
            JobKind::Push => push::run(s, job).await,
            JobKind::OptOut => self.run_opt_out(job).await,
        }
    }

    /// An opt-out in Keap: the steps, then the ending [`policy::ending`] says.
    async fn run_opt_out(&self, job: &ClaimedJob) -> Result<JobOutcome> {
        let s = &self.state;
        let mut work = job::Work::new(s, job);
        if let Err(e) = job::execute(s, job, &mut work).await {
            return self.fail(job, e, &work.report).await;
        }
        let now = s.clock.now();
        if job.attempts > 1 {
            // It failed before and went through now: Keap answers again, so the tenant's
            // other backed-off jobs need not wait out their backoff.
            let released = s.queue.release_backoff(job.tenant_id, now).await?;
            if released > 0 {
                tracing::info!(released, "Keap answers again; backed-off jobs are due now");
            }
        }
        let seen = Seen {
            found: work.found,
            keap_post: work.keap_post,
            stop: work.stop_seen,
            received_at: work.report.received_at,
            now,
        };
        let outcome = match policy::ending(seen) {
            Ending::Complete(outcome) => outcome,
            Ending::Recheck(at) => {
                tracing::info!(
                    recheck_at = at.as_i64(),
                    "Keap shows no opt-out for the post yet; reading again"
                );
                let why = "Keap shows no stop status yet; reading the contact again";
                s.queue
                    .requeue(job.id, Requeue::Recheck(at), why, now)
                    .await?;
                return Ok(JobOutcome::Rechecking { job_id: job.id, at });
            }
        };
        if !s.queue.complete(job, now, outcome, &work.report).await? {
            tracing::warn!("lease ran out before completion; another worker has the job");
            return Ok(JobOutcome::LostLease { job_id: job.id });
        }
        Ok(match outcome {
            Outcome::Done => {
                for (source, received_at) in &work.received {
                    let secs = (now - *received_at).max(0) as f64 / 1000.0;
                    metrics::histogram!(crate::telemetry::TIME_TO_HONOUR, "source" => source.to_string())
                        .record(secs);
                }
                tracing::info!(writes = work.writes, "job done");
                JobOutcome::Done {
                    job_id: job.id,
                    writes: work.writes,
                }
            }
            Outcome::NotFound => {
                tracing::warn!("job done: Keap has no such contact; nothing to honour");
                JobOutcome::NotFound { job_id: job.id }
            }
            Outcome::NoOptOut => {
                tracing::warn!("job ended: Keap showed no opt-out for the post; not honoured");
                JobOutcome::NoOptOut { job_id: job.id }
            }
        })
    }

    /// Runs jobs until none is due (tests and the CLI drive the queue with this).
    pub async fn drain(&self) -> Result<Vec<JobOutcome>> {
        let mut out = Vec::new();
        while let Some(o) = self.run_once().await? {
            out.push(o);
        }
        Ok(out)
    }

    /// Puts a failed job back where [`Policy::after_failure`] says, and says so. A blocked
    /// job queues the pushes its report asks for with it: its addresses are still mailable
    /// through Keap, so the sending providers' lists are what stops the mail.
    async fn fail(&self, job: &ClaimedJob, e: Error, report: &JobReport) -> Result<JobOutcome> {
        let s = &self.state;
        let now = s.clock.now();
        let msg = e.to_string();
        let failure = failure(&e);
        let attempt = Attempt {
            attempts: job.attempts,
            age: Duration::from_millis((now - job.created_at).max(0) as u64),
            now,
            jitter: rand::rng().random_range(0.8..1.2),
        };
        let how = match policy_of(s).after_failure(failure, attempt) {
            Requeue::Retry(at) => Requeue::Retry(self.probing(job, at, now, attempt.jitter).await?),
            how => how,
        };
        match how {
            Requeue::Block(_) if !report.push.is_empty() => {
                let pushes = (report.push.as_slice(), report.received_at);
                s.queue
                    .requeue_pushing(job.id, how, &msg, now, pushes)
                    .await?
            }
            _ => s.queue.requeue(job.id, how, &msg, now).await?,
        }
        let job_id = job.id;
        Ok(match how {
            Requeue::Block(_) => {
                self.said_blocked(job, &msg);
                JobOutcome::Blocked {
                    job_id,
                    reason: msg,
                }
            }
            Requeue::Defer(at) => {
                tracing::info!(wait_ms = at - now, "deferred by Keap's rate limit");
                // The credential has no room: the tenant's other jobs wait too, without a
                // worker claiming each in turn to find that out.
                s.store.pace_tenant(job.tenant_id, at).await?;
                let wait = Duration::from_millis((at - now).max(0) as u64);
                JobOutcome::Deferred { job_id, wait }
            }
            Requeue::Bury => {
                tracing::error!(attempts = job.attempts, error = %one_line(&msg),
                    "job is dead; re-drive it with `optsync retry`");
                JobOutcome::Dead { job_id, error: msg }
            }
            Requeue::Retry(at) | Requeue::Recheck(at) => {
                tracing::warn!(attempt = job.attempts, retry_in_ms = at - now, error = %one_line(&msg),
                    "job failed; will retry");
                JobOutcome::Retrying { job_id, error: msg }
            }
        })
    }

    /// A failed job's retry, brought forward when it is to be its tenant's probe (see
    /// [`policy::probing`]).
    async fn probing(
        &self,
        job: &ClaimedJob,
        at: Millis,
        now: Millis,
        jitter: f64,
    ) -> Result<Millis> {
        if at <= now + policy::PROBE_EVERY.as_millis() as i64 {
            return Ok(at);
        }
        let next = self.state.store.next_retry(job.tenant_id, job.id).await?;
        Ok(policy::probing(at, now, next, jitter))
    }

    /// A blocked job is said loudly once; quietly while it stays blocked.
    fn said_blocked(&self, job: &ClaimedJob, reason: &str) {
        let retry_in_s = self.state.settings.blocked_retry.as_secs();
        if job.blocked_since.is_none() {
            tracing::error!(reason = %one_line(reason), retry_in_s,
                "job BLOCKED: no opt-out path works for this app; these addresses can still be mailed (see `optsync doctor`)");
        } else {
            tracing::info!(reason = %one_line(reason), "job still blocked");
        }
    }
}

fn policy_of(s: &AppState) -> Policy {
    let c = &s.settings;
    Policy {
        max_attempts: c.max_attempts,
        bury_after: c.bury_after,
        retry_base: c.retry_base,
        retry_cap: c.retry_cap,
        blocked_retry: c.blocked_retry,
    }
}

/// How an error failed the job: no opt-out path works just now (also an OAuth app Keap
/// refused for good, until it is connected again), Keap's rate limit, or a failed attempt.
fn failure(e: &Error) -> Failure {
    match e {
        Error::NoOptOutPath(_)
        | Error::Keap(keap::Error::XmlRpcUnavailable(_) | keap::Error::ReconnectNeeded(_)) => {
            Failure::Blocked
        }
        Error::Keap(k) => k
            .retry_after()
            .map_or(Failure::Failed, Failure::RateLimited),
        _ => Failure::Failed,
    }
}
