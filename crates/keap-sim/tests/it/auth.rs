//! Authentication: API keys, bearer tokens, the /token grants and refresh-token rotation.

use std::time::Duration;

use keap_sim::{KeapSim, SimClock, SimConfig};
use serde_json::Value;

use crate::{KEY, http};

async fn token(sim: &KeapSim, basic: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(format!("{}/token", sim.base_url()))
        .basic_auth(basic.0, Some(basic.1))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get_with(sim: &KeapSim, header: (&str, String)) -> u16 {
    http()
        .get(format!("{}/crm/rest/v2/contacts", sim.base_url()))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_a_json_401_even_on_xmlrpc() {
    let sim = crate::sim().await;
    for req in [
        http().get(format!("{}/crm/rest/v2/contacts", sim.base_url())),
        http()
            .get(format!("{}/crm/rest/v2/contacts", sim.base_url()))
            .header("X-Keap-API-Key", "KeapAK-wrong"),
        http()
            .get(format!("{}/crm/rest/v2/contacts", sim.base_url()))
            .bearer_auth("nope"),
        http()
            .post(format!("{}/crm/xmlrpc/v1", sim.base_url()))
            .body("<methodCall/>"),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let body: Value = r.json().await.expect("JSON, not an XML-RPC fault");
        assert_eq!(
            body["fault"]["detail"]["errorcode"],
            "keymanagement.service.invalid_access_token"
        );
    }
    assert_eq!(
        get_with(&sim, ("X-Keap-API-Key", KEY.to_string())).await,
        200
    );
    // Nothing reached the handlers or the throttle.
    assert_eq!(sim.stats().throttled, 0);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_work_once() {
    let clock = SimClock::manual(1_800_000_000_000);
    let config = SimConfig {
        access_token_lifetime: Duration::from_secs(3600),
        ..SimConfig::default()
    };
    let sim = KeapSim::builder()
        .config(config)
        .oauth_client("cid", "csecret")
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let code = sim.issue_auth_code("cid").unwrap();
    let (status, first) = token(
        &sim,
        ("cid", "csecret"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://x.example/cb"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (first["token_type"].as_str(), first["expires_in"].as_u64()),
        (Some("bearer"), Some(3600))
    );
    let at1 = first["access_token"].as_str().unwrap().to_string();
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        get_with(&sim, ("Authorization", format!("Bearer {at1}"))).await,
        200
    );
    // A code works once.
    assert_eq!(
        token(
            &sim,
            ("cid", "csecret"),
            &[("grant_type", "authorization_code"), ("code", &code)]
        )
        .await
        .0,
        400
    );
    // Wrong client secret.
    assert_eq!(
        token(
            &sim,
            ("cid", "wrong"),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]
        )
        .await
        .0,
        401
    );

    let (status, second) = token(
        &sim,
        ("cid", "csecret"),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(status, 200);
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    // The old refresh token is dead once used.
    let (status, body) = token(
        &sim,
        ("cid", "csecret"),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        token(&sim, ("cid", "csecret"), &[("grant_type", "password")])
            .await
            .1["error"],
        "unsupported_grant_type"
    );

    // Access tokens expire on the (manual) clock.
    let at2 = second["access_token"].as_str().unwrap().to_string();
    clock.advance(Duration::from_secs(3601));
    assert_eq!(
        get_with(&sim, ("Authorization", format!("Bearer {at2}"))).await,
        401
    );
    let (status, _) = token(
        &sim,
        ("cid", "csecret"),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(status, 200, "the refresh token outlives the access token");
}

#[tokio::test]
async fn query_string_tokens_only_when_enabled() {
    let sim = KeapSim::builder()
        .oauth_client("c", "s")
        .start()
        .await
        .unwrap();
    let code = sim.issue_auth_code("c").unwrap();
    let (_, t) = token(
        &sim,
        ("c", "s"),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    let at = t["access_token"].as_str().unwrap();
    let url = format!("{}/crm/rest/v2/contacts?access_token={at}", sim.base_url());
    assert_eq!(
        http().get(&url).send().await.unwrap().status().as_u16(),
        401
    );
    sim.configure(|c| c.accept_query_token = true);
    assert_eq!(
        http().get(&url).send().await.unwrap().status().as_u16(),
        200
    );
}
