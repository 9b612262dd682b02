//! A push job's step: one address onto one sending provider's lists, in every scope its push
//! setting names, read back where the provider has a read call. Paced per credential (a push
//! that finds no room is deferred, no worker waits), retried with backoff on 429 and 5xx like
//! any failed attempt (so never dead before the burial horizon), and Postmark's activation
//! delay waited for: written but not shown by the read yet is read again later, not a failure.

use std::time::Duration;

use keap::EmailAddress;
use rand::Rng;

use super::policy::{Attempt, Failure};
use super::{JobOutcome, policy_of};
use crate::clock::{Millis, Now as _};
use crate::error::{Error, Result};
use crate::logfmt::one_line;
use crate::providers::Provider;
use crate::push::PushConfig;
use crate::state::AppState;
use crate::store::{ClaimedJob, JobReport, Outcome, Requeue, Subject, Suppression, TenantId};

/// Runs a claimed push job and counts it by provider and outcome.
pub(super) async fn run(s: &AppState, job: &ClaimedJob) -> Result<JobOutcome> {
    let Subject::Push { provider, address } = &job.subject else {
        return Err(Error::CorruptState(format!("job {} is not a push", job.id)));
    };
    let (outcome, said) = push(s, job, *provider, address).await?;
    metrics::counter!(crate::telemetry::PUSHES, "provider" => provider.name(), "outcome" => said)
        .increment(1);
    Ok(outcome)
}

/// The push, and its outcome's name in `optsync_push_total`.
async fn push(
    s: &AppState,
    job: &ClaimedJob,
    provider: Provider,
    address: &EmailAddress,
) -> Result<(JobOutcome, &'static str)> {
    let Some(config) = setting(s, job.tenant_id, provider).await? else {
        // The app or its push setting was removed while the job waited: nothing to push.
        return Ok((end_unpushed(s, job).await?, "removed"));
    };
    let credential = crate::push::provider_of(provider);
    let now = s.clock.now();
    if let Err(wait) = s
        .push_pacer
        .take(job.tenant_id, credential, now.as_i64() as u64)
    {
        let at = now + wait.as_millis() as i64;
        let why = "paced: no room for another push on this credential yet";
        s.queue
            .requeue(job.id, Requeue::Defer(at), why, now)
            .await?;
        return Ok((
            JobOutcome::Deferred {
                job_id: job.id,
                wait,
            },
            "paced",
        ));
    }
    let options = suppress::Options {
        clock: s.clock.clone(),
        ..suppress::Options::default()
    };
    let result = match s.push_clients.get(job.tenant_id, &config, options) {
        Ok(client) => client.push(address.as_str()).await,
        Err(e) => Err(e),
    };
    let now = s.clock.now();
    match result {
        Ok(written) => {
            let done = Suppression {
                provider,
                address: address.clone(),
                scope: config.scope(),
                verified: written.all_verified(),
            };
            finished(s, job, &done, now).await
        }
        Err(e) => failed(s, job, (provider, credential), e, now).await,
    }
}

/// The tenant's push setting for `provider`, if it still has one.
async fn setting(
    s: &AppState,
    tenant_id: TenantId,
    provider: Provider,
) -> Result<Option<PushConfig>> {
    let Some(tenant) = s.store.tenant(tenant_id).await? else {
        return Ok(None);
    };
    let wanted = crate::push::provider_of(provider);
    let configs = crate::push::load(&s.store, s.tenants.secrets(), &tenant).await?;
    Ok(configs.into_iter().find(|c| c.provider() == wanted))
}

/// Records the suppression and ends the job.
async fn finished(
    s: &AppState,
    job: &ClaimedJob,
    done: &Suppression,
    now: Millis,
) -> Result<(JobOutcome, &'static str)> {
    if !s.queue.complete_push(job, now, done).await? {
        tracing::warn!("lease ran out before completion; another worker has the push");
        return Ok((JobOutcome::LostLease { job_id: job.id }, "lost_lease"));
    }
    tracing::info!(provider = done.provider.name(), email = %done.address, scope = %done.scope,
        verified = done.verified, "suppressed at the sending provider");
    let said = if done.verified {
        "suppressed"
    } else {
        "written"
    };
    Ok((
        JobOutcome::Done {
            job_id: job.id,
            writes: 1,
        },
        said,
    ))
}

/// Ends a push whose setting is gone, with nothing written.
async fn end_unpushed(s: &AppState, job: &ClaimedJob) -> Result<JobOutcome> {
    let now = s.clock.now();
    let report = JobReport {
        tenant_id: job.tenant_id,
        job_id: job.id,
        event_ids: Vec::new(),
        received_at: now,
        addresses: Vec::new(),
        push: Vec::new(),
    };
    if !s
        .queue
        .complete(job, now, Outcome::NotFound, &report)
        .await?
    {
        return Ok(JobOutcome::LostLease { job_id: job.id });
    }
    Ok(JobOutcome::NotFound { job_id: job.id })
}

/// Puts a push that did not complete back: read again later when the provider has not
/// confirmed it yet, otherwise where the retry policy says.
async fn failed(
    s: &AppState,
    job: &ClaimedJob,
    (provider, credential): (Provider, suppress::Provider),
    e: suppress::Error,
    now: Millis,
) -> Result<(JobOutcome, &'static str)> {
    let job_id = job.id;
    if let suppress::Error::NotConfirmedYet { retry_after, .. } = &e {
        let at = now + retry_after.as_millis() as i64;
        let why = "written; the provider's read does not show it yet";
        s.queue
            .requeue(job_id, Requeue::Recheck(at), why, now)
            .await?;
        return Ok((JobOutcome::Rechecking { job_id, at }, "waiting"));
    }
    let throttled = matches!(e, suppress::Error::RateLimited { .. });
    let failure = match &e {
        suppress::Error::RateLimited {
            retry_after: Some(wait),
            ..
        } => Failure::RateLimited(*wait),
        _ => Failure::Failed,
    };
    if throttled {
        s.push_pacer
            .throttled(job.tenant_id, credential, now.as_i64() as u64);
    }
    let attempt = Attempt {
        attempts: job.attempts,
        age: Duration::from_millis((now - job.created_at).max(0) as u64),
        now,
        jitter: rand::rng().random_range(0.8..1.2),
    };
    let how = policy_of(s).after_failure(failure, attempt);
    let msg = e.to_string();
    s.queue.requeue(job_id, how, &msg, now).await?;
    Ok(match how {
        Requeue::Bury => {
            tracing::error!(attempts = job.attempts, error = %one_line(&msg),
                "push is dead; re-drive it with `optsync retry`");
            (JobOutcome::Dead { job_id, error: msg }, "dead")
        }
        Requeue::Defer(at) => {
            s.store.defer_pushes(job.tenant_id, provider, at).await?;
            let wait = Duration::from_millis((at - now).max(0) as u64);
            (JobOutcome::Deferred { job_id, wait }, "throttled")
        }
        _ => {
            tracing::warn!(attempt = job.attempts, error = %one_line(&msg), "push failed; will retry");
            let said = if throttled { "throttled" } else { "retrying" };
            (JobOutcome::Retrying { job_id, error: msg }, said)
        }
    })
}
