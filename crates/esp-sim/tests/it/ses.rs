//! SES v2: the requests and answers of AWS's API Reference (PutSuppressedDestination,
//! GetSuppressedDestination, DeleteSuppressedDestination, GetAccount), per region, SigV4-verified.

use esp_sim::sigv4::{self, Authorization};
use esp_sim::{EspSim, SesReason};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::{advance, http, list, sim};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn amz_date(ms: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap();
    t.format(format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .unwrap()
}

/// A request signed as the AWS SDK signs it, for `scope_region` (normally the path's).
pub fn signed(
    sim: &EspSim,
    method: &str,
    region: &str,
    scope_region: &str,
    path: &str,
    body: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    let raw_path = format!("/ses/{region}{path}");
    let amz = amz_date(sim.clock().now_ms());
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("host".to_string(), sim.addr().to_string()),
        ("x-amz-date".to_string(), amz.clone()),
    ];
    let signed_headers: Vec<String> = headers.iter().map(|(n, _)| n.clone()).collect();
    let auth = Authorization {
        access_key: AKID.into(),
        date: amz[..8].to_string(),
        region: scope_region.into(),
        service: "ses".into(),
        signed_headers: signed_headers.clone(),
        signature: String::new(),
    };
    let req = sigv4::Request {
        method,
        raw_path: &raw_path,
        raw_query: "",
        headers,
        body: body.as_bytes(),
    };
    let canonical = sigv4::canonical_request(&req, &signed_headers);
    let sig = sigv4::signature(secret, &amz, &auth, &canonical);
    let value = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/{}/{scope_region}/ses/aws4_request, SignedHeaders={}, Signature={sig}",
        &amz[..8],
        signed_headers.join(";")
    );
    http()
        .request(method.parse().unwrap(), sim.url(&raw_path))
        .header("content-type", "application/json")
        .header("x-amz-date", amz)
        .header("authorization", value)
        .body(body.to_string())
}

fn ok(sim: &EspSim, method: &str, region: &str, path: &str, body: &str) -> reqwest::RequestBuilder {
    signed(sim, method, region, region, path, body, SECRET)
}

async fn ses_sim() -> EspSim {
    sim(|b| {
        b.credential("ses", &format!("{AKID}:{SECRET}"))
            .ses_suppressed_reasons(&[SesReason::Bounce])
    })
    .await
}

fn error_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

const PATH: &str = "/v2/email/suppression/addresses";

#[tokio::test]
async fn put_get_delete_per_region_with_exact_case() {
    let sim = ses_sim().await;
    let body = json!({"EmailAddress": "Jane@example.com", "Reason": "COMPLAINT"}).to_string();
    let r = ok(&sim, "PUT", "us-east-1", PATH, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "", "an empty HTTP body");

    let r = ok(
        &sim,
        "GET",
        "us-east-1",
        &format!("{PATH}/Jane%40example.com"),
        "",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["SuppressedDestination"]["EmailAddress"],
        "Jane@example.com"
    );
    assert_eq!(v["SuppressedDestination"]["Reason"], "COMPLAINT");
    assert_eq!(
        v["SuppressedDestination"]["LastUpdateTime"],
        crate::T0 as f64 / 1000.0
    );

    for (region, addr) in [
        ("eu-west-1", "Jane%40example.com"),
        ("us-east-1", "jane%40example.com"),
    ] {
        let r = ok(&sim, "GET", region, &format!("{PATH}/{addr}"), "")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{region} {addr}");
        assert_eq!(error_type(&r), "NotFoundException");
    }
    let l = list(&sim, "ses").await;
    assert_eq!(l["entries"][0]["region"], "us-east-1");
    assert_eq!(l["entries"][0]["reason"], "COMPLAINT");

    let del = format!("{PATH}/Jane%40example.com");
    assert_eq!(
        ok(&sim, "DELETE", "us-east-1", &del, "")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let again = ok(&sim, "DELETE", "us-east-1", &del, "")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 404);
}

#[tokio::test]
async fn the_account_reports_its_enforced_reasons() {
    let sim = ses_sim().await;
    let r = ok(&sim, "GET", "eu-central-1", "/v2/email/account", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["SuppressionAttributes"]["SuppressedReasons"],
        json!(["BOUNCE"])
    );
    let r = http()
        .put(sim.url("/sim/ses/suppressed-reasons"))
        .json(&json!({"reasons": ["BOUNCE", "COMPLAINT"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let v: serde_json::Value = ok(&sim, "GET", "eu-central-1", "/v2/email/account", "")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["SuppressionAttributes"]["SuppressedReasons"],
        json!(["BOUNCE", "COMPLAINT"])
    );
}

#[tokio::test]
async fn signatures_are_checked_against_the_configured_secret_region_time_and_body() {
    let sim = ses_sim().await;
    let body = json!({"EmailAddress": "a@example.com", "Reason": "BOUNCE"}).to_string();
    let url = sim.url(&format!("/ses/us-east-1{PATH}"));
    let r = http().put(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), error_type(&r).as_str()),
        (403, "MissingAuthenticationTokenException")
    );

    let r = signed(&sim, "PUT", "us-east-1", "us-east-1", PATH, &body, "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), error_type(&r).as_str()),
        (403, "InvalidSignatureException")
    );

    let r = signed(&sim, "PUT", "us-east-1", "eu-west-1", PATH, &body, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "signed for another region");

    let tampered = ok(&sim, "PUT", "us-east-1", PATH, &body)
        .body(json!({"EmailAddress": "b@example.com", "Reason": "BOUNCE"}).to_string());
    assert_eq!(tampered.send().await.unwrap().status().as_u16(), 403);

    let stale = ok(&sim, "PUT", "us-east-1", PATH, &body);
    advance(&sim, 16 * 60 * 1000).await;
    let r = stale.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("Signature expired"));
    assert!(
        list(&sim, "ses").await["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn bad_input_is_a_400_and_429s_carry_no_rate_headers() {
    let sim = ses_sim().await;
    for body in [
        json!({"EmailAddress": "a@example.com", "Reason": "UNSUBSCRIBE"}),
        json!({"EmailAddress": "a@example.com"}),
        json!({"EmailAddress": "not-an-address", "Reason": "BOUNCE"}),
    ] {
        let r = ok(&sim, "PUT", "us-east-1", PATH, &body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), error_type(&r).as_str()),
            (400, "BadRequestException"),
            "{body}"
        );
    }
    sim.configure(|c| {
        c.rate_limits
            .insert(esp_sim::Provider::Ses, "1/s".parse().unwrap());
    });
    let body = json!({"EmailAddress": "a@example.com", "Reason": "BOUNCE"}).to_string();
    assert_eq!(
        ok(&sim, "PUT", "us-east-1", PATH, &body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let r = ok(&sim, "PUT", "us-east-1", PATH, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), error_type(&r).as_str()),
        (429, "TooManyRequestsException")
    );
    for h in ["retry-after", "x-ratelimit-limit", "ratelimit-limit"] {
        assert!(r.headers().get(h).is_none(), "{h}");
    }
    advance(&sim, 1_000).await;
    assert_eq!(
        ok(&sim, "PUT", "us-east-1", PATH, &body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}
