//! Mandrill rejects/add, as the official SDKs document it: the key in the body; an
//! allowlisted address is not added.

use serde_json::json;

use crate::{http, list, sim, status_json};

const KEY: &str = "md-test-key";

fn call(sim: &esp_sim::EspSim, method: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
    http()
        .post(sim.url(&format!("/mandrill/api/1.0/rejects/{method}")))
        .json(&body)
}

#[tokio::test]
async fn add_list_and_delete_as_the_sdks_document() {
    let sim = sim(|b| b.credential("mandrill", KEY)).await;
    let body = json!({"key": KEY, "email": "example@example.com", "comment": "opted out", "subaccount": "cust-123"});
    let (s, v) = status_json(call(&sim, "add", body).send().await.unwrap()).await;
    assert_eq!(
        (s, v),
        (200, json!({"email": "example@example.com", "added": true}))
    );
    let (_, v) = status_json(
        call(
            &sim,
            "list.json",
            json!({"key": KEY, "subaccount": "cust-123"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(v[0]["email"], "example@example.com");
    assert_eq!(v[0]["detail"], "opted out");
    assert_eq!(
        list(&sim, "mandrill").await["entries"][0]["subaccount"],
        "cust-123"
    );
    let (_, v) = status_json(
        call(&sim, "list", json!({"key": KEY}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        v,
        json!([]),
        "the account's own list is separate from the subaccount's"
    );
    let del = json!({"key": KEY, "email": "example@example.com", "subaccount": "cust-123"});
    let (_, v) = status_json(call(&sim, "delete", del).send().await.unwrap()).await;
    assert_eq!(v["deleted"], true);
}

#[tokio::test]
async fn an_allowlisted_address_is_a_no_op_and_bad_keys_are_500s() {
    let sim = sim(|b| b.credential("mandrill", KEY)).await;
    let r = http()
        .post(sim.url("/sim/mandrill/allowlist"))
        .json(&json!({"email": "Vip@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (s, v) = status_json(
        call(&sim, "add", json!({"key": KEY, "email": "vip@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v),
        (200, json!({"email": "vip@example.com", "added": false}))
    );
    assert!(
        list(&sim, "mandrill").await["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (s, v) = status_json(
        call(
            &sim,
            "add",
            json!({"key": "wrong", "email": "a@example.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (
            s,
            v["name"].as_str().unwrap(),
            v["status"].as_str().unwrap()
        ),
        (500, "Invalid_Key", "error")
    );
    let (s, v) = status_json(
        call(&sim, "add", json!({"key": KEY, "email": "not an address"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["name"].as_str().unwrap()), (500, "ValidationError"));
}
