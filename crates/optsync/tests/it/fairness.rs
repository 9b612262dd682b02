//! Fair shares: one tenant's backlog of 2,000 jobs does not delay another tenant's opt-outs
//! beyond a job or two — claims take tenants in turns. On a fixed clock: each job "costs"
//! a fixed step of time, so the time to honour is counted in jobs, not in machine speed.

use optsync::clock::Now as _;
use std::time::Duration;

use keap::{ContactId, EmailStatus, OptOutMethod};
use keap_sim::SimEvent;
use optsync::clock::Clock;
use optsync::store::{EventPayload, NewEvent, Subject};
use optsync::tenant::{StoredCredential, TenantSpec};

use crate::{Db, KEY, Options, TestApp, on_both_backends, sim_on};

const T0: u64 = 1_800_000_000_000;
const FLOOD_KEY: &str = "KeapAK-f100df100df100df100df100df100df100df100df100df100d0";
/// What one job is taken to cost in time.
const STEP: Duration = Duration::from_millis(250);
/// Posts to the quiet tenant, one a second.
const POSTS: usize = 20;

/// Adds an app on the second key.
async fn add_app(t: &TestApp, app: &str) -> optsync::store::TenantRow {
    let spec = TenantSpec {
        app: app.into(),
        keap_base_url: t.sim.crm_url(),
        credential: StoredCredential::ApiKey {
            key: FLOOD_KEY.into(),
        },
        legacy_auth: false,
        opt_out_method: OptOutMethod::Auto,
        allow_http: true,
    };
    t.service.tenants().add(spec).await.unwrap().0
}

/// Queues `n` opt-out jobs for a second tenant, each for a real contact.
async fn flood(t: &TestApp, n: usize) {
    let tenant = add_app(t, "flood").await;
    for i in 0..n {
        let email = format!("flood.{i}@example.com");
        let id = t.sim.add_contact(&email, None, None, EmailStatus::Manual);
        let subject = Subject::Contact(ContactId::new(id).unwrap());
        let ev = NewEvent::new(
            tenant.id,
            EventPayload::KeapPost {
                subject,
                addresses: Default::default(),
            },
            t.state.clock.now(),
        );
        t.state.store.accept(&ev).await.unwrap();
    }
}

/// The service and keap-sim on `clock`, the emulator taking the flooding tenant's key too.
async fn two_keys_on(db: Db, clock: &Clock) -> TestApp {
    let options = Options {
        clock: clock.clone(),
        sim: Some(sim_on(clock, &[KEY, FLOOD_KEY]).await),
        ..Options::default()
    };
    TestApp::spawn_with(db, options).await
}

/// The quiet tenant's times to honour (ms), posts arriving once a second while the worker
/// runs a job per step.
async fn quiet_tenant_latencies(db: Db, backlog: usize) -> Vec<i64> {
    let clock = Clock::manual(T0);
    let t = two_keys_on(db, &clock).await;
    flood(&t, backlog).await;
    let steps_per_post = (Duration::from_secs(1).as_millis() / STEP.as_millis()) as usize;
    for i in 0..POSTS {
        // Keap posts for a contact that opted out: its stop status is there to honour.
        let (id, emails) = t.contact(&format!("quiet{i}"), 2);
        t.sim
            .event(&emails[0], SimEvent::Set(EmailStatus::Manual))
            .unwrap();
        let (status, _) = t.post(&[("contactId", &id.to_string())]).await;
        assert_eq!(status, 200);
        for _ in 0..steps_per_post {
            t.worker.run_once().await.unwrap();
            clock.advance(STEP);
        }
    }
    // Whatever is left of the quiet tenant's work (nothing, if turns are fair).
    while t.count("SELECT COUNT(*) FROM events e JOIN tenants t ON t.id = e.tenant_id WHERE t.app = 'acme' AND e.honoured_at IS NULL").await > 0 {
        t.worker.run_once().await.unwrap();
        clock.advance(STEP);
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT e.received_at, e.honoured_at FROM events e JOIN tenants t ON t.id = e.tenant_id WHERE t.app = 'acme' ORDER BY e.id",
    )
    .fetch_all(t.state.store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), POSTS);
    rows.into_iter().map(|(r, h)| h - r).collect()
}

fn p99(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)]
}

async fn a_backlog_does_not_delay_another_tenant(db: Db) {
    let idle = p99(quiet_tenant_latencies(db, 0).await);
    let loaded = p99(quiet_tenant_latencies(db, 2_000).await);
    // Taking turns, a quiet tenant's job waits for at most one job of the flooding tenant
    // per worker; first come, first served it would wait for all 2,000 (500 s).
    assert!(
        loaded <= idle + 2 * STEP.as_millis() as i64,
        "p99 time to honour: {loaded} ms behind a 2,000-job backlog vs {idle} ms idle"
    );
}
on_both_backends!(a_backlog_does_not_delay_another_tenant);

/// A tenant holding its share of workers gets no more, however many jobs it has due; the
/// other tenant's job is claimed instead.
async fn one_tenant_holds_at_most_its_share_of_workers(db: Db) {
    let clock = Clock::manual(T0);
    let t = two_keys_on(db, &clock).await;
    flood(&t, 5).await;
    let flood_id = t.state.tenants.get("flood").await.unwrap().id;
    let store = &t.state.store;
    let now = clock.now();
    let first = store.claim(now, 60_000, 1).await.unwrap().unwrap();
    assert_eq!(first.tenant_id, flood_id);
    assert!(
        store.claim(now, 60_000, 1).await.unwrap().is_none(),
        "the flooding tenant already holds its one worker"
    );
    let (id, _) = t.contact("quiet", 1);
    t.post(&[("contactId", &id.to_string())]).await;
    let next = store.claim(now, 60_000, 1).await.unwrap().unwrap();
    assert_ne!(
        next.tenant_id, flood_id,
        "the other tenant's job is claimed"
    );
}
on_both_backends!(one_tenant_holds_at_most_its_share_of_workers);

/// A job whose credential has no room in Keap's limits (Keap keeps answering 429) is
/// deferred to when it will, not an attempt, and the tenant's other jobs are not claimed
/// before then. (The pacer's own "no room, come back later" is tested in the keap crate.)
async fn no_room_defers_the_tenant_without_holding_a_worker(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    // Keap says 429: the pacer backs off, and on a clock that stands still that pause is
    // time the credential has no room.
    t.sim.inject_fault(keap_sim::FaultKind::TooManyRequests, 1);
    let (a, _) = t.contact("a", 1);
    let (b, _) = t.contact("b", 1);
    t.post(&[("contactId", &a.to_string())]).await;
    t.post(&[("contactId", &b.to_string())]).await;
    let out = t.worker.run_once().await.unwrap().unwrap();
    assert!(
        matches!(out, optsync::worker::JobOutcome::Deferred { .. }),
        "{out:?}"
    );
    assert!(
        t.worker.run_once().await.unwrap().is_none(),
        "the tenant is paced: its other job is not claimed to find that out"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM jobs WHERE state = 'pending'")
            .await,
        2,
        "a deferral is not an attempt"
    );
    clock.advance(Duration::from_secs(61));
    let done = t.worker.drain().await.unwrap();
    assert_eq!(done.len(), 2, "{done:?}");
}
on_both_backends!(no_room_defers_the_tenant_without_holding_a_worker);

/// With many apps, most of them idle: every app with work due is served once before any is
/// served twice, the one served longest ago first, and idle apps change nothing; a job whose
/// worker's lease ran out is taken over in its app's turn.
async fn many_apps_take_turns(db: Db) {
    let clock = Clock::manual(T0);
    let t = two_keys_on(db, &clock).await;
    let mut busy = Vec::new();
    for i in 0..210 {
        let tenant = add_app(&t, &format!("app{i:03}")).await;
        if i % 21 == 20 {
            busy.push(tenant.id);
        }
    }
    let store = &t.state.store;
    let now = clock.now();
    for (n, tenant) in busy.iter().enumerate() {
        for k in 0..2 {
            let contact = ContactId::new(1_000 + 2 * n as i64 + k).unwrap();
            let payload = EventPayload::KeapPost {
                subject: Subject::Contact(contact),
                addresses: Default::default(),
            };
            store
                .accept(&NewEvent::new(*tenant, payload, now))
                .await
                .unwrap();
        }
    }
    let mut rounds = Vec::new();
    for _ in 0..2 {
        let mut round = Vec::new();
        for _ in 0..busy.len() {
            round.push(
                store
                    .claim(now, 60_000, 10)
                    .await
                    .unwrap()
                    .unwrap()
                    .tenant_id,
            );
        }
        rounds.push(round);
    }
    assert_eq!(rounds[0], busy, "each app once, in turn");
    assert_eq!(rounds[1], rounds[0], "then again, in the same turns");
    assert!(store.claim(now, 60_000, 10).await.unwrap().is_none());
    clock.advance(Duration::from_secs(61));
    let retaken = store.claim(clock.now(), 60_000, 10).await.unwrap().unwrap();
    assert_eq!(
        (retaken.tenant_id, retaken.attempts),
        (busy[0], 2),
        "a lapsed lease is taken over, in the turn of the app served longest ago"
    );
}
on_both_backends!(many_apps_take_turns);
