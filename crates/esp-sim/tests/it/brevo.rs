//! Brevo: the campaign blocklist and per-sender transactional blocks, with the fields of
//! Brevo's update-contact reference and the blocked-contacts calls.

use serde_json::json;

use crate::{advance, http, list, sim, status_json};

const KEY: &str = "xkeysib-test";

fn req(sim: &esp_sim::EspSim, method: reqwest::Method, tail: &str) -> reqwest::RequestBuilder {
    http()
        .request(method, sim.url(&format!("/brevo/v3{tail}")))
        .header("api-key", KEY)
}

#[tokio::test]
async fn both_blocklists_are_written_and_read_back() {
    let sim = sim(|b| b.credential("brevo", KEY)).await;
    let body = json!({"emailBlacklisted": true, "smtpBlacklistSender": ["news@relay.example", "billing@relay.example"]});
    let (s, v) = status_json(
        req(
            &sim,
            reqwest::Method::PUT,
            "/contacts/jane@example.com?identifierType=email_id",
        )
        .json(&body)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (404, "document_not_found")
    );
    let (s, v) = status_json(
        req(&sim, reqwest::Method::POST, "/contacts")
            .json(&json!({"email": "jane@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);
    assert!(v["id"].as_u64().is_some());
    let r = req(
        &sim,
        reqwest::Method::PUT,
        "/contacts/jane@example.com?identifierType=email_id",
    )
    .json(&body)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (_, v) = status_json(
        req(&sim, reqwest::Method::GET, "/contacts/jane@example.com")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["emailBlacklisted"], true);
    let (_, v) = status_json(
        req(
            &sim,
            reqwest::Method::GET,
            "/smtp/blockedContacts?senders=news@relay.example",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["contacts"][0]["senderEmail"], "news@relay.example");
    let entries = list(&sim, "brevo").await["entries"].clone();
    let scopes: Vec<(String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["list"].as_str().unwrap().into(),
                e["sender"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(scopes.len(), 3);
    assert!(scopes.contains(&("campaigns".into(), "".into())));
    assert!(scopes.contains(&("transactional".into(), "billing@relay.example".into())));

    let r = req(
        &sim,
        reqwest::Method::DELETE,
        "/smtp/blockedContacts/jane@example.com",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = req(
        &sim,
        reqwest::Method::DELETE,
        "/smtp/blockedContacts/jane@example.com",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        list(&sim, "brevo").await["entries"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the campaign block stays"
    );
}

#[tokio::test]
async fn keys_are_checked_and_the_documented_150_per_second_applies() {
    let sim = sim(|b| b.credential("brevo", KEY)).await;
    let (s, v) = status_json(
        http()
            .get(sim.url("/brevo/v3/contacts/1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["code"].as_str().unwrap()), (401, "unauthorized"));
    for _ in 0..150 {
        let r = req(&sim, reqwest::Method::GET, "/contacts/1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
    let r = req(&sim, reqwest::Method::GET, "/contacts/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    advance(&sim, 1_000).await;
    assert_eq!(
        req(&sim, reqwest::Method::GET, "/contacts/1")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}
