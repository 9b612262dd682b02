//! Mailjet contact exclusion (`guides/_exclusionlist.md`: `{"IsExcludedFromCampaigns":"true"}`):
//! marketing only.

use serde_json::json;

use crate::{http, list, sim, status_json};

const PUBLIC: &str = "mj-public";
const PRIVATE: &str = "mj-private";

fn req(sim: &esp_sim::EspSim, method: reqwest::Method, tail: &str) -> reqwest::RequestBuilder {
    http()
        .request(method, sim.url(&format!("/mailjet/v3/REST/contact{tail}")))
        .basic_auth(PUBLIC, Some(PRIVATE))
}

#[tokio::test]
async fn the_guides_exclusion_call_marks_the_contact_for_campaigns_only() {
    let sim = sim(|b| b.credential("mailjet", &format!("{PUBLIC}:{PRIVATE}"))).await;
    let (s, _) = status_json(
        req(&sim, reqwest::Method::PUT, "/jane@example.com")
            .json(&json!({"IsExcludedFromCampaigns": "true"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404, "no such contact yet");
    let (s, v) = status_json(
        req(&sim, reqwest::Method::POST, "")
            .json(&json!({"Email": "jane@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(v["Data"][0]["IsExcludedFromCampaigns"], false);
    let (s, v) = status_json(
        req(&sim, reqwest::Method::PUT, "/jane@example.com")
            .json(&json!({"IsExcludedFromCampaigns": "true"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["Count"], 1);
    assert_eq!(v["Data"][0]["IsExcludedFromCampaigns"], true);
    assert_ne!(v["Data"][0]["ExclusionFromCampaignsUpdatedAt"], "");
    let id = v["Data"][0]["ID"].as_u64().unwrap();
    let (_, v) = status_json(
        req(&sim, reqwest::Method::GET, &format!("/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["Data"][0]["Email"], "jane@example.com");
    assert_eq!(
        list(&sim, "mailjet").await["entries"][0]["list"],
        "campaigns"
    );
    let (s, _) = status_json(
        req(&sim, reqwest::Method::POST, "")
            .json(&json!({"Email": "jane@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400, "MJ18: the contact exists");
    let (_, v) = status_json(
        req(&sim, reqwest::Method::PUT, "/jane@example.com")
            .json(&json!({"IsExcludedFromCampaigns": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["Data"][0]["IsExcludedFromCampaigns"], false);
    let r = http()
        .get(sim.url("/mailjet/v3/REST/contact/1"))
        .basic_auth(PUBLIC, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
