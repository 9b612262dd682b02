//! Injected faults: each kind, in order, for the given count.

use std::time::Duration;

use keap_sim::{FaultKind, KeapSim, SimConfig};
use serde_json::json;

use crate::{KEY, http};

async fn status_of(sim: &KeapSim) -> Result<u16, reqwest::Error> {
    http()
        .get(format!("{}/crm/rest/v2/contacts", sim.base_url()))
        .header("X-Keap-API-Key", KEY)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn each_fault_kind_answers_as_configured_then_service_resumes() {
    let config = SimConfig {
        fault_timeout_delay: Duration::from_millis(200),
        ..SimConfig::default()
    };
    let sim = KeapSim::builder()
        .config(config)
        .api_key(KEY)
        .start()
        .await
        .unwrap();
    for (kind, count) in [("429", 2), ("500", 1), ("401", 1), ("timeout", 1)] {
        let r = http()
            .post(format!("{}/sim/faults", sim.base_url()))
            .json(&json!({"kind": kind, "count": count}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(status_of(&sim).await.unwrap());
    }
    assert_eq!(seen, vec![429, 429, 500, 401, 504, 200]);
    // An injected 429 is not a throttle decision.
    assert_eq!(sim.stats().throttled, 0);

    sim.inject_fault(FaultKind::Drop, 1);
    let err = status_of(&sim)
        .await
        .expect_err("the connection is dropped");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(
        status_of(&sim).await.unwrap(),
        200,
        "the server survives a dropped connection"
    );

    let r = http()
        .post(format!("{}/sim/faults", sim.base_url()))
        .json(&json!({"kind": "meteor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
