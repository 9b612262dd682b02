//! Pacing at a scaled-down profile: the emulator and the client share the same small limits
//! and the same manual clock, so what decides is the windows' arithmetic, never how busy the
//! machine is. A paced call that does not fit is refused by the pacer with the wait it needs
//! (a manual clock does not move while a task sleeps); the driver moves the clock by exactly
//! that wait, as the service's worker reschedules a job.

use std::sync::Arc;
use std::time::Duration;

use keap::{
    Clock, ContactId, Credential, Error, KeapClient, Limits, Pacer, PacingConfig, WindowLimit,
};
use keap_sim::{FaultKind, KeapSim, Throttle};

use crate::KEY;

const T0: u64 = 1_796_083_200_000;

fn scaled() -> Limits {
    Limits {
        windows: vec![
            WindowLimit {
                limit: 10,
                length: Duration::from_millis(200),
            },
            WindowLimit {
                limit: 60,
                length: Duration::from_secs(1),
            },
        ],
        daily: Some(100_000),
    }
}

async fn setup() -> (KeapSim, KeapClient, Arc<Pacer>, Clock) {
    let clock = Clock::manual(T0);
    let sim = KeapSim::builder()
        .api_key(KEY)
        .clock(clock.clone())
        .throttle(Throttle::Custom {
            product: scaled(),
            tenant: None,
        })
        .seed(50, 4)
        .start()
        .await
        .unwrap();
    let pacer = Arc::new(Pacer::with_clock(
        PacingConfig {
            margin: Duration::from_millis(30),
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_millis(400),
            ..PacingConfig::new(scaled())
        },
        clock.clone(),
    ));
    let client = KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
        .pacer(pacer.clone())
        .build()
        .unwrap();
    (sim, client, pacer, clock)
}

/// `calls` contact reads, one after another; each refusal by the pacer moves the clock by
/// the wait it asked for. Returns how many times the pacer made the caller wait.
async fn run(client: &KeapClient, clock: &Clock, calls: u64) -> u64 {
    let mut waits = 0;
    for i in 0..calls {
        let id = ContactId::new(1 + (i % 50) as i64).unwrap();
        loop {
            match client.contact(id).await {
                Ok(_) => break,
                Err(Error::Throttled { retry_after, .. }) => {
                    assert!(!retry_after.is_zero(), "a refusal names a wait");
                    clock.advance(retry_after);
                    waits += 1;
                }
                Err(e) => panic!("call {i}: {e}"),
            }
        }
    }
    waits
}

#[tokio::test]
async fn two_hundred_paced_calls_see_no_429() {
    let (sim, client, pacer, clock) = setup().await;
    let waits = run(&client, &clock, 200).await;
    let stats = sim.stats();
    assert_eq!(stats.total_calls(), 200);
    assert_eq!(stats.throttled, 0, "the emulator refused nothing");
    assert_eq!(pacer.counters(), (200, 0));
    assert_eq!(pacer.budget().daily_remaining, Some(100_000 - 200));
    // Ten per 200 ms: call 191 cannot go before 19 windows have passed, and the pacer asks
    // for no more waiting than the windows and its margin need.
    let elapsed = clock.now_ms() - T0;
    assert!(waits > 0, "200 calls at once must be paced");
    assert!(
        (19 * 200..=19 * (200 + 30)).contains(&elapsed),
        "200 calls took {elapsed} ms of Keap's time"
    );
}

#[tokio::test]
async fn injected_429s_are_backed_off_and_the_work_completes() {
    let (sim, client, pacer, clock) = setup().await;
    sim.inject_fault(FaultKind::TooManyRequests, 4);
    run(&client, &clock, 40).await;
    assert_eq!(pacer.counters().1, 4);
    assert_eq!(sim.stats().total_calls(), 44);
    assert_eq!(
        sim.stats().throttled,
        0,
        "no real throttle was hit while backing off"
    );
    // After a 429 the pacer holds the credential back: the next call waits for the clock.
    sim.inject_fault(FaultKind::TooManyRequests, 1);
    let before = clock.now_ms();
    run(&client, &clock, 1).await;
    assert!(
        clock.now_ms() - before >= 25,
        "the call after a 429 went again without backing off"
    );
}
