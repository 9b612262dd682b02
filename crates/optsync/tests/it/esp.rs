//! Sending providers' webhooks: the fixture checklist on byte-exact files with a fixed clock,
//! then end to end against keap-sim on both backends.

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keap::EmailStatus;
use optsync::clock::{Millis, Now as _};
use optsync::providers::{
    HttpAuth, Kind, Provider, ProviderConfig, Reject, Request, Verified, verify,
};
use p256::ecdsa::SigningKey;

use crate::{Db, TestApp, on_both_backends};

/// Fixed "now" for signed fixtures (epoch seconds).
const NOW: i64 = 1_800_000_100;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/esp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn check(
    p: Provider,
    c: &ProviderConfig,
    h: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, Reject> {
    verify(
        p,
        c,
        &Request {
            headers: h,
            body,
            now,
        },
    )
}

fn kinds(v: &Verified) -> Vec<(Kind, String)> {
    v.events
        .iter()
        .map(|e| (e.kind, e.email.as_str().to_string()))
        .collect()
}

// ---------------------------------------------------------------- SendGrid

const SDK_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
const SDK_SIG: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";

fn sendgrid(key: &str) -> ProviderConfig {
    ProviderConfig::Sendgrid {
        public_key: key.into(),
        max_age_secs: 300,
    }
}

pub fn test_signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32].into()).unwrap()
}

/// The same signer the demo uses.
pub fn test_public_key() -> String {
    optsync::providers::signers::sendgrid_public_key(&test_signing_key())
}

pub fn sendgrid_sign(ts: &str, body: &[u8]) -> String {
    optsync::providers::signers::sendgrid_signature(&test_signing_key(), ts, body)
}

#[test]
fn sendgrid_known_answer_vector_verifies_and_a_trailing_crlf_does_not() {
    let body = fixture("sendgrid-kav.json");
    let h = headers(&[
        ("x-twilio-email-event-webhook-signature", SDK_SIG),
        ("x-twilio-email-event-webhook-timestamp", "1588788367"),
    ]);
    let c = sendgrid(SDK_KEY);
    // The SDK's body is one object, not SendGrid's array: the signature holds, the shape does not.
    assert!(matches!(
        check(Provider::Sendgrid, &c, &h, &body, 1_588_788_367),
        Err(Reject::Malformed(_))
    ));
    let mut crlf = body.clone();
    crlf.extend_from_slice(b"\r\n");
    assert!(matches!(
        check(Provider::Sendgrid, &c, &h, &crlf, 1_588_788_367),
        Err(Reject::Forged(_))
    ));
}

#[test]
fn sendgrid_batches_verify_on_raw_bytes_and_map_every_event_type() {
    let body = fixture("sendgrid-batch.json");
    let ts = (NOW - 10).to_string();
    let sig = sendgrid_sign(&ts, &body);
    let c = sendgrid(&test_public_key());
    let h = headers(&[
        ("x-twilio-email-event-webhook-signature", &sig),
        ("x-twilio-email-event-webhook-timestamp", &ts),
    ]);
    let v = check(Provider::Sendgrid, &c, &h, &body, NOW).unwrap();
    assert_eq!(
        kinds(&v),
        vec![
            (Kind::Complaint, "Ann.Lee@example.com".into()),
            (Kind::HardBounce, "bob@example.com".into()),
            (Kind::SoftBounce, "cy@example.com".into()),
            // `dropped` for a Bounced Address: SendGrid's own suppression list echoed.
            (Kind::Suppressed, "dee@example.com".into()),
            (Kind::Unsubscribe, "eve@example.com".into()),
            (Kind::Unsubscribe, "fay@example.com".into()),
            (Kind::Resubscribe, "gus@example.com".into()),
            (Kind::Unsubscribe, "eve@example.com".into()),
        ]
    );
    assert_eq!(v.ignored, 3, "processed, open, an unknown type");
    assert_eq!(
        v.events[4].id, v.events[7].id,
        "the duplicate carries the same sg_event_id"
    );
    // Re-serialised JSON does not verify: only the raw bytes do.
    let reparsed =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).unwrap()).unwrap();
    assert!(matches!(
        check(Provider::Sendgrid, &c, &h, &reparsed, NOW),
        Err(Reject::Forged(_))
    ));
    // Stale: beyond the window; exactly at the boundary is accepted.
    assert!(matches!(
        check(Provider::Sendgrid, &c, &h, &body, NOW - 10 + 301),
        Err(Reject::Stale(_))
    ));
    assert!(check(Provider::Sendgrid, &c, &h, &body, NOW - 10 + 300).is_ok());
    // Missing headers, non-numeric timestamp, signature not base64/DER, wrong key.
    for bad in [
        headers(&[("x-twilio-email-event-webhook-timestamp", &ts)]),
        headers(&[("x-twilio-email-event-webhook-signature", &sig)]),
        headers(&[
            ("x-twilio-email-event-webhook-signature", &sig),
            ("x-twilio-email-event-webhook-timestamp", "soon"),
        ]),
        headers(&[
            ("x-twilio-email-event-webhook-signature", "%%%"),
            ("x-twilio-email-event-webhook-timestamp", &ts),
        ]),
        headers(&[
            ("x-twilio-email-event-webhook-signature", "AAAA"),
            ("x-twilio-email-event-webhook-timestamp", &ts),
        ]),
    ] {
        assert!(matches!(
            check(Provider::Sendgrid, &c, &bad, &body, NOW),
            Err(Reject::Forged(_))
        ));
    }
    assert!(
        check(Provider::Sendgrid, &sendgrid(SDK_KEY), &h, &body, NOW).is_err(),
        "another key"
    );
    // Signed but not an array, or not JSON at all.
    for b in [&b"{\"event\":\"unsubscribe\"}"[..], b"not json", b""] {
        let s = sendgrid_sign(&ts, b);
        let h = headers(&[
            ("x-twilio-email-event-webhook-signature", &s),
            ("x-twilio-email-event-webhook-timestamp", &ts),
        ]);
        assert!(matches!(
            check(Provider::Sendgrid, &c, &h, b, NOW),
            Err(Reject::Malformed(_))
        ));
    }
}

// ---------------------------------------------------------------- Mailgun

fn mailgun() -> ProviderConfig {
    ProviderConfig::Mailgun {
        signing_key: "test-webhook-signing-key".into(),
        max_age_secs: 900,
    }
}

#[test]
fn mailgun_known_answer_vector() {
    let body = br#"{"signature":{"token":"d1f4a5b6c7e8f90123456789abcdef0123456789abcdef0123","timestamp":"1700000000","signature":"e43c4d90b9ef3803fa0eccce34d7fe00cbc1b663ebc4e2384d217affc862596d"},"event-data":{"event":"unsubscribed","recipient":"kav@example.com"}}"#;
    let v = check(
        Provider::Mailgun,
        &mailgun(),
        &HeaderMap::new(),
        body,
        1_700_000_000,
    )
    .unwrap();
    assert_eq!(
        kinds(&v),
        vec![(Kind::Unsubscribe, "kav@example.com".into())]
    );
    assert_eq!(
        v.token.as_deref(),
        Some("d1f4a5b6c7e8f90123456789abcdef0123456789abcdef0123")
    );
    // Upper-case hex is the same bytes.
    let upper = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("e43c4d90b9ef", "E43C4D90B9EF");
    assert!(
        check(
            Provider::Mailgun,
            &mailgun(),
            &HeaderMap::new(),
            upper.as_bytes(),
            1_700_000_000
        )
        .is_ok()
    );
    // Signed with the API key instead, or over token‖timestamp: refused.
    let api_key = ProviderConfig::Mailgun {
        signing_key: "key-api".into(),
        max_age_secs: 900,
    };
    assert!(matches!(
        check(
            Provider::Mailgun,
            &api_key,
            &HeaderMap::new(),
            body,
            1_700_000_000
        ),
        Err(Reject::Forged(_))
    ));
}

#[test]
fn mailgun_events_map_and_stale_or_unsigned_bodies_are_refused() {
    let h = HeaderMap::new();
    let cases = [
        ("mailgun-permanent-fail.json", Some(Kind::HardBounce)),
        ("mailgun-temporary-fail.json", Some(Kind::SoftBounce)),
        ("mailgun-complained.json", Some(Kind::Complaint)),
        ("mailgun-unsubscribed.json", Some(Kind::Unsubscribe)),
        ("mailgun-delivered.json", None),
    ];
    for (f, want) in cases {
        let v = check(Provider::Mailgun, &mailgun(), &h, &fixture(f), NOW).unwrap();
        assert_eq!(v.events.first().map(|e| e.kind), want, "{f}");
        assert!(v.token.is_some());
    }
    assert!(matches!(
        check(
            Provider::Mailgun,
            &mailgun(),
            &h,
            &fixture("mailgun-complained.json"),
            NOW + 901
        ),
        Err(Reject::Stale(_))
    ));
    assert!(matches!(
        check(
            Provider::Mailgun,
            &mailgun(),
            &h,
            br#"{"event-data":{"event":"unsubscribed"}}"#,
            NOW
        ),
        Err(Reject::Forged(_))
    ));
    assert!(matches!(
        check(
            Provider::Mailgun,
            &mailgun(),
            &h,
            b"token=1&timestamp=2&signature=3",
            NOW
        ),
        Err(Reject::Malformed(_))
    ));
    assert_eq!(
        Provider::Mailgun.reject_status(&Reject::Replayed).as_u16(),
        406,
        "Mailgun stops on 406"
    );
}

// ---------------------------------------------------------------- Mandrill

const MANDRILL_URL: &str = "https://hooks.example.com/esp/mandrill";

fn mandrill(url: &str) -> ProviderConfig {
    ProviderConfig::Mandrill {
        webhook_key: "test-mandrill-webhook-key".into(),
        url: url.into(),
    }
}

fn form_headers(sig: &str) -> HeaderMap {
    headers(&[
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-mandrill-signature", sig),
    ])
}

#[test]
fn mandrill_known_answer_vector_and_url_variations() {
    let body = fixture("mandrill-kav.form");
    let h = form_headers("2Z61SuEmncJV9y9uy9sjDkp8/0Y=");
    let v = check(Provider::Mandrill, &mandrill(MANDRILL_URL), &h, &body, NOW).unwrap();
    assert_eq!(
        kinds(&v),
        vec![(Kind::Unsubscribe, "alice@example.com".into())]
    );
    for other in [
        "http://hooks.example.com/esp/mandrill",
        "https://proxy.example.com/esp/mandrill",
        "https://hooks.example.com/esp/mandrill/",
        "https://hooks.example.com/esp/mandrill?x=1",
    ] {
        assert!(
            matches!(
                check(Provider::Mandrill, &mandrill(other), &h, &body, NOW),
                Err(Reject::Forged(_))
            ),
            "{other}"
        );
    }
    let json_ct = headers(&[
        ("content-type", "application/json"),
        ("x-mandrill-signature", "2Z61SuEmncJV9y9uy9sjDkp8/0Y="),
    ]);
    assert!(matches!(
        check(
            Provider::Mandrill,
            &mandrill(MANDRILL_URL),
            &json_ct,
            &body,
            NOW
        ),
        Err(Reject::Malformed(_))
    ));
}

#[test]
fn mandrill_batches_sign_every_field_and_map_events() {
    let body = fixture("mandrill-batch.form");
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
    let sig = B64.encode(
        optsync::providers::mandrill_signature("test-mandrill-webhook-key", MANDRILL_URL, &fields)
            .unwrap(),
    );
    let v = check(
        Provider::Mandrill,
        &mandrill(MANDRILL_URL),
        &form_headers(&sig),
        &body,
        NOW,
    )
    .unwrap();
    assert_eq!(
        kinds(&v),
        vec![
            (Kind::Unsubscribe, "nia@example.com".into()),
            (Kind::Complaint, "oli@example.com".into()),
            (Kind::HardBounce, "pat@example.com".into()),
            (Kind::SoftBounce, "quin@example.com".into()),
            // `reject`: Mandrill's own rejection list echoed.
            (Kind::Suppressed, "rae@example.com".into()),
        ]
    );
    assert_eq!(v.ignored, 2, "open, a blacklist sync event");
    // The extra field is signed: without it the signature does not hold.
    let without: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| k != "extra")
        .cloned()
        .collect();
    let sig2 = B64.encode(
        optsync::providers::mandrill_signature("test-mandrill-webhook-key", MANDRILL_URL, &without)
            .unwrap(),
    );
    assert!(
        check(
            Provider::Mandrill,
            &mandrill(MANDRILL_URL),
            &form_headers(&sig2),
            &body,
            NOW
        )
        .is_err()
    );
    // The test send: an empty batch.
    let empty = b"mandrill_events=%5B%5D";
    let f: Vec<(String, String)> = serde_urlencoded::from_bytes(empty).unwrap();
    let s = B64.encode(
        optsync::providers::mandrill_signature("test-mandrill-webhook-key", MANDRILL_URL, &f)
            .unwrap(),
    );
    assert_eq!(
        check(
            Provider::Mandrill,
            &mandrill(MANDRILL_URL),
            &form_headers(&s),
            empty,
            NOW
        )
        .unwrap(),
        Verified::default()
    );
}

// ------------------------------------------------ Postmark, SparkPost, Mailjet, Brevo

fn basic(user: &str, pass: &str) -> HeaderMap {
    headers(&[(
        "authorization",
        &format!("Basic {}", B64.encode(format!("{user}:{pass}"))),
    )])
}

fn http_basic() -> ProviderConfig {
    ProviderConfig::Http(HttpAuth::Basic {
        user: "hook".into(),
        password: "s3cret-pass".into(),
    })
}

#[test]
fn basic_and_bearer_credentials_are_required_and_compared_exactly() {
    let body = fixture("postmark-unsubscribe.json");
    let c = http_basic();
    assert!(
        check(
            Provider::Postmark,
            &c,
            &basic("hook", "s3cret-pass"),
            &body,
            NOW
        )
        .is_ok()
    );
    for h in [
        basic("hook", "s3cret-pasS"),
        basic("hook", "s3cret-pas"),
        basic("Hook", "s3cret-pass"),
        HeaderMap::new(),
        headers(&[("authorization", "Bearer s3cret-pass")]),
    ] {
        let r = check(Provider::Postmark, &c, &h, &body, NOW).unwrap_err();
        assert!(matches!(r, Reject::Unauthorized(_)));
        assert_eq!(
            Provider::Postmark.reject_status(&r).as_u16(),
            401,
            "401, never 403 (which stops Postmark's retries)"
        );
    }
    let bearer = ProviderConfig::Http(HttpAuth::Bearer {
        token: "tok-123".into(),
    });
    let ping = fixture("sparkpost-ping.json");
    assert!(
        check(
            Provider::Sparkpost,
            &bearer,
            &headers(&[("authorization", "Bearer tok-123")]),
            &ping,
            NOW
        )
        .is_ok()
    );
    assert!(
        check(
            Provider::Sparkpost,
            &bearer,
            &headers(&[("authorization", "Bearer tok-124")]),
            &ping,
            NOW
        )
        .is_err()
    );
    assert_eq!(
        Provider::Brevo.retry_status().as_u16(),
        429,
        "Brevo retries 429"
    );
}

#[test]
fn postmark_records_map_by_type_and_reason() {
    let h = basic("hook", "s3cret-pass");
    let c = http_basic();
    for (f, want) in [
        ("postmark-hard-bounce.json", Some(Kind::HardBounce)),
        ("postmark-soft-bounce.json", Some(Kind::SoftBounce)),
        ("postmark-spam-complaint.json", Some(Kind::Complaint)),
        ("postmark-unsubscribe.json", Some(Kind::Unsubscribe)),
        ("postmark-reactivation.json", Some(Kind::Resubscribe)),
        ("postmark-inbound.json", None),
    ] {
        let v = check(Provider::Postmark, &c, &h, &fixture(f), NOW).unwrap();
        assert_eq!(v.events.first().map(|e| e.kind), want, "{f}");
    }
    assert!(matches!(
        check(Provider::Postmark, &c, &h, b"[1,2]", NOW),
        Err(Reject::Malformed(_))
    ));
    assert!(matches!(
        check(Provider::Postmark, &c, &h, b"{\"RecordType\":", NOW),
        Err(Reject::Malformed(_))
    ));
}

/// "the sender's own staff suppressed it (Postmark ... `ManuallyDeactivated`)": recorded as a
/// suppression echo, never as a hard bounce or a stop source.
#[test]
fn postmark_manually_deactivated_is_a_suppression_echo() {
    let h = basic("hook", "s3cret-pass");
    let c = http_basic();
    let hard = String::from_utf8(fixture("postmark-hard-bounce.json")).unwrap();
    let body = hard.replace(
        r#""Type":"HardBounce","TypeCode":1,"Name":"Hard bounce""#,
        r#""Type":"ManuallyDeactivated","TypeCode":100002,"Name":"Manually deactivated""#,
    );
    assert_ne!(body, hard);
    let v = check(Provider::Postmark, &c, &h, body.as_bytes(), NOW).unwrap();
    let kinds: Vec<Kind> = v.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![Kind::Suppressed]);
}

#[test]
fn sparkpost_mailjet_and_brevo_batches() {
    let h = basic("hook", "s3cret-pass");
    let c = http_basic();
    let v = check(
        Provider::Sparkpost,
        &c,
        &h,
        &fixture("sparkpost-batch.json"),
        NOW,
    )
    .unwrap();
    assert_eq!(
        kinds(&v),
        vec![
            (Kind::HardBounce, "Uma@example.com".into()),
            (Kind::SoftBounce, "val@example.com".into()),
            (Kind::Complaint, "xia@example.com".into()),
            (Kind::Unsubscribe, "yan@example.com".into()),
            (Kind::Unsubscribe, "zoe@example.com".into()),
        ]
    );
    assert_eq!(v.ignored, 3, "block class 50, delivery, relay_message");
    assert_eq!(
        check(
            Provider::Sparkpost,
            &c,
            &h,
            &fixture("sparkpost-ping.json"),
            NOW
        )
        .unwrap()
        .events
        .len(),
        0
    );
    assert!(matches!(
        check(Provider::Sparkpost, &c, &h, b"{\"msys\":{}}", NOW),
        Err(Reject::Malformed(_))
    ));

    let v = check(
        Provider::Mailjet,
        &c,
        &h,
        &fixture("mailjet-v1-unsub.json"),
        NOW,
    )
    .unwrap();
    assert_eq!(
        kinds(&v),
        vec![(Kind::Unsubscribe, "api@mailjet.com".into())]
    );
    let v = check(
        Provider::Mailjet,
        &c,
        &h,
        &fixture("mailjet-v2-batch.json"),
        NOW,
    )
    .unwrap();
    assert_eq!(
        v.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![Kind::Complaint, Kind::HardBounce, Kind::SoftBounce]
    );
    assert_eq!(
        v.events[0].id.as_deref(),
        Some("1379228691700433612:spam:1430812195"),
        "19-digit ids kept exact"
    );

    let v = check(Provider::Brevo, &c, &h, &fixture("brevo-batch.json"), NOW).unwrap();
    assert_eq!(
        v.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![
            Kind::Unsubscribe,
            Kind::Complaint,
            Kind::Complaint,
            Kind::HardBounce,
            Kind::SoftBounce
        ]
    );
    assert!(
        v.events[0]
            .id
            .as_deref()
            .unwrap()
            .ends_with(":1604933654000"),
        "the UTC ts_epoch, not the webhook id"
    );
    let v = check(
        Provider::Brevo,
        &c,
        &h,
        &fixture("brevo-marketing-unsubscribe.json"),
        NOW,
    )
    .unwrap();
    assert_eq!(
        kinds(&v),
        vec![(Kind::Unsubscribe, "hub@example.com".into())]
    );
    assert!(matches!(
        check(Provider::Brevo, &c, &h, b"\xff\xfe", NOW),
        Err(Reject::Malformed(_))
    ));
}

// ---------------------------------------------------------------- end to end

pub async fn configure(t: &TestApp) {
    let tenants = &t.state.tenants;
    tenants
        .set_provider(
            &t.app,
            Provider::Sendgrid,
            &ProviderConfig::Sendgrid {
                public_key: test_public_key(),
                max_age_secs: 300,
            },
        )
        .await
        .unwrap();
    tenants
        .set_provider(
            &t.app,
            Provider::Mailgun,
            &ProviderConfig::Mailgun {
                signing_key: "test-webhook-signing-key".into(),
                max_age_secs: 10 * 365 * 86_400,
            },
        )
        .await
        .unwrap();
    tenants
        .set_provider(&t.app, Provider::Postmark, &http_basic())
        .await
        .unwrap();
}

pub async fn post_raw(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut r = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn signed_provider_events_are_honoured_per_the_rules(db: Db) {
    let t = TestApp::spawn(db).await;
    configure(&t).await;
    let sg_url = t.state.tenants.provider_url(&t.app, Provider::Sendgrid);
    assert_eq!(sg_url, format!("{}/hooks/esp/sendgrid/{}", t.base, t.app));
    let (_, ann) = t.contact("ann", 3);
    let (_, bob) = t.contact("bob", 3);

    // A SendGrid spam report for Ann's EMAIL1 → all her addresses.
    let now = t.state.clock.now().as_i64() / 1000;
    let body = format!(
        r#"[{{"email":"{}","timestamp":{now},"event":"spamreport","sg_event_id":"e2e-1"}}]"#,
        ann[0]
    )
    .into_bytes();
    let ts = now.to_string();
    let sig = sendgrid_sign(&ts, &body);
    let sg_headers = vec![
        ("x-twilio-email-event-webhook-signature", sig.clone()),
        ("x-twilio-email-event-webhook-timestamp", ts.clone()),
        ("content-type", "application/json".to_string()),
    ];
    let (s, out) = post_raw(&sg_url, &sg_headers, body.clone()).await;
    assert_eq!((s, out["queued"].as_u64()), (200, Some(1)), "{out}");
    // The same delivery again: 2xx, nothing new.
    let (s, out) = post_raw(&sg_url, &sg_headers, body.clone()).await;
    assert_eq!((s, out["duplicates"].as_u64()), (200, Some(1)));
    t.worker.drain().await.unwrap();
    assert_eq!(t.statuses(&ann), vec![Some(EmailStatus::Admin); 3]);

    // A Mailgun permanent failure for Bob's EMAIL2 → only that address.
    let mg_url = format!("{}/hooks/esp/mailgun/{}", t.base, t.app);
    let mg_body = String::from_utf8(fixture("mailgun-permanent-fail.json"))
        .unwrap()
        .replace("u1@relay.wedeliver.example", &bob[1]);
    let (s, _) = post_raw(
        &mg_url,
        &[("content-type", "application/json".into())],
        mg_body.clone().into_bytes(),
    )
    .await;
    // The fixture's signature covers timestamp and token only: the recipient could be swapped,
    // which is exactly why tokens are single-use.
    assert_eq!(s, 200);
    t.worker.drain().await.unwrap();
    assert_eq!(
        t.statuses(&bob),
        vec![
            Some(EmailStatus::SingleOptIn),
            Some(EmailStatus::Admin),
            Some(EmailStatus::SingleOptIn)
        ]
    );
    let ledger = t
        .count("SELECT COUNT(*) FROM ledger WHERE origin = 'bounce'")
        .await;
    assert_eq!(
        ledger, 1,
        "the bounce is recorded as the service's own write, origin bounce"
    );
    // A captured signature object glued to other event data: the token was used: refused.
    let (s, _) = post_raw(&mg_url, &[], fixture("mailgun-replayed-token.json")).await;
    assert_eq!(s, 406);

    // Forged SendGrid signature → 4xx, nothing stored or changed.
    let (_, cy) = t.contact("cy", 2);
    let forged = format!(
        r#"[{{"email":"{}","event":"unsubscribe","sg_event_id":"e2e-2"}}]"#,
        cy[0]
    )
    .into_bytes();
    let (s, _) = post_raw(&sg_url, &sg_headers, forged).await;
    assert_eq!(s, 401);
    // Soft bounces and resubscribes are recorded, never acted on.
    let pm_url = format!("{}/hooks/esp/postmark/{}", t.base, t.app);
    let auth = format!("Basic {}", B64.encode("hook:s3cret-pass"));
    let reactivate = String::from_utf8(fixture("postmark-reactivation.json"))
        .unwrap()
        .replace("john@example.com", &ann[0]);
    let (s, out) = post_raw(
        &pm_url,
        &[("authorization", auth.clone())],
        reactivate.into_bytes(),
    )
    .await;
    assert_eq!((s, out["recorded"].as_u64()), (200, Some(1)));
    t.worker.drain().await.unwrap();
    assert_eq!(t.statuses(&cy), vec![Some(EmailStatus::SingleOptIn); 2]);
    assert_eq!(
        t.sim.status(&ann[0]),
        Some(EmailStatus::Admin),
        "nobody is opted back in"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events WHERE kind = 'resubscribe' AND job_id IS NULL")
            .await,
        1
    );

    // Unknown provider, unconfigured provider, unknown app.
    assert_eq!(
        post_raw(
            &format!("{}/hooks/esp/pigeon/{}", t.base, t.app),
            &[],
            b"{}".to_vec()
        )
        .await
        .0,
        404
    );
    assert_eq!(
        post_raw(
            &format!("{}/hooks/esp/brevo/{}", t.base, t.app),
            &[("authorization", auth.clone())],
            b"{}".to_vec()
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post_raw(
            &format!("{}/hooks/esp/postmark/nosuch", t.base),
            &[("authorization", auth.clone())],
            b"{}".to_vec()
        )
        .await
        .0,
        401
    );
    // Mandrill's HEAD probe.
    let r = reqwest::Client::new()
        .head(format!("{}/hooks/esp/mandrill/{}", t.base, t.app))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Oversized.
    let big = vec![b' '; 3 * 1024 * 1024];
    assert_eq!(
        post_raw(&pm_url, &[("authorization", auth.clone())], big)
            .await
            .0,
        413
    );

    // Tokens past the freshness window are forgotten (they would be refused as stale anyway).
    assert_eq!(
        t.state
            .store
            .prune_seen_tokens(Millis(i64::MAX))
            .await
            .unwrap(),
        1
    );
    // Store down → the status that makes the provider retry.
    t.state.store.close().await;
    let unsub = String::from_utf8(fixture("postmark-unsubscribe.json")).unwrap();
    let (s, _) = post_raw(&pm_url, &[("authorization", auth)], unsub.into_bytes()).await;
    assert_eq!(s, 503);
}
on_both_backends!(signed_provider_events_are_honoured_per_the_rules);
