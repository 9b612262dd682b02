//! The "opts out of all email marketing" action set: who gets posted, with what, and retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use keap::EmailStatus;
use keap_sim::{KeapSim, SimEvent};
use serde_json::json;

use crate::{KEY, http};

/// One received post: query string, form fields, content type.
type Received = (Option<String>, HashMap<String, String>, String);

#[derive(Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer with, in order; 200 once exhausted.
    script: Arc<Mutex<Vec<u16>>>,
}

async fn receive(
    State(r): State<Receiver>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
    body: String,
) -> StatusCode {
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    r.posts.lock().unwrap().push((q, form, ct));
    let mut s = r.script.lock().unwrap();
    let code = if s.is_empty() { 200 } else { s.remove(0) };
    StatusCode::from_u16(code).unwrap()
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/process_optout.php", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/process_optout.php?app=rc135&auth=tok%2Bsecret",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

async fn sim_posting_to(url: &str) -> KeapSim {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    sim.configure(|c| c.action_set_backoff = Duration::from_millis(10));
    let r = http()
        .put(format!("{}/sim/action-set", sim.base_url()))
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    sim
}

#[tokio::test]
async fn an_unsubscribe_posts_the_contacts_fields_keeping_the_urls_query() {
    let (rx, url) = receiver().await;
    let sim = sim_posting_to(&url).await;
    let id = sim.add_contact(
        "ann@example.com",
        Some("u9@relay.wedeliver.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    let r = http()
        .post(format!(
            "{}/sim/emails/ann@example.com/event",
            sim.base_url()
        ))
        .json(&json!({"event": "unsubscribe_link"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let outcome: serde_json::Value = r.json().await.unwrap();
    assert_eq!(outcome["status"], "Manual");
    assert_eq!(outcome["posted_for"], json!([id]));
    let posts = sim
        .wait_action_posts(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (posts[0].status, posts[0].contact_id, posts[0].url.as_str()),
        (200, id, url.as_str())
    );
    let got = rx.posts.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (query, form, ct) = &got[0];
    assert_eq!(query.as_deref(), Some("app=rc135&auth=tok%2Bsecret"));
    assert_eq!(ct, "application/x-www-form-urlencoded");
    assert_eq!(form["contactId"], id.to_string());
    assert_eq!(form["Id"], id.to_string());
    assert_eq!(form["Email"], "ann@example.com");
    assert_eq!(form["EmailAddress2"], "u9@relay.wedeliver.example");
    // Every field is posted, empty ones as the string `null`, custom fields without `_`.
    assert_eq!(form["EmailAddress3"], "null");
    assert_eq!(form["Company"], "null");
    assert_eq!(form["RelayAlias"], "null");
    assert!(form.keys().all(|k| !k.starts_with('_')));
    // Only the address that was clicked changed: propagation is the receiver's job.
    assert_eq!(
        sim.status("u9@relay.wedeliver.example"),
        Some(EmailStatus::SingleOptIn)
    );
}

#[tokio::test]
async fn failed_posts_are_retried_a_few_times() {
    let (rx, url) = receiver().await;
    *rx.script.lock().unwrap() = vec![500, 503];
    let sim = sim_posting_to(&url).await;
    sim.add_contact("bob@example.com", None, None, EmailStatus::SingleOptIn);
    sim.event("bob@example.com", SimEvent::SpamForm).unwrap();
    let posts = sim
        .wait_action_posts(3, Duration::from_secs(10))
        .await
        .unwrap();
    let statuses: Vec<(u32, u16)> = posts.iter().map(|p| (p.attempt, p.status)).collect();
    assert_eq!(statuses, vec![(1, 500), (2, 503), (3, 200)]);
    assert_eq!(rx.posts.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_receiver_that_never_succeeds_gets_three_attempts() {
    let (rx, url) = receiver().await;
    *rx.script.lock().unwrap() = vec![500; 10];
    let sim = sim_posting_to(&url).await;
    sim.add_contact("cy@example.com", None, None, EmailStatus::SingleOptIn);
    sim.event("cy@example.com", SimEvent::UnsubscribeLink)
        .unwrap();
    let posts = sim
        .wait_action_posts(3, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(posts.iter().all(|p| p.status == 500));
    // A fourth would be a bug: wait for the delivery task's last backoff to pass by sending a
    // later post that succeeds and must be the only other one.
    rx.script.lock().unwrap().clear();
    sim.add_contact("dee@example.com", None, None, EmailStatus::SingleOptIn);
    sim.event("dee@example.com", SimEvent::UnsubscribeLink)
        .unwrap();
    let posts = sim
        .wait_action_posts(4, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(posts.len(), 4);
    assert_eq!(posts[3].status, 200);
}

#[tokio::test]
async fn manual_opt_outs_bounces_unengaged_and_api_opt_outs_post_nothing() {
    let (rx, url) = receiver().await;
    let sim = sim_posting_to(&url).await;
    for e in [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
        "e@example.com",
        "last@example.com",
    ] {
        sim.add_contact(e, None, None, EmailStatus::SingleOptIn);
    }
    for (e, ev) in [
        ("a@example.com", SimEvent::ManualOptOut),
        ("b@example.com", SimEvent::HardBounce),
        ("c@example.com", SimEvent::UnengagedNonMarketable),
        ("d@example.com", SimEvent::ListUnsubscribe),
    ] {
        let out = sim.event(e, ev).unwrap();
        assert!(out.posted_for.is_empty(), "{ev:?}");
    }
    let r = http()
        .patch(format!(
            "{}/crm/rest/v2/emailAddresses/e@example.com/status",
            sim.base_url()
        ))
        .header("X-Keap-API-Key", KEY)
        .json(&json!({"opted_in": false, "reason": "api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // One post that must happen, after all of the above: it is the only one.
    sim.event("last@example.com", SimEvent::UnsubscribeLink)
        .unwrap();
    let posts = sim
        .wait_action_posts(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(posts.len(), 1);
    let got = rx.posts.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["Email"], "last@example.com");
}
