//! Jobs in flight: a worker claims a job whenever one of the process's in-flight slots is
//! free and runs it as a task of its own, so a job waiting on Keap holds a slot, not the
//! worker. Each app stays bounded by its credential's pacer and by the claim's per-tenant
//! cap (`OPTSYNC_TENANT_WORKERS`). A job's task that panics is logged with its job, counted
//! and left claimed until its lease runs out, as after a crash.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinSet};

use super::Worker;
use crate::logfmt::one_line;

/// Why the claim loop looked up from waiting.
enum Stir {
    Look,
    Stop,
}

impl Worker {
    /// Works until `shutdown` turns true, holding at most one of `slots` per job it runs;
    /// wakes on new work, on a job of its own ending, and polls for jobs other processes
    /// enqueued or whose time came. On shutdown, lets its jobs in hand finish.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, slots: Arc<Semaphore>) {
        let mut flying = JoinSet::new();
        while !*shutdown.borrow() {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                Some(ended) = flying.join_next(), if !flying.is_empty() => {
                    landed(ended);
                    continue;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() { break; }
                    continue;
                }
            };
            // Registered before the claim, so a job stored while the claim runs still wakes
            // this worker instead of waiting for the next poll.
            let wake = self.state.queue.woken();
            tokio::pin!(wake);
            wake.as_mut().enable();
            if self.launch(slot, &mut flying).await {
                continue;
            }
            if let Stir::Stop = self.idle(wake, &mut shutdown, &mut flying).await {
                break;
            }
        }
        while let Some(ended) = flying.join_next().await {
            landed(ended);
        }
    }

    /// Claims a job and starts it holding `slot`; false when nothing is due (or the queue
    /// could not be reached).
    async fn launch(&self, slot: OwnedSemaphorePermit, flying: &mut JoinSet<()>) -> bool {
        match self.claim().await {
            Ok(Some(job)) => {
                let worker = self.clone();
                flying.spawn(crate::current_job::scope(async move {
                    let _slot = slot;
                    if let Err(e) = worker.run_job(&job).await {
                        tracing::error!(error = %one_line(&e), "a job could not be ended");
                    }
                }));
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %one_line(&e), "worker could not reach the queue");
                false
            }
        }
    }

    /// Waits for new work, the poll, a job of its own ending or the stop signal.
    async fn idle(
        &self,
        wake: Pin<&mut Notified<'_>>,
        shutdown: &mut watch::Receiver<bool>,
        flying: &mut JoinSet<()>,
    ) -> Stir {
        tokio::select! {
            _ = wake => Stir::Look,
            _ = tokio::time::sleep(self.state.settings.poll) => Stir::Look,
            Some(ended) = flying.join_next(), if !flying.is_empty() => {
                landed(ended);
                Stir::Look
            }
            changed = shutdown.changed() => match changed {
                Ok(()) => Stir::Look,
                Err(_) => Stir::Stop,
            },
        }
    }
}

/// A job's task ended: a panic is counted and said (the panic hook has logged it with its
/// job); the job waits for its lease to run out.
fn landed(ended: Result<(), JoinError>) {
    let Err(e) = ended else { return };
    if e.is_panic() {
        metrics::counter!(crate::telemetry::WORKER_PANICS).increment(1);
        tracing::error!("a job's task panicked; its job is taken over when its lease runs out");
    }
}
