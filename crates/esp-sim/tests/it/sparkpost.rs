//! SparkPost's suppression list: the bulk upsert example of `suppression-list.apib` (both
//! types), its documented 400 messages, and 5xx partial inserts.

use esp_sim::{FaultKind, Provider};
use serde_json::json;

use crate::{http, list, sim, status_json};

const KEY: &str = "14ac5499cfdd2bb2859e4476d2e5b1d2bad079bf";

fn req(sim: &esp_sim::EspSim, method: reqwest::Method, tail: &str) -> reqwest::RequestBuilder {
    http()
        .request(
            method,
            sim.url(&format!("/sparkpost/api/v1/suppression-list{tail}")),
        )
        .header("Authorization", KEY)
}

#[tokio::test]
async fn the_documented_bulk_upsert_and_lookups() {
    let sim = sim(|b| b.credential("sparkpost", KEY)).await;
    let body = json!({"recipients": [
        {"recipient": "rcpt_1@example.com", "type": "transactional", "description": "User requested to not receive any transactional emails."},
        {"recipient": "rcpt_2@example.com", "type": "non_transactional"}
    ]});
    let (s, v) = status_json(
        req(&sim, reqwest::Method::PUT, "/")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"results": {"message": "Suppression List successfully updated"}})
        )
    );

    let both = json!({"recipients": [
        {"recipient": "rcpt_3@example.com", "type": "transactional"},
        {"recipient": "rcpt_3@example.com", "type": "non_transactional"}
    ]});
    assert_eq!(
        req(&sim, reqwest::Method::PUT, "/")
            .json(&both)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let (s, v) = status_json(
        req(&sim, reqwest::Method::GET, "/rcpt_3@example.com")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let types: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["transactional", "non_transactional"]);

    let r = req(&sim, reqwest::Method::DELETE, "/rcpt_3@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "both types when none is given");
    let (s, v) = status_json(
        req(&sim, reqwest::Method::GET, "/rcpt_3@example.com")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["errors"][0]["message"].as_str().unwrap()),
        (404, "Recipient could not be found")
    );

    let (s, v) = status_json(
        req(&sim, reqwest::Method::PUT, "/single@example.com")
            .json(&json!({"description": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["errors"][0]["message"].as_str().unwrap()),
        (400, "Must supply a suppression type")
    );
    let one = json!({"type": "non_transactional", "description": "opted out"});
    let (s, _) = status_json(
        req(&sim, reqwest::Method::PUT, "/single@example.com")
            .json(&one)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let sub = req(&sim, reqwest::Method::GET, "/single@example.com")
        .header("X-MSYS-SUBACCOUNT", "7")
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status().as_u16(), 404, "a subaccount's list is its own");
    let entries = list(&sim, "sparkpost").await["entries"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 3);
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "non_transactional" && e["address"] == "single@example.com")
    );
}

#[tokio::test]
async fn malformed_bodies_get_the_documented_400s_and_raw_keys_only() {
    let sim = sim(|b| b.credential("sparkpost", KEY)).await;
    let bad_type = json!({"recipients": [{"recipient": "a@example.com", "type": "marketing"}]});
    let (s, v) = status_json(
        req(&sim, reqwest::Method::PUT, "/")
            .json(&bad_type)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["errors"][0]["message"].as_str().unwrap()),
        (
            400,
            "Type must be one of: 'transactional', 'non_transactional'"
        )
    );
    let bad_rcpt = json!({"recipients": [{"recipient": "nope", "type": "transactional"}, {"recipient": "a@example.com", "type": "transactional"}]});
    let (s, v) = status_json(
        req(&sim, reqwest::Method::PUT, "/")
            .json(&bad_rcpt)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("PUT body contains 1 invalid or malformed recipient(s)")
    );
    let bearer = http()
        .put(sim.url("/sparkpost/api/v1/suppression-list/"))
        .bearer_auth(KEY)
        .json(&bad_type)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 401, "the raw key, no Bearer");
    assert!(
        list(&sim, "sparkpost").await["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_5xx_may_leave_a_partial_insert_that_a_resubmission_completes() {
    let sim = sim(|b| b.credential("sparkpost", KEY)).await;
    let body = json!({"recipients": (0..4).map(|i| json!({"recipient": format!("r{i}@example.com"), "type": "transactional"})).collect::<Vec<_>>()});
    sim.inject_fault(Provider::Sparkpost, FaultKind::Partial, 1);
    let r = req(&sim, reqwest::Method::PUT, "/")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(
        sim.entries(Provider::Sparkpost).len(),
        2,
        "only some were inserted"
    );
    let r = req(&sim, reqwest::Method::PUT, "/")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        sim.entries(Provider::Sparkpost).len(),
        4,
        "the upsert is idempotent"
    );
}
