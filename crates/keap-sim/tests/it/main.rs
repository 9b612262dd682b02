//! keap-sim's wire behaviour, exercised over real HTTP on 127.0.0.1.

mod action_set;
mod auth;
mod conformance;
mod control;
mod faults;
mod oauth_flow;
mod rest;
mod throttle;
mod v2_strict;
mod xmlrpc;

use keap_sim::KeapSim;

pub const KEY: &str = "KeapAK-0123456789abcdef0123456789abcdef0123456789ab";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn sim() -> KeapSim {
    KeapSim::builder()
        .api_key(KEY)
        .start()
        .await
        .expect("sim starts")
}

/// POSTs an XML-RPC body with the API key and returns (status, content-type, body).
pub async fn xmlrpc_call(sim: &KeapSim, path: &str, body: &str) -> (u16, String, String) {
    let r = http()
        .post(format!("{}{}", sim.base_url(), path))
        .header("X-Keap-API-Key", KEY)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .expect("xml-rpc call");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.expect("body"))
}

pub async fn get_json(sim: &KeapSim, path: &str) -> (u16, serde_json::Value) {
    let r = http()
        .get(format!("{}{}", sim.base_url(), path))
        .header("X-Keap-API-Key", KEY)
        .send()
        .await
        .expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}
