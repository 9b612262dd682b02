//! SendGrid global suppressions: the request and answers of `CreateGlobalSuppression`,
//! `GetGlobalSuppression` and `DeleteGlobalSuppression` in SendGrid's OpenAPI document
//! (`tsg_suppressions_v3.yaml`), and the rate-limit page's headers and 429 body.

use esp_sim::{Provider, RateLimit};
use serde_json::json;

use crate::{advance, http, list, sim, status_json};

const KEY: &str = "SG.test-key.0123456789";

fn global(sim: &esp_sim::EspSim, tail: &str) -> String {
    sim.url(&format!("/sendgrid/v3/asm/suppressions/global{tail}"))
}

#[tokio::test]
async fn create_read_and_delete_as_documented() {
    let sim = sim(|b| b.credential("sendgrid", KEY)).await;
    let body = json!({"recipient_emails": ["test1@example.com", "test2@example.com"]});
    let r = http()
        .post(global(&sim, ""))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(r.headers().get(h).is_some(), "{h} on every response");
    }
    assert_eq!(r.headers()["x-ratelimit-limit"], "600");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        body,
        "the addresses echoed"
    );

    let (s, v) = status_json(
        http()
            .get(global(&sim, "/test1@example.com"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v),
        (200, json!({"recipient_email": "test1@example.com"}))
    );
    let (s, v) = status_json(
        http()
            .get(global(&sim, "/nobody@example.com"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v), (200, json!({})), "a miss is an empty object");

    // A subuser's list is its own.
    let (_, v) = status_json(
        http()
            .get(global(&sim, "/test1@example.com"))
            .bearer_auth(KEY)
            .header("on-behalf-of", "sub1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v, json!({}));

    let r = http()
        .delete(global(&sim, "/test1@example.com"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let entries = list(&sim, "sendgrid").await["entries"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entries[0]["address"], "test2@example.com");
}

#[tokio::test]
async fn bad_keys_and_bad_bodies_are_refused() {
    let sim = sim(|b| b.credential("sendgrid", KEY)).await;
    let body = json!({"recipient_emails": ["a@example.com"]});
    let (s, v) = status_json(
        http()
            .post(global(&sim, ""))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(v["errors"][0]["message"], "authorization required");
    let (s, _) = status_json(
        http()
            .post(global(&sim, ""))
            .bearer_auth("SG.other")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    let raw = http()
        .post(global(&sim, ""))
        .header("authorization", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 401, "the key must be a bearer token");
    for bad in [
        json!({}),
        json!({"recipient_emails": ["nope"]}),
        json!({"recipient_emails": []}),
    ] {
        let (s, v) = status_json(
            http()
                .post(global(&sim, ""))
                .bearer_auth(KEY)
                .json(&bad)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(v["errors"][0]["field"], "recipient_emails");
    }
    assert!(
        list(&sim, "sendgrid").await["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_limit_answers_429_with_the_documented_body_until_the_window_resets() {
    let limit = RateLimit {
        limit: 2,
        window: std::time::Duration::from_secs(60),
    };
    let sim = sim(|b| {
        b.credential("sendgrid", KEY)
            .rate_limit(Provider::Sendgrid, Some(limit))
    })
    .await;
    let get = || {
        http()
            .get(global(&sim, "/a@example.com"))
            .bearer_auth(KEY)
            .send()
    };
    let first = get().await.unwrap();
    assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
    let reset: u64 = first.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset, crate::T0 / 1000 + 60);
    assert_eq!(get().await.unwrap().headers()["x-ratelimit-remaining"], "0");
    let r = get().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"errors": [{"field": null, "message": "too many requests"}]})
    );
    advance(&sim, 60_000).await;
    assert_eq!(get().await.unwrap().status().as_u16(), 200);
    assert_eq!(list(&sim, "sendgrid").await["throttled"], 1);
}
