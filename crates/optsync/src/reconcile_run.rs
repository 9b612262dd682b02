//! `optsync reconcile APP` as one run: the sweep, then every job of that app run here to its
//! end — waiting out Keap's rate limits rather than leaving deferred jobs to a `serve` that
//! may not be running — and only that app's jobs, so that the writes it reports are that
//! app's. What the run is doing is told to a watcher as it goes (the CLI draws it).

use std::time::Duration;

use crate::clock::{Clock, Millis, Now as _};
use crate::error::Result;
use crate::reconcile::{SweepOptions, SweepReport, sweep};
use crate::state::AppState;
use crate::store::{TenantId, TenantRow};
use crate::worker::{JobOutcome, Worker};

/// How often the sweep's committed progress is read back while it pages.
const SWEEP_POLL: Duration = Duration::from_millis(250);
/// The longest single wait for a deferred job, so the watcher is told the time left.
const WAIT_STEP: Duration = Duration::from_secs(1);
/// The shortest: a job due but not claimable (its contact held by another worker) is looked
/// at again after this, not in a busy loop.
const WAIT_MIN: Duration = Duration::from_millis(100);

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Sweeping,
    RunningJobs,
    /// Every job due has run; the next may run at this time.
    Waiting {
        until: Millis,
    },
    Finished,
}

/// What a run has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    /// Contacts the sweep has scanned (committed pages; none for a dry run).
    pub contacts_scanned: i64,
    /// Contacts the address index knew before the sweep (its last full sweep); zero if none.
    pub contacts_known: i64,
    /// Keap calls of the sweep so far.
    pub sweep_calls: i64,
    /// Jobs of this app run to an end or a requeue by this run.
    pub jobs_run: u64,
    /// The app's sweep jobs still pending.
    pub jobs_left: i64,
    pub writes: u64,
    pub now: Millis,
}

/// What a run did: the sweep's report, and the jobs this run ran (all of them the app's).
#[derive(Debug, Clone)]
pub struct RunReport {
    pub sweep: SweepReport,
    pub writes: u64,
    pub dead: u64,
    pub blocked: u64,
    pub jobs_run: u64,
}

/// Sweeps `tenant`, then (unless a dry run) runs its jobs until none of the sweep's is left
/// pending; `watch` is told each step.
pub async fn run(
    state: &AppState,
    tenant: &TenantRow,
    opts: &SweepOptions,
    watch: &mut dyn FnMut(&Progress),
) -> Result<RunReport> {
    let mut p = Progress {
        phase: Phase::Sweeping,
        contacts_scanned: 0,
        contacts_known: state.store.indexed_contacts(tenant.id).await?,
        sweep_calls: 0,
        jobs_run: 0,
        jobs_left: 0,
        writes: 0,
        now: state.clock.now(),
    };
    watch(&p);
    let swept = sweep_watched(state, tenant, opts, &mut p, watch).await?;
    let mut report = RunReport {
        sweep: swept,
        writes: 0,
        dead: 0,
        blocked: 0,
        jobs_run: 0,
    };
    if !opts.dry_run {
        run_jobs(state, tenant.id, &mut report, &mut p, watch).await?;
    }
    p.phase = Phase::Finished;
    p.now = state.clock.now();
    watch(&p);
    Ok(report)
}

/// The sweep, its committed pages read back every [`SWEEP_POLL`] for the watcher. The two
/// run side by side (joined, not one inside the other's turn), so that a read waiting for a
/// connection never holds up the sweep that holds one.
async fn sweep_watched(
    state: &AppState,
    tenant: &TenantRow,
    opts: &SweepOptions,
    p: &mut Progress,
    watch: &mut dyn FnMut(&Progress),
) -> Result<SweepReport> {
    let (finished, mut ended) = tokio::sync::oneshot::channel::<()>();
    let sweeping = async {
        let r = sweep(state, tenant, opts).await;
        let _ = finished.send(());
        r
    };
    let polling = async {
        let mut tick = tokio::time::interval(SWEEP_POLL);
        loop {
            tokio::select! {
                _ = &mut ended => return Ok::<(), crate::error::Error>(()),
                _ = tick.tick() => {}
            }
            if let Some(row) = state.store.sweep(tenant.id).await? {
                p.contacts_scanned = row.contacts_scanned;
                p.sweep_calls = row.calls;
            }
            p.now = state.clock.now();
            watch(p);
        }
    };
    let (report, polled) = tokio::join!(sweeping, polling);
    let report = report?;
    polled?;
    p.contacts_scanned = report.contacts_scanned as i64;
    p.sweep_calls = report.calls as i64;
    Ok(report)
}

/// Runs the app's due jobs; when none is due but a sweep job is still pending (deferred for
/// Keap's rate limit, or retrying), waits for its time and goes on.
async fn run_jobs(
    state: &AppState,
    tenant: TenantId,
    report: &mut RunReport,
    p: &mut Progress,
    watch: &mut dyn FnMut(&Progress),
) -> Result<()> {
    let worker = Worker::new(state.clone());
    loop {
        p.phase = Phase::RunningJobs;
        while let Some(outcome) = worker.run_once_in(tenant).await? {
            tally(report, &outcome);
            p.jobs_run = report.jobs_run;
            p.writes = report.writes;
            p.now = state.clock.now();
            watch(p);
        }
        let left = state.store.sweep_jobs_left(tenant).await?;
        p.jobs_left = left.left;
        let Some(until) = left.next_at else {
            return Ok(());
        };
        p.phase = Phase::Waiting { until };
        p.now = state.clock.now();
        watch(p);
        wait_until(&state.clock, until).await;
    }
}

fn tally(report: &mut RunReport, outcome: &JobOutcome) {
    report.jobs_run += 1;
    match outcome {
        JobOutcome::Done { writes, .. } => report.writes += *writes as u64,
        JobOutcome::Dead { .. } => report.dead += 1,
        JobOutcome::Blocked { .. } => report.blocked += 1,
        _ => {}
    }
}

/// Waits until `at`, between [`WAIT_MIN`] and [`WAIT_STEP`] at a time. A manual
/// clock (the tests') is moved forward instead: time is theirs to give.
async fn wait_until(clock: &Clock, at: Millis) {
    let left = Duration::from_millis((at - clock.now()).max(0) as u64).max(WAIT_MIN);
    if clock.is_manual() {
        clock.advance(left);
    } else {
        tokio::time::sleep(left.min(WAIT_STEP)).await;
    }
}
