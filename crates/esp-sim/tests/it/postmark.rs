//! Postmark suppressions per message stream, active after the processing delay: the
//! create body of Postmark's Suppressions API page (its own example addresses) and the dump.

use serde_json::json;

use crate::{advance, http, list, sim, status_json};

const TOKEN: &str = "server-token-0000-1111";

async fn pm_sim() -> esp_sim::EspSim {
    let cfg = esp_sim::SimConfig {
        postmark_streams: vec!["outbound".into(), "broadcast".into()],
        ..Default::default()
    };
    sim(|b| b.config(cfg).credential("postmark", TOKEN)).await
}

fn post(sim: &esp_sim::EspSim, path: &str) -> reqwest::RequestBuilder {
    http()
        .post(sim.url(&format!("/postmark{path}")))
        .header("Accept", "application/json")
        .header("X-Postmark-Server-Token", TOKEN)
}

fn dump(sim: &esp_sim::EspSim, stream: &str, query: &str) -> reqwest::RequestBuilder {
    http()
        .get(sim.url(&format!(
            "/postmark/message-streams/{stream}/suppressions/dump{query}"
        )))
        .header("Accept", "application/json")
        .header("X-Postmark-Server-Token", TOKEN)
}

#[tokio::test]
async fn create_answers_per_address_and_entries_activate_after_the_delay() {
    let sim = pm_sim().await;
    let body = json!({"Suppressions": [
        {"EmailAddress": "good.address@wildbit.com"},
        {"EmailAddress": "spammy.address@wildbit.com"},
        {"EmailAddress": "invalid-email-address"}
    ]});
    let (s, v) = status_json(
        post(&sim, "/message-streams/outbound/suppressions")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let statuses: Vec<&str> = v["Suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Suppressed", "Suppressed", "Failed"]);
    assert!(v["Suppressions"][0]["Message"].is_null());
    assert_eq!(
        v["Suppressions"][2]["Message"],
        "An invalid email address was provided."
    );

    let (_, v) = status_json(dump(&sim, "outbound", "").send().await.unwrap()).await;
    assert_eq!(v["Suppressions"], json!([]), "not active yet");
    assert_eq!(list(&sim, "postmark").await["entries"][0]["active"], false);

    advance(&sim, 60_000).await;
    let (_, v) = status_json(
        dump(&sim, "outbound", "?EmailAddress=good.address@wildbit.com")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let rows = v["Suppressions"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["SuppressionReason"], "ManualSuppression");
    assert_eq!(rows[0]["Origin"], "Customer");
    let (_, v) = status_json(dump(&sim, "outbound", "").send().await.unwrap()).await;
    assert_eq!(v["Suppressions"].as_array().unwrap().len(), 2);
    let (_, v) = status_json(dump(&sim, "broadcast", "").send().await.unwrap()).await;
    assert_eq!(v["Suppressions"], json!([]), "per message stream");
    let e = &list(&sim, "postmark").await["entries"][0];
    assert_eq!(
        (&e["stream"], &e["active"]),
        (&json!("outbound"), &json!(true))
    );

    let del = json!({"Suppressions": [{"EmailAddress": "good.address@wildbit.com"}]});
    let (s, v) = status_json(
        post(&sim, "/message-streams/outbound/suppressions/delete")
            .json(&del)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["Suppressions"][0]["Status"].as_str().unwrap()),
        (200, "Deleted")
    );
    let (_, v) = status_json(dump(&sim, "outbound", "").send().await.unwrap()).await;
    assert_eq!(v["Suppressions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tokens_streams_and_sizes_are_checked() {
    let sim = pm_sim().await;
    let body = json!({"Suppressions": [{"EmailAddress": "a@example.com"}]});
    let url = sim.url("/postmark/message-streams/outbound/suppressions");
    let (s, v) = status_json(http().post(&url).json(&body).send().await.unwrap()).await;
    assert_eq!((s, v["ErrorCode"].as_u64()), (401, Some(10)));
    let (s, _) = status_json(
        http()
            .post(&url)
            .header("X-Postmark-Server-Token", "other")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    let (s, v) = status_json(
        post(&sim, "/message-streams/nope/suppressions")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["ErrorCode"].as_u64()), (422, Some(1226)));
    let many: Vec<_> = (0..51)
        .map(|i| json!({"EmailAddress": format!("u{i}@example.com")}))
        .collect();
    let (s, _) = status_json(
        post(&sim, "/message-streams/outbound/suppressions")
            .json(&json!({"Suppressions": many}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 422, "more than the per-call maximum");
    let (s, v) = status_json(
        post(&sim, "/message-streams/outbound/suppressions")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["ErrorCode"].as_u64()), (422, Some(402)));
}
