//! Pacing at a scaled-down profile: the emulator and the client share the same small limits.

use std::sync::Arc;
use std::time::Duration;

use keap::{ContactId, Credential, KeapClient, Limits, Pacer, PacingConfig, WindowLimit};
use keap_sim::{FaultKind, KeapSim, Throttle};

use crate::KEY;

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

async fn setup() -> (KeapSim, KeapClient, Arc<Pacer>, Vec<ContactId>) {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .throttle(Throttle::Custom {
            product: scaled(),
            tenant: None,
        })
        .seed(50, 4)
        .start()
        .await
        .unwrap();
    let pacer = Arc::new(Pacer::new(PacingConfig {
        margin: Duration::from_millis(30),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(400),
        ..PacingConfig::new(scaled())
    }));
    let client = KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
        .pacer(pacer.clone())
        .build()
        .unwrap();
    let ids = (1..=50).map(|i| ContactId::new(i).unwrap()).collect();
    (sim, client, pacer, ids)
}

async fn run(client: &KeapClient, ids: &[ContactId], calls: usize, workers: usize) {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, ids) = (client.clone(), ids.to_vec());
        tasks.push(tokio::spawn(async move {
            for i in (w..calls).step_by(workers) {
                client
                    .contact(ids[i % ids.len()])
                    .await
                    .expect("paced call succeeds");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn two_hundred_paced_calls_see_no_429() {
    let (sim, client, pacer, ids) = setup().await;
    run(&client, &ids, 200, 8).await;
    let stats = sim.stats();
    assert_eq!(stats.total_calls(), 200);
    assert_eq!(stats.throttled, 0, "the emulator refused nothing");
    assert_eq!(pacer.counters(), (200, 0));
    assert_eq!(pacer.budget().daily_remaining, Some(100_000 - 200));
}

#[tokio::test]
async fn injected_429s_are_backed_off_and_the_work_completes() {
    let (sim, client, pacer, ids) = setup().await;
    sim.inject_fault(FaultKind::TooManyRequests, 4);
    run(&client, &ids, 40, 4).await;
    assert_eq!(pacer.counters().1, 4);
    assert_eq!(sim.stats().total_calls(), 44);
    assert_eq!(
        sim.stats().throttled,
        0,
        "no real throttle was hit while backing off"
    );
}
