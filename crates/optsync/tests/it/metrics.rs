//! `/metrics`: served on the admin listener only, parsed as Prometheus exposition format by a
//! parser crate, and its numbers the ones the test produced — on both backends, and with
//! two `optsync serve` processes on one PostgreSQL database (counters per process, summed;
//! gauges read from the store, the same on both). Real processes, so each has its own
//! recorder.

use std::collections::HashMap;
use std::time::Duration;

use keap::EmailStatus;
use keap_sim::{KeapSim, SimEvent};
use prometheus_parse::{Sample, Scrape, Value};

use crate::processes::{
    add_tenant, count, free_port, serve_env, serve_with, wait_ready, wait_until_all_honoured,
};
use crate::{Db, KEY, TempDir, fresh_database, on_both_backends, post_to};

/// One scrape, parsed.
async fn scrape(admin: u16) -> Vec<Sample> {
    let r = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format")
        .samples
}

/// The value of the samples named `metric` whose labels include `labels`, summed.
fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => 0.0,
        })
        .sum()
}

/// Observations in a histogram (its `+Inf` bucket).
fn observations(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .filter_map(|s| match &s.value {
            Value::Histogram(b) => b
                .iter()
                .find(|h| h.less_than.is_infinite())
                .map(|h| h.count),
            _ => None,
        })
        .sum()
}

fn contacts(sim: &KeapSim, n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| {
            let e = format!("m{i}@example.com");
            let id = sim.add_contact(
                &e,
                Some(&format!("m{i}@relay.example")),
                None,
                EmailStatus::SingleOptIn,
            );
            sim.event(&e, SimEvent::Set(EmailStatus::Manual)).unwrap();
            id
        })
        .collect()
}

async fn metrics_count_what_happened(db: Db) {
    let dir = TempDir::new("metrics");
    let database_url = fresh_database(db, dir.path()).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let (port, admin) = (free_port(), free_port());
    let (store, post_url) = add_tenant(
        &database_url,
        dir.path(),
        &sim,
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    // A 429 makes the pacer treat its longest window as full: a second, not a minute.
    let env = [("OPTSYNC_KEAP_LIMITS", "100000/s")];
    let mut child = serve_env(
        dir.path(),
        &database_url,
        port,
        "m",
        false,
        Some(admin),
        &env,
    );
    wait_ready(port).await;
    // Keap answers the first three calls 429.
    sim.inject_fault(keap_sim::FaultKind::TooManyRequests, 3);
    let ids = contacts(&sim, 30);
    for id in &ids {
        let (s, _) = post_to(&post_url, &[("contactId", &id.to_string())]).await;
        assert_eq!(s, 200);
    }
    let wrong = post_url.replace("auth=", "auth=x");
    for _ in 0..5 {
        assert_eq!(post_to(&wrong, &[("contactId", "1")]).await.0, 401);
    }
    let hook = format!("http://127.0.0.1:{port}/hooks/esp/postmark/acme");
    for _ in 0..2 {
        assert_eq!(post_to(&hook, &[("x", "y")]).await.0, 401, "not configured");
    }
    wait_until_all_honoured(&store, Duration::from_secs(60)).await;
    let m = scrape(admin).await;
    // Not on the listener Keap and the providers reach, asked while that listener is up (it
    // answers its own routes) and the admin listener serves the metrics.
    let public = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("the hook listener answers");
    assert_eq!(public.status(), 404, "/metrics must not be public");
    let public_body = public.text().await.unwrap();
    assert!(
        !public_body.contains("optsync_"),
        "/metrics must not be public: {public_body}"
    );
    assert_eq!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap()
            .status(),
        200,
        "the hook listener was up when asked"
    );
    child.kill().unwrap();
    let _ = child.wait();

    let route = "/process_optout.php";
    assert_eq!(
        value(
            &m,
            "optsync_hook_requests_total",
            &[("route", route), ("status", "200")]
        ),
        30.0
    );
    assert_eq!(
        value(
            &m,
            "optsync_hook_requests_total",
            &[("route", route), ("status", "401")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "optsync_events_total",
            &[("source", "keap_post"), ("kind", "opt_out")]
        ),
        30.0
    );
    assert_eq!(
        value(
            &m,
            "optsync_webhook_refusals_total",
            &[("provider", "postmark"), ("reason", "unauthorized")]
        ),
        2.0
    );
    let done = count(&store, "SELECT COUNT(*) FROM jobs WHERE state = 'done'").await;
    assert_eq!(done, 30);
    assert_eq!(
        value(&m, "optsync_jobs", &[("app", "acme"), ("state", "done")]),
        30.0
    );
    assert_eq!(
        value(&m, "optsync_jobs_run_total", &[("outcome", "done")]),
        30.0
    );
    assert_eq!(
        observations(
            &m,
            "optsync_time_to_honour_seconds",
            &[("source", "keap_post")]
        ),
        30.0
    );
    assert_eq!(
        value(&m, "optsync_keap_calls_total", &[]),
        sim.stats().total_calls() as f64,
        "every Keap call counted, by the emulator's count"
    );
    assert_eq!(value(&m, "optsync_keap_throttled_total", &[]), 3.0);
    assert!(
        value(
            &m,
            "optsync_last_keap_post_timestamp_seconds",
            &[("app", "acme")]
        ) > 1.7e9
    );
    let token = post_url.split("auth=").nth(1).unwrap();
    logs_are_json_lines_with_their_spans(&dir.path().join("serve-m.log"), token);
}

/// OPTSYNC_LOG_FORMAT=json: every line is a JSON object, and a line inside a job or a
/// request carries that span's fields.
fn logs_are_json_lines_with_their_spans(path: &std::path::Path, token: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let said = |msg: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?} line"))
            .clone()
    };
    let job = said("job done");
    let span = &job["span"];
    assert_eq!(span["name"], "job");
    assert!(
        span["job"].is_number() && span["tenant"].is_number(),
        "{job}"
    );
    assert!(
        span["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("contact:")),
        "{job}"
    );
    let post = said("opt-out post accepted");
    assert_eq!(post["span"]["route"], "/process_optout.php", "{post}");
    assert!(
        !text.contains(token),
        "the hook token never reaches the logs"
    );
}
on_both_backends!(metrics_count_what_happened);

/// Two processes on one PostgreSQL: the counters of each add up to what was sent, and the
/// store's gauges are the same on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_add_up() {
    let dir = TempDir::new("metrics2");
    let database_url = fresh_database(Db::Postgres, dir.path()).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let (p1, p2, a1, a2) = (free_port(), free_port(), free_port(), free_port());
    let (store, post_url) = add_tenant(
        &database_url,
        dir.path(),
        &sim,
        &format!("http://127.0.0.1:{p1}"),
    )
    .await;
    let mut a = serve_with(dir.path(), &database_url, p1, "a", false, Some(a1));
    let mut b = serve_with(dir.path(), &database_url, p2, "b", false, Some(a2));
    wait_ready(p1).await;
    wait_ready(p2).await;
    let urls = [
        post_url.clone(),
        post_url.replace(&format!(":{p1}/"), &format!(":{p2}/")),
    ];
    let ids = contacts(&sim, 40);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            post_to(&urls[i % 2], &[("contactId", &id.to_string())])
                .await
                .0,
            200
        );
    }
    wait_until_all_honoured(&store, Duration::from_secs(60)).await;
    let (ma, mb) = (scrape(a1).await, scrape(a2).await);
    a.kill().unwrap();
    b.kill().unwrap();
    let _ = (a.wait(), b.wait());
    let both = |metric: &str, labels: &[(&str, &str)]| {
        value(&ma, metric, labels) + value(&mb, metric, labels)
    };
    let mut per = HashMap::new();
    per.insert(
        "a",
        value(&ma, "optsync_events_total", &[("source", "keap_post")]),
    );
    per.insert(
        "b",
        value(&mb, "optsync_events_total", &[("source", "keap_post")]),
    );
    assert_eq!(per["a"], 20.0, "{per:?}");
    assert_eq!(per["b"], 20.0, "{per:?}");
    assert_eq!(both("optsync_jobs_run_total", &[("outcome", "done")]), 40.0);
    for m in [&ma, &mb] {
        assert_eq!(
            value(m, "optsync_jobs", &[("app", "acme"), ("state", "done")]),
            40.0
        );
    }
    assert_eq!(
        both("optsync_keap_calls_total", &[]),
        sim.stats().total_calls() as f64
    );
}

/// The metrics the alert rules and the operator rely on, each against what this test made
/// happen: `optsync_stuck_subjects` (blocked opt-outs: Keap refuses the REST PATCH and
/// XML-RPC is off), `optsync_keap_daily_quota_remaining` (the day's allowance less every call
/// Keap saw) and the sweep counters (a scheduled full sweep finds the manual opt-outs).
/// `optsync_keap_throttled_total` is checked with the other counters above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_stuck_subjects_quota_and_sweeps() {
    let dir = TempDir::new("metrics3");
    let database_url = fresh_database(Db::Sqlite, dir.path()).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    sim.configure(|c| c.rest_opt_out = keap_sim::RestOptOut::Reject);
    sim.set_xmlrpc_available(false);
    let (port, admin) = (free_port(), free_port());
    let (store, _) = add_tenant(
        &database_url,
        dir.path(),
        &sim,
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    contacts(&sim, 5); // opted out by hand in Keap: only a sweep finds them
    for i in 0..2 {
        sim.add_contact(
            &format!("clean{i}@example.com"),
            None,
            None,
            EmailStatus::SingleOptIn,
        );
    }
    let env = [("OPTSYNC_KEAP_LIMITS", "100000/min,30000/day")];
    let mut child = serve_env(
        dir.path(),
        &database_url,
        port,
        "m3",
        true,
        Some(admin),
        &env,
    );
    wait_ready(port).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&store, "SELECT COUNT(*) FROM jobs WHERE state = 'blocked'").await < 5
        || count(
            &store,
            "SELECT COUNT(*) FROM sweeps WHERE state = 'finished'",
        )
        .await
            < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep's jobs never all blocked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = scrape(admin).await;
    let keap_saw = sim.stats().total_calls();
    child.kill().unwrap();
    let _ = child.wait();
    let app = [("app", "acme")];
    assert_eq!(
        value(
            &m,
            "optsync_stuck_subjects",
            &[("app", "acme"), ("state", "blocked")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "optsync_stuck_subjects",
            &[("app", "acme"), ("state", "dead")]
        ),
        0.0
    );
    assert_eq!(
        value(&m, "optsync_keap_daily_quota_remaining", &app),
        (30_000 - keap_saw) as f64,
        "the day's allowance less the {keap_saw} calls Keap saw"
    );
    assert_eq!(value(&m, "optsync_sweep_contacts_total", &app), 7.0);
    assert_eq!(value(&m, "optsync_sweep_jobs_queued_total", &app), 5.0);
    assert!(value(&m, "optsync_sweep_pages_total", &app) >= 1.0);
}
