//! The control API: faults, outages, body limits, lists and counts, and the binary's --help.

use std::time::Duration;

use esp_sim::{EspSim, FaultKind, Provider, SimClock};
use serde_json::json;

use crate::{http, list, sim};

const KEY: &str = "SG.key";

fn add(sim: &EspSim, email: &str) -> reqwest::RequestBuilder {
    http()
        .post(sim.url("/sendgrid/v3/asm/suppressions/global"))
        .bearer_auth(KEY)
        .json(&json!({"recipient_emails": [email]}))
}

#[tokio::test]
async fn counted_faults_then_an_outage_until_lifted() {
    let sim = sim(|b| b.credential("sendgrid", KEY)).await;
    let r = http()
        .post(sim.url("/sim/faults"))
        .json(&json!({"provider": "sendgrid", "kind": "429", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    http()
        .put(sim.url("/sim/outage"))
        .json(&json!({"provider": "sendgrid", "kind": "500"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        add(&sim, "a@example.com")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        429
    );
    for _ in 0..3 {
        assert_eq!(
            add(&sim, "a@example.com")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            500
        );
    }
    http()
        .put(sim.url("/sim/outage"))
        .json(&json!({"provider": "sendgrid", "kind": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        add(&sim, "a@example.com")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    let l = list(&sim, "sendgrid").await;
    assert_eq!(l["calls"], 5);
    assert_eq!(l["entries"].as_array().unwrap().len(), 1);
    let r = http()
        .post(sim.url("/sim/faults"))
        .json(&json!({"provider": "nope", "kind": "500"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let stats: serde_json::Value = http()
        .get(sim.url("/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["calls"]["sendgrid POST /sendgrid/v3/asm/suppressions/global"],
        5
    );
}

#[tokio::test]
async fn a_timeout_fault_holds_then_answers_504_and_big_bodies_get_413() {
    let sim = EspSim::builder()
        .config(esp_sim::SimConfig {
            fault_timeout_delay: Duration::from_millis(200),
            max_body_bytes: 1024,
            ..Default::default()
        })
        .credential("sendgrid", KEY)
        .clock(SimClock::system())
        .start()
        .await
        .unwrap();
    sim.inject_fault(Provider::Sendgrid, FaultKind::Timeout, 1);
    let started = std::time::Instant::now();
    assert_eq!(
        add(&sim, "a@example.com")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        504
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    let big: Vec<String> = (0..100).map(|i| format!("user{i}@example.com")).collect();
    let r = http()
        .post(sim.url("/sendgrid/v3/asm/suppressions/global"))
        .bearer_auth(KEY)
        .json(&json!({"recipient_emails": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = http()
        .post(sim.url("/sim/clock"))
        .json(&json!({"advance_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "the system clock cannot be moved");
    let r = http().get(sim.url("/sim/lists/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn the_binary_documents_every_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_esp-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--credential",
        "--credentials-file",
        "--ses-suppressed-reasons",
        "--rate-limit",
        "--mailgun-domain",
        "--postmark-stream",
        "--postmark-activation-delay-ms",
        "--postmark-max-per-call",
        "--max-body-bytes",
        "--fault-timeout-ms",
        "--manual-clock",
        "--readd",
        "/ses/REGION",
        "/mailgun/eu",
        "/sim/lists/PROVIDER",
    ] {
        assert!(help.contains(flag), "{flag} is not documented");
    }
}

/// Re-adding an address is undocumented for SendGrid, Mailgun and Mandrill: under `Refuse`
/// each answers its plausible refusal, and the entry stays.
#[tokio::test]
async fn the_readd_switch_makes_a_second_add_a_refusal() {
    let sim = sim(|b| {
        b.credential("sendgrid", KEY)
            .credential("mailgun", "mg")
            .credential("mandrill", "md")
    })
    .await;
    sim.configure(|c| c.readd = esp_sim::ReAdd::Refuse);
    let echo = |r: reqwest::Response| async {
        r.json::<serde_json::Value>().await.unwrap()["recipient_emails"].clone()
    };
    assert_eq!(
        echo(add(&sim, "a@example.com").send().await.unwrap()).await,
        json!(["a@example.com"])
    );
    assert_eq!(
        echo(add(&sim, "a@example.com").send().await.unwrap()).await,
        json!([])
    );

    let mg = || {
        http()
            .post(sim.url("/mailgun/us/v3/mg.example.com/unsubscribes"))
            .basic_auth("api", Some("mg"))
            .form(&[("address", "a@example.com")])
            .send()
    };
    assert_eq!(mg().await.unwrap().status().as_u16(), 200);
    let r = mg().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("Address already exists"));

    let md = || {
        http()
            .post(sim.url("/mandrill/api/1.0/rejects/add"))
            .json(&json!({"key": "md", "email": "a@example.com"}))
            .send()
    };
    let added = |r: reqwest::Response| async {
        r.json::<serde_json::Value>().await.unwrap()["added"].clone()
    };
    assert_eq!(added(md().await.unwrap()).await, json!(true));
    assert_eq!(added(md().await.unwrap()).await, json!(false));
    for p in [Provider::Sendgrid, Provider::Mailgun, Provider::Mandrill] {
        assert_eq!(sim.entries(p).len(), 1, "{p}");
    }
}
