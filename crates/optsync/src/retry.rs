//! Putting a stuck job back in the queue: the one operation `optsync retry` and the
//! console's retry button both call, so both accept the same jobs and both wake the workers.

use crate::error::Result;
use crate::state::AppState;

/// What a retry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// Back in the queue, attempts reset.
    Requeued,
    /// The job is running or finished: there is nothing to retry.
    NotRetryable,
    /// No such job (for that app, when one was named).
    NoSuchJob,
}

impl Retried {
    /// What a job must be to be retried, in the words the CLI and the console answer with.
    pub const NOT_RETRYABLE: &str = "not dead, blocked or pending";
}

/// Re-drives job `job` (dead, blocked or pending), or says why not. With `app`, only a job
/// of that app: the console names the app it shows.
pub async fn job(state: &AppState, job: i64, app: Option<&str>) -> Result<Retried> {
    let owner = state.store.job_tenant(job).await?;
    let Some(owner) = owner else {
        return Ok(Retried::NoSuchJob);
    };
    if let Some(app) = app {
        let tenant = state.store.tenant_by_app(app).await?;
        if tenant.map(|t| t.id) != Some(owner) {
            return Ok(Retried::NoSuchJob);
        }
    }
    if !state.store.retry_job(job, state.clock.epoch_ms()).await? {
        return Ok(Retried::NotRetryable);
    }
    state.wake.notify_waiters();
    Ok(Retried::Requeued)
}

/// Re-drives every dead job; how many.
pub async fn dead(state: &AppState) -> Result<usize> {
    let n = state.store.retry_dead(state.clock.epoch_ms()).await?;
    if n > 0 {
        state.wake.notify_waiters();
    }
    Ok(n)
}
