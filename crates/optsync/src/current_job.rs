//! Which job the running worker task holds, so a panic can be logged with its job without
//! relying on a span being enabled. Set by the worker, read by the supervisor's panic log.

use std::cell::Cell;

tokio::task_local! {
    static JOB: Cell<i64>;
}

/// Runs a worker with a slot for its job.
pub async fn scope<F: std::future::Future>(worker: F) -> F::Output {
    JOB.scope(Cell::new(0), worker).await
}

/// Notes the job this worker task now holds (nothing outside [`scope`]).
pub fn holding(job: i64) {
    let _ = JOB.try_with(|j| j.set(job));
}

/// The job held by the task running on this thread, if any.
pub fn held() -> Option<i64> {
    JOB.try_with(Cell::get).ok().filter(|j| *j > 0)
}
