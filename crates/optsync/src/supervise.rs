//! Keeping the workers up: each runs in a task of one set, and runs each job it claims in a
//! task of its own. A job's task that panics is logged (inside its job's span, so the log
//! line names the job) and counted by its worker; its job stays claimed until the lease runs
//! out, then another worker takes it, as after a crash. A worker that panics is counted and
//! replaced.

use std::sync::{Arc, Once};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::state::AppState;
use crate::worker::Worker;

/// Logs every panic through `tracing` (besides the default report on stderr), so that the
/// line carries the span it happened in: a worker's job, a request's route.
pub fn log_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            let job = crate::current_job::held();
            tracing::error!(job, panic = %crate::logfmt::one_line(&message), at, "panicked");
            previous(info);
        }));
    });
}

/// Runs `n` workers until `stop` turns true, replacing any that panics; together they
/// keep at most `jobs_in_flight` jobs running.
pub async fn workers(state: AppState, n: usize, stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(state.settings.jobs_in_flight.max(1)));
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(Worker::new(state.clone()).run(stop.clone(), slots.clone()));
    }
    while let Some(ended) = set.join_next().await {
        let Err(e) = ended else { continue };
        if !e.is_panic() {
            continue;
        }
        metrics::counter!(crate::telemetry::WORKER_PANICS).increment(1);
        if *stop.borrow() {
            continue;
        }
        tracing::error!("a worker panicked; starting another");
        set.spawn(Worker::new(state.clone()).run(stop.clone(), slots.clone()));
    }
}
