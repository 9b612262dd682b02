//! esp-sim's wire behaviour, exercised over real HTTP on 127.0.0.1 with the requests each
//! provider's documentation shows.

mod brevo;
mod control;
mod mailgun;
mod mailjet;
mod mandrill;
mod postmark;
mod sendgrid;
mod ses;
mod sparkpost;

use esp_sim::{EspSim, SimBuilder, SimClock};
use serde_json::Value;

/// 2026-11-30T12:00:00Z.
pub const T0: u64 = 1_795_953_600_000;

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

/// An emulator on a manual clock at [`T0`], built by `f`.
pub async fn sim(f: impl FnOnce(SimBuilder) -> SimBuilder) -> EspSim {
    f(EspSim::builder().clock(SimClock::manual(T0)))
        .start()
        .await
        .expect("sim starts")
}

/// `GET /sim/lists/{provider}`.
pub async fn list(sim: &EspSim, provider: &str) -> Value {
    http()
        .get(sim.url(&format!("/sim/lists/{provider}")))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json")
}

pub async fn advance(sim: &EspSim, ms: u64) {
    let r = http()
        .post(sim.url("/sim/clock"))
        .json(&serde_json::json!({"advance_ms": ms}))
        .send()
        .await
        .expect("clock");
    assert_eq!(r.status().as_u16(), 200);
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}
