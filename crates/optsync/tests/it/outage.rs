//! A Keap outage survived: Keap fails every call for two (simulated) hours — 500s, gateway
//! timeouts, dropped connections and 429s in turn — while 200 opt-out posts and signed
//! SendGrid webhooks keep arriving. The backoff keeps trying (a job is buried only after a
//! horizon of days, not after its eighth attempt), `optsync doctor` says what is failing,
//! and once Keap returns every accepted event is honoured and no job is dead.

use std::time::Duration;

use keap_sim::{FaultKind, SimEvent};
use optsync::clock::Clock;

use crate::esp::{configure, post_raw, sendgrid_sign};
use crate::{Db, KEY, Options, TestApp, on_both_backends, sim_on};

const T0: u64 = 1_800_000_000_000;
const POSTS: usize = 200;
const OUTAGE: Duration = Duration::from_secs(2 * 3600);

/// A SendGrid unsubscribe for `email`, signed, sent now.
async fn sendgrid_unsubscribe(t: &TestApp, email: &str, id: usize) {
    let now = t.state.clock.epoch_ms() / 1000;
    let body = format!(
        r#"[{{"email":"{email}","timestamp":{now},"event":"unsubscribe","sg_event_id":"outage-{id}"}}]"#
    )
    .into_bytes();
    let ts = now.to_string();
    let headers = vec![
        (
            "x-twilio-email-event-webhook-signature",
            sendgrid_sign(&ts, &body),
        ),
        ("x-twilio-email-event-webhook-timestamp", ts),
        ("content-type", "application/json".to_string()),
    ];
    let url = format!("{}/hooks/esp/sendgrid/{}", t.base, t.app);
    let (s, out) = post_raw(&url, &headers, body).await;
    assert_eq!(s, 200, "{out}");
}

/// Every way Keap fails in an outage.
const EVERY_FAULT: &[FaultKind] = &[
    FaultKind::ServerError,
    FaultKind::Timeout,
    FaultKind::Drop,
    FaultKind::TooManyRequests,
];

/// Keap failing (`faults` in turn) while `posts` opt-outs arrive over `over`, the workers
/// driven after each; returns every contact's addresses.
async fn arrive_during_outage(
    t: &TestApp,
    clock: &Clock,
    (posts, over): (usize, Duration),
    faults: &[FaultKind],
) -> Vec<Vec<String>> {
    t.sim
        .configure(|c| c.fault_timeout_delay = Duration::from_millis(5));
    t.sim.set_outage(faults);
    let step = over / posts as u32;
    let mut people = Vec::new();
    for i in 0..posts {
        let (id, emails) = t.contact(&format!("p{i}"), 2);
        if i % 10 == 0 {
            // The provider reports the unsubscribe of Email 2.
            sendgrid_unsubscribe(t, &emails[1], i).await;
        } else {
            // The person clicked Keap's unsubscribe link (Email), and Keap posted.
            t.sim.event(&emails[0], SimEvent::ManualOptOut).unwrap();
            let (s, _) = t.post(&[("contactId", &id.to_string())]).await;
            assert_eq!(s, 200, "intake never waits on Keap");
        }
        people.push(emails);
        t.worker.drain().await.unwrap();
        clock.advance(step);
    }
    people
}

/// The service on `clock` against keap-sim at a service key's real limits.
async fn service(db: Db, clock: &Clock) -> TestApp {
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            sim: Some(sim_on(clock, &[KEY]).await),
            // The service's defaults: 8 attempts, and never buried before 72 h.
            bury_after: Duration::from_secs(72 * 3600),
            ..Options::default()
        },
    )
    .await;
    configure(&t).await;
    t
}

fn assert_all_stopped(t: &TestApp, people: &[Vec<String>]) {
    for emails in people {
        for s in t.statuses(emails) {
            assert!(
                s.is_some_and(|s| s.is_stop()),
                "{emails:?} still mailable: {s:?}"
            );
        }
    }
}

async fn keap_down_for_two_hours_loses_nothing(db: Db) {
    let clock = Clock::manual(T0);
    let t = service(db, &clock).await;
    let people = arrive_during_outage(&t, &clock, (POSTS, OUTAGE), EVERY_FAULT).await;

    assert_eq!(
        t.count("SELECT COUNT(*) FROM jobs WHERE state = 'dead'")
            .await,
        0
    );
    assert!(
        t.count("SELECT MAX(attempts) FROM jobs").await > t.state.settings.max_attempts,
        "jobs went past max_attempts and still were not buried"
    );
    let tenant = t.state.tenants.get(&t.app).await.unwrap();
    let d = optsync::doctor::examine(&t.state, &tenant, None)
        .await
        .unwrap();
    let failing = d
        .checks
        .iter()
        .find(|c| c.what == "failing jobs")
        .expect("the doctor reports failing jobs");
    assert_eq!(failing.ok, Some(false), "{}", failing.detail);
    assert!(
        failing.detail.contains("none is buried before"),
        "{}",
        failing.detail
    );

    // Keap returns. The backoff is capped at an hour: within two, everything is honoured.
    t.sim.set_outage(&[]);
    for _ in 0..24 {
        clock.advance(Duration::from_secs(300));
        t.worker.drain().await.unwrap();
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events WHERE honoured_at IS NULL")
            .await,
        0,
        "every accepted event is honoured"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM jobs WHERE state = 'dead'")
            .await,
        0
    );
    assert_all_stopped(&t, &people);
}
on_both_backends!(keap_down_for_two_hours_loses_nothing);

/// After two hours down, the jobs' backoff has reached up to an hour; yet once Keap
/// answers, the backlog clears at Keap's pace within a minute: one backed-off job per app
/// tries Keap at least every half minute, and the first to go through makes the rest due.
/// The workers are driven the way their poll would, a quarter second at a time. (No 429s
/// here: a rate-limited job is deferred rather than backed off.)
async fn keap_back_after_two_hours_clears_within_a_minute(db: Db) {
    let clock = Clock::manual(T0);
    let t = service(db, &clock).await;
    let faults = [FaultKind::ServerError, FaultKind::Timeout, FaultKind::Drop];
    // Posts in the first hour; in the second, only retries (every three minutes).
    let people = arrive_during_outage(&t, &clock, (40, OUTAGE / 2), &faults).await;
    for _ in 0..20 {
        t.worker.drain().await.unwrap();
        clock.advance(OUTAGE / 40);
    }
    let unhonoured = "SELECT COUNT(*) FROM events WHERE honoured_at IS NULL";
    assert_eq!(t.count(unhonoured).await, 40, "the outage held them back");
    let backed_off = "SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND run_at > $1";
    let far = sqlx::query_scalar::<_, i64>(backed_off)
        .bind(clock.epoch_ms() + 600_000)
        .fetch_one(t.state.store.pool())
        .await
        .unwrap();
    assert!(far >= 10, "{far} jobs backed off for more than ten minutes");
    t.sim.set_outage(&[]);
    let back = clock.epoch_ms();
    while t.count(unhonoured).await > 0 && clock.epoch_ms() - back <= 60_000 {
        t.worker.drain().await.unwrap();
        clock.advance(Duration::from_millis(250));
    }
    let took = Duration::from_millis((clock.epoch_ms() - back) as u64);
    assert_eq!(
        t.count(unhonoured).await,
        0,
        "every event honoured within a minute of Keap's return (driven for {took:?})"
    );
    assert_all_stopped(&t, &people);
}
on_both_backends!(keap_back_after_two_hours_clears_within_a_minute);
