//! Keap's authorization-code flow: the consent page, the code exchange, single-use codes and
//! refresh tokens, lifetimes on the emulator's clock, and revocation.

use std::time::Duration;

use keap_sim::{KeapSim, SimClock, SimConfig};
use serde_json::Value;

use crate::http;

const REDIRECT: &str = "https://console.example/keap/callback";
const START_MS: u64 = 1_800_000_000_000;

async fn sim_on(clock: &SimClock) -> KeapSim {
    let config = SimConfig {
        tenant_id: "xy123.infusionsoft.com".into(),
        ..SimConfig::default()
    };
    KeapSim::builder()
        .config(config)
        .oauth_client("cid", "csecret")
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Opens the consent page for `redirect` and presses `decision`; the page's status and body,
/// and where the browser was sent.
async fn consent(sim: &KeapSim, redirect: &str, decision: &str) -> (u16, String, Option<url::Url>) {
    let page = no_redirects()
        .get(sim.authorize_url())
        .query(&[
            ("client_id", "cid"),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "full"),
            ("state", "st<&>\"1"),
        ])
        .send()
        .await
        .unwrap();
    let status = page.status().as_u16();
    let body = page.text().await.unwrap();
    if status != 200 {
        return (status, body, None);
    }
    let answer = no_redirects()
        .post(sim.authorize_url())
        .form(&[
            ("client_id", "cid"),
            ("redirect_uri", redirect),
            ("state", "st<&>\"1"),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    (status, body, Some(url::Url::parse(&location).unwrap()))
}

fn param(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn exchange(sim: &KeapSim, code: &str, redirect: &str) -> (u16, Value) {
    let r = http()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn refresh(sim: &KeapSim, token: &str) -> (u16, Value) {
    let r = http()
        .post(sim.token_url())
        .basic_auth("cid", Some("csecret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn api_status(sim: &KeapSim, access: &str) -> u16 {
    http()
        .get(format!("{}/rest/v2/contacts", sim.crm_url()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn allow_on_the_consent_page_gives_a_code_that_works_once_for_its_redirect_uri() {
    let clock = SimClock::manual(START_MS);
    let sim = sim_on(&clock).await;
    let (status, page, back) = consent(&sim, REDIRECT, "allow").await;
    assert_eq!(status, 200);
    assert!(page.contains("xy123.infusionsoft.com") && page.contains("cid"));
    assert!(page.contains("st&lt;&amp;&gt;&quot;1"), "state is escaped");
    let back = back.unwrap();
    assert_eq!(back.path(), "/keap/callback");
    assert_eq!(param(&back, "state").as_deref(), Some("st<&>\"1"));
    let code = param(&back, "code").unwrap();

    let (status, body) = exchange(&sim, &code, "https://evil.example/cb").await;
    assert_eq!((status, s(&body, "error")), (400, "invalid_grant".into()));
    // Presenting a code spends it, so even the right redirect URI is too late now.
    let (status, _) = exchange(&sim, &code, REDIRECT).await;
    assert_eq!(status, 400);

    let (_, _, back) = consent(&sim, REDIRECT, "allow").await;
    let code = param(&back.unwrap(), "code").unwrap();
    let (status, pair) = exchange(&sim, &code, REDIRECT).await;
    assert_eq!(status, 200);
    assert_eq!(pair["expires_in"], 86_400);
    assert_eq!(s(&pair, "token_type"), "bearer");
    assert_eq!(s(&pair, "scope"), "full|xy123.infusionsoft.com");
    assert_eq!(api_status(&sim, &s(&pair, "access_token")).await, 200);
    let (status, body) = exchange(&sim, &code, REDIRECT).await;
    assert_eq!((status, s(&body, "error")), (400, "invalid_grant".into()));
    let oauth = sim.stats().oauth;
    assert_eq!((oauth.code_exchanges, oauth.invalid_grant), (1, 3));
}

#[tokio::test]
async fn deny_sends_access_denied_and_untrusted_requests_get_a_page_not_a_redirect() {
    let clock = SimClock::manual(START_MS);
    let sim = sim_on(&clock).await;
    let (_, _, back) = consent(&sim, REDIRECT, "deny").await;
    let back = back.unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("st<&>\"1"));
    assert_eq!(param(&back, "code"), None);

    // http is taken only on loopback; Keap demands https.
    let (status, _, _) = consent(&sim, "http://console.example/cb", "allow").await;
    assert_eq!(status, 400);
    let (status, _, back) = consent(&sim, "http://127.0.0.1:9/cb", "allow").await;
    assert_eq!(status, 200);
    assert!(param(&back.unwrap(), "code").is_some());

    for query in [
        vec![("client_id", "nobody"), ("redirect_uri", REDIRECT)],
        vec![("client_id", "cid")],
    ] {
        let r = no_redirects()
            .get(sim.authorize_url())
            .query(&query)
            .query(&[("response_type", "code")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert!(r.headers().get("location").is_none());
    }
    let r = no_redirects()
        .get(sim.authorize_url())
        .query(&[
            ("client_id", "cid"),
            ("redirect_uri", REDIRECT),
            ("response_type", "token"),
        ])
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.contains("error=unsupported_response_type"));
}

#[tokio::test]
async fn codes_expire_in_minutes_on_the_sims_clock() {
    let clock = SimClock::manual(START_MS);
    let sim = sim_on(&clock).await;
    let code = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    clock.advance(Duration::from_secs(10 * 60 + 1));
    let (status, body) = exchange(&sim, &code, REDIRECT).await;
    assert_eq!((status, s(&body, "error")), (400, "invalid_grant".into()));
    let code = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(exchange(&sim, &code, REDIRECT).await.0, 200);
}

#[tokio::test]
async fn refresh_tokens_die_when_spent_and_after_45_days_access_tokens_after_24_hours() {
    let clock = SimClock::manual(START_MS);
    let sim = sim_on(&clock).await;
    let code = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    let (_, first) = exchange(&sim, &code, REDIRECT).await;
    clock.advance(Duration::from_secs(24 * 3600 - 1));
    assert_eq!(api_status(&sim, &s(&first, "access_token")).await, 200);
    clock.advance(Duration::from_secs(1));
    assert_eq!(api_status(&sim, &s(&first, "access_token")).await, 401);

    let (status, second) = refresh(&sim, &s(&first, "refresh_token")).await;
    assert_eq!(status, 200);
    assert_eq!(s(&second, "scope"), "full|xy123.infusionsoft.com");
    let (status, body) = refresh(&sim, &s(&first, "refresh_token")).await;
    assert_eq!((status, s(&body, "error")), (400, "invalid_grant".into()));

    // 45 days: a day short still works, then the next one has run out.
    clock.advance(Duration::from_secs(44 * 86_400));
    let (status, third) = refresh(&sim, &s(&second, "refresh_token")).await;
    assert_eq!(status, 200);
    clock.advance(Duration::from_secs(45 * 86_400));
    let (status, body) = refresh(&sim, &s(&third, "refresh_token")).await;
    assert_eq!((status, s(&body, "error")), (400, "invalid_grant".into()));
    let oauth = sim.stats().oauth;
    assert_eq!((oauth.refreshes, oauth.invalid_grant), (2, 2));
}

#[tokio::test]
async fn a_revoked_grant_stops_its_tokens_and_codes_at_once() {
    let clock = SimClock::manual(START_MS);
    let sim = sim_on(&clock).await;
    let code = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    let (_, pair) = exchange(&sim, &code, REDIRECT).await;
    let unused = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    let r = http()
        .post(format!("{}/sim/oauth/revoke", sim.base_url()))
        .json(&serde_json::json!({"client_id": "cid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 3);
    assert_eq!(api_status(&sim, &s(&pair, "access_token")).await, 401);
    let (status, body) = refresh(&sim, &s(&pair, "refresh_token")).await;
    assert_eq!((status, s(&body, "error")), (400, "invalid_grant".into()));
    assert_eq!(exchange(&sim, &unused, REDIRECT).await.0, 400);

    // Allowing again makes a new grant.
    let code = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    let (status, pair) = exchange(&sim, &code, REDIRECT).await;
    assert_eq!(status, 200);
    assert_eq!(api_status(&sim, &s(&pair, "access_token")).await, 200);
    let stats: Value = http()
        .get(format!("{}/sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["oauth"]["invalid_grant"], 2);
    assert_eq!(stats["oauth"]["refreshes"], 0);
}
