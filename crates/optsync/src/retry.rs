//! Putting a stuck job back in the queue: the one operation `optsync retry` and the
//! console's retry button both call, so both accept the same jobs. The re-drive itself (and
//! the workers' wake-up) is the queue service's [`crate::queue::Queue::retry`].

use crate::clock::Now as _;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::JobId;

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
    /// What a job must be to be retried, in the words the CLI and the console answer with
    /// ([`crate::store::RETRYABLE_WORDS`], checked by a test).
    pub const NOT_RETRYABLE: &str = "not dead, blocked or pending";
}

/// Re-drives job `job` (dead, blocked or pending), or says why not. With `app`, only a job
/// of that app: the console names the app it shows.
pub async fn job(state: &AppState, job: JobId, app: Option<&str>) -> Result<Retried> {
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
    match state.queue.retry(job, state.clock.now()).await {
        Ok(()) => Ok(Retried::Requeued),
        // The job exists (checked above), so the queue refused it for its state.
        Err(Error::BadInput(_)) => Ok(Retried::NotRetryable),
        Err(e) => Err(e),
    }
}

/// Re-drives every dead job; how many.
pub async fn dead(state: &AppState) -> Result<usize> {
    state.queue.retry_dead(state.clock.now()).await
}

#[cfg(test)]
mod tests {
    use super::Retried;

    #[test]
    fn refusal_names_the_retryable_states_of_the_store() {
        assert_eq!(
            Retried::NOT_RETRYABLE,
            format!("not {}", crate::store::RETRYABLE_WORDS)
        );
    }
}
