//! Metrics, through the `metrics` facade into one Prometheus recorder per process, rendered
//! at `/metrics` on the admin listener. Counters and histograms count what this process did
//! (Prometheus sums instances); the gauges about the queue and each tenant are read from the
//! store at every scrape and written beside them ([`crate::exposition`]), so several
//! instances on one database report the same numbers and a removed tenant's go with it.
//!
//! Names and units follow Prometheus conventions: `_total` counters, `_seconds` histograms
//! and timestamps, base units. The README lists them with example alert rules.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::Result;
use crate::exposition::Gauge;
use crate::keap_clients::KeapClients;
use crate::store::{EventSource, JobState, Store};

/// Hook requests answered, by route and status.
pub const HOOK_REQUESTS: &str = "optsync_hook_requests_total";
/// Events stored (not duplicates), by source and kind.
pub const EVENTS: &str = "optsync_events_total";
/// Jobs run, by what came of them.
pub const JOBS_RUN: &str = "optsync_jobs_run_total";
pub const JOB_DURATION: &str = "optsync_job_duration_seconds";
/// Workers that panicked (each was replaced; its job is taken over after its lease).
pub const WORKER_PANICS: &str = "optsync_worker_panics_total";
/// From an event's arrival to its job's completion, by the event's source.
pub const TIME_TO_HONOUR: &str = "optsync_time_to_honour_seconds";
/// Pushes to a sending provider's suppression list run, by provider and outcome.
pub const PUSHES: &str = "optsync_push_total";
/// Provider webhooks refused, by provider and reason.
pub const WEBHOOK_REFUSALS: &str = "optsync_webhook_refusals_total";
pub const SWEEP_PAGES: &str = "optsync_sweep_pages_total";
pub const SWEEP_CONTACTS: &str = "optsync_sweep_contacts_total";
pub const SWEEP_JOBS: &str = "optsync_sweep_jobs_queued_total";
/// Jobs by tenant and state (from the store).
pub const JOBS: &str = "optsync_jobs";
/// Contacts or addresses whose job is blocked or dead, by tenant and state (from the store).
pub const STUCK_SUBJECTS: &str = "optsync_stuck_subjects";
pub const LAST_POST: &str = "optsync_last_keap_post_timestamp_seconds";
pub const LAST_SWEEP: &str = "optsync_last_sweep_finished_timestamp_seconds";
/// Keap calls left today on each tenant's credential, as this process's pacer counts them.
pub const QUOTA_LEFT: &str = "optsync_keap_daily_quota_remaining";
/// 1 while Keap refuses an OAuth app's grant for good (it must be connected again), else 0.
pub const RECONNECT_NEEDED: &str = "optsync_keap_reconnect_needed";
/// When the certificate the hook listener serves expires (ACME or certificate files).
pub const TLS_CERT_EXPIRY: &str = "optsync_tls_certificate_expiry_timestamp_seconds";
/// Whether the store answered this scrape.
pub const STORE_UP: &str = "optsync_store_up";

/// Buckets for every `_seconds` histogram: from a fast job to the ten business days
/// CAN-SPAM allows.
const SECONDS_BUCKETS: [f64; 16] = [
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21_600.0,
    172_800.0,
    1_209_600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (an embedding program that installed its
/// own first keeps it; ours then renders only what it recorded itself).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
        }
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        TLS_CERT_EXPIRY,
        Unit::Seconds,
        "When the certificate the hook listener serves expires (seconds since the epoch)."
    );
    describe_counter!(
        HOOK_REQUESTS,
        "Hook requests answered, by route and status."
    );
    describe_counter!(
        EVENTS,
        "Events stored (duplicates excluded), by source and kind."
    );
    describe_counter!(JOBS_RUN, "Jobs run by this process, by outcome.");
    describe_counter!(
        WORKER_PANICS,
        "Workers of this process that panicked and were replaced."
    );
    describe_histogram!(JOB_DURATION, Unit::Seconds, "Time one job run took.");
    describe_histogram!(
        TIME_TO_HONOUR,
        Unit::Seconds,
        "From an event's arrival to its job's completion, by the event's source."
    );
    describe_counter!(
        "optsync_keap_calls_total",
        "Keap calls by API, operation and HTTP status (error: no answer)."
    );
    describe_counter!("optsync_keap_throttled_total", "Keap answers of 429.");
    describe_counter!(
        WEBHOOK_REFUSALS,
        "Provider webhooks refused, by provider and reason."
    );
    describe_counter!(SWEEP_PAGES, "Contact pages read by reconciliation sweeps.");
    describe_counter!(
        SWEEP_CONTACTS,
        "Contacts examined by reconciliation sweeps."
    );
    describe_counter!(SWEEP_JOBS, "Jobs queued by reconciliation sweeps.");
    describe_counter!(
        PUSHES,
        "Pushes to a sending provider's suppression list, by provider and outcome."
    );
}

/// The exposition text: everything recorded, the build, the process, and the gauges read
/// from the store, with `optsync_store_up` saying whether that read worked. It always
/// answers: while the store is down the store's gauges are left out, the rest is there.
/// Takes the store and the Keap clients, not the whole state: the queue service counts
/// events here, and the state holds the queue.
pub async fn render(store: &Store, clients: &KeapClients) -> String {
    let mut out = handle().render();
    crate::exposition::build_info(&mut out);
    crate::exposition::process(&mut out);
    let up = match store_gauges(store, clients).await {
        Ok(gauges) => {
            for g in &gauges {
                g.write(&mut out);
            }
            1.0
        }
        Err(e) => {
            tracing::error!(error = %crate::logfmt::one_line(&e), "metrics: the store is unavailable");
            0.0
        }
    };
    Gauge::new(
        STORE_UP,
        "1 if the last read of the store for /metrics worked, else 0.",
    )
    .sample(vec![], up)
    .write(&mut out);
    out
}

/// The per-tenant gauges, from one read of the store (and each tenant's pacer) at this
/// scrape: a removed tenant has none.
async fn store_gauges(store: &Store, clients: &KeapClients) -> Result<Vec<Gauge>> {
    let mut jobs = Gauge::new(JOBS, "Jobs in the store, by tenant and state.");
    let mut stuck = Gauge::new(
        STUCK_SUBJECTS,
        "Contacts or addresses whose job is blocked or dead, by tenant and state.",
    );
    let mut last_post = Gauge::new(LAST_POST, "When the last Keap post arrived.");
    let mut last_sweep = Gauge::new(LAST_SWEEP, "When the last sweep finished.");
    let mut quota = Gauge::new(
        QUOTA_LEFT,
        "Keap calls left today on the tenant's credential.",
    );
    let mut reconnect = Gauge::new(
        RECONNECT_NEEDED,
        "1 while Keap refuses the app's OAuth grant (its jobs are blocked until it is connected again).",
    );
    for t in store.overview().await? {
        let app = || vec![("app", t.app().to_string())];
        let with = |k: &'static str, v: String| vec![("app", t.app().to_string()), (k, v)];
        reconnect.sample(app(), if t.reconnect_needed { 1.0 } else { 0.0 });
        for &s in JobState::ALL {
            let n = t.jobs.get(&s).copied().unwrap_or(0);
            jobs.sample(with("state", s.to_string()), n as f64);
        }
        stuck.sample(with("state", "blocked".into()), t.blocked_subjects as f64);
        stuck.sample(with("state", "dead".into()), t.dead_subjects as f64);
        if let Some(at) = t.last_post_at {
            last_post.sample(app(), at.as_i64() as f64 / 1000.0);
        }
        if let Some(at) = t.last_sweep_at {
            last_sweep.sample(app(), at.as_i64() as f64 / 1000.0);
        }
        let left = clients.daily_remaining(&t.tenant).ok().flatten();
        if let Some(left) = left {
            quota.sample(app(), f64::from(left));
        }
    }
    Ok(vec![jobs, stuck, last_post, last_sweep, quota, reconnect])
}

/// Counts the events a commit stored (duplicates are not new events).
pub fn events_stored(source: EventSource, kind: crate::store::EventKind) {
    metrics::counter!(EVENTS, "source" => source.to_string(), "kind" => kind.to_string())
        .increment(1);
}
