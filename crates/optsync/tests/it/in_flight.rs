//! Jobs in flight, not workers: one worker keeps many jobs waiting on a slow Keap at once,
//! up to `OPTSYNC_JOBS_IN_FLIGHT` in all and `OPTSYNC_TENANT_WORKERS` per app. What runs is
//! read from the store (jobs `running`) while the workers work; Keap answers each call in
//! 400 ms, so a job stays in flight long enough to be seen.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keap::{ContactId, EmailStatus, OptOutMethod};
use optsync::clock::{Clock, Now as _};
use optsync::config::Settings;
use optsync::store::{EventPayload, NewEvent, Subject};
use optsync::tenant::{StoredCredential, TenantSpec};

use crate::{Db, KEY, Options, TestApp, on_both_backends, sim_on};

const OTHER_KEY: &str = "KeapAK-0e40e40e40e40e40e40e40e40e40e40e40e40e40e40e40e4";

/// The service with keap-sim answering slowly, and a second app of its own key.
async fn slow_keap(db: Db, settings: fn(&mut Settings)) -> TestApp {
    let clock = Clock::system();
    let sim = sim_on(&clock, &[KEY, OTHER_KEY]).await;
    sim.configure(|c| c.latency = Duration::from_millis(400));
    let t = TestApp::spawn_with(
        db,
        Options {
            clock,
            sim: Some(sim),
            settings,
            ..Options::default()
        },
    )
    .await;
    t.service
        .tenants()
        .add(TenantSpec {
            app: "other".into(),
            keap_base_url: t.sim.crm_url(),
            credential: StoredCredential::ApiKey {
                key: OTHER_KEY.into(),
            },
            legacy_auth: false,
            opt_out_method: OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    t
}

/// Queues `n` Keap posts to `app`, each for a contact that opted out in Keap.
async fn posts(t: &TestApp, app: &str, n: usize) {
    let tenant = t.state.tenants.get(app).await.unwrap().id;
    for i in 0..n {
        let email = format!("{app}.{i}@example.com");
        let id = t.sim.add_contact(&email, None, None, EmailStatus::Manual);
        let subject = Subject::Contact(ContactId::new(id).unwrap());
        let ev = NewEvent::new(
            tenant,
            EventPayload::KeapPost {
                subject,
                addresses: Default::default(),
            },
            t.state.clock.now(),
        );
        t.state.store.accept(&ev).await.unwrap();
    }
}

/// Runs one worker until every job is done; returns the most jobs seen running at once,
/// per app.
async fn most_in_flight(t: &TestApp, jobs: i64) -> HashMap<String, i64> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(optsync::supervise::workers(t.state.clone(), 1, stopped));
    let mut most: HashMap<String, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while t
        .count("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
        .await
        < jobs
    {
        assert!(Instant::now() < deadline, "the jobs did not finish");
        let running: Vec<(String, i64)> = sqlx::query_as(
            "SELECT t.app, COUNT(*) FROM jobs j JOIN tenants t ON t.id = j.tenant_id
              WHERE j.state = 'running' GROUP BY t.app",
        )
        .fetch_all(t.state.store.pool())
        .await
        .unwrap();
        let total = running.iter().map(|(_, n)| n).sum();
        for (app, n) in running.into_iter().chain([("(all)".to_string(), total)]) {
            let m = most.entry(app).or_default();
            *m = (*m).max(n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    workers.await.unwrap();
    most
}

async fn one_worker_keeps_many_jobs_waiting_on_keap(db: Db) {
    let t = slow_keap(db, |s| {
        s.jobs_in_flight = 5;
        s.tenant_workers = 16;
    })
    .await;
    posts(&t, "acme", 8).await;
    let most = most_in_flight(&t, 8).await;
    assert_eq!(most["(all)"], 5, "five in flight, no more: {most:?}");
}
on_both_backends!(one_worker_keeps_many_jobs_waiting_on_keap);

async fn no_app_takes_more_than_its_share_in_flight(db: Db) {
    let t = slow_keap(db, |s| {
        s.jobs_in_flight = 64;
        s.tenant_workers = 2;
    })
    .await;
    posts(&t, "acme", 6).await;
    posts(&t, "other", 6).await;
    let most = most_in_flight(&t, 12).await;
    assert_eq!(most["acme"], 2, "{most:?}");
    assert_eq!(most["other"], 2, "{most:?}");
    assert_eq!(most["(all)"], 4, "both apps at once: {most:?}");
}
on_both_backends!(no_app_takes_more_than_its_share_in_flight);
