//! `/metrics` when it matters: 200 with `optsync_store_up 0` and the process's own numbers
//! while the store is down; a removed tenant's gauges gone at the next scrape; the build.

use prometheus_parse::{Sample, Scrape};

use crate::{Db, Options, TestApp, on_both_backends};

async fn scrape(t: &TestApp) -> Vec<Sample> {
    let admin = t.admin.as_ref().unwrap();
    let r = reqwest::get(format!("{admin}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format")
        .samples
}

fn has(samples: &[Sample], metric: &str, app: Option<&str>) -> bool {
    samples
        .iter()
        .any(|s| s.metric == metric && app.is_none_or(|a| s.labels.get("app") == Some(a)))
}

fn gauge(samples: &[Sample], metric: &str) -> f64 {
    match samples
        .iter()
        .find(|s| s.metric == metric)
        .map(|s| &s.value)
    {
        Some(prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v)) => *v,
        other => panic!("{metric}: {other:?}"),
    }
}

async fn metrics_answer_while_the_store_is_down(db: Db) {
    let t = TestApp::spawn_with(
        db,
        Options {
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let (id, _) = t.contact("m", 1);
    assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 200);
    let up = scrape(&t).await;
    assert_eq!(gauge(&up, "optsync_store_up"), 1.0);
    assert!(has(&up, "optsync_jobs", Some("acme")));
    let build = up
        .iter()
        .find(|s| s.metric == "optsync_build_info")
        .expect("build info");
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    assert!(build.labels.get("commit").is_some_and(|c| !c.is_empty()));
    for m in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(has(&up, m, None), "{m}");
    }

    // A removed tenant's gauges are gone at the next scrape.
    t.service.tenants().remove("acme").await.unwrap();
    let after = scrape(&t).await;
    assert!(!has(&after, "optsync_jobs", Some("acme")));
    assert!(!has(&after, "optsync_stuck_subjects", Some("acme")));

    // The store goes away: still 200, the counters and the process, no store gauges.
    t.state.store.close().await;
    let down = scrape(&t).await;
    assert_eq!(gauge(&down, "optsync_store_up"), 0.0);
    assert!(has(&down, "optsync_hook_requests_total", None));
    assert!(has(&down, "process_open_fds", None));
    assert!(!has(&down, "optsync_jobs", None));
}
on_both_backends!(metrics_answer_while_the_store_is_down);
