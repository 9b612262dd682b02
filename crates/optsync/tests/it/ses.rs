//! Amazon SES through SNS: byte-exact signed fixtures (a test certificate stands in for the
//! SNS one, served by a recording fetcher), the URL policy before any fetch, topic
//! allow-lists, subscription handling, and end to end.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue};
use keap::EmailStatus;
use optsync::clock::Clock;
use optsync::providers::ses::{SnsFetcher, normalise};
use optsync::providers::{Kind, Provider, ProviderConfig, Reject, Request, Verified, verify_async};
use url::Url;

use crate::{Db, Options, TestApp, on_both_backends};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";
/// The fixtures' Timestamp, 2027-01-15T08:00:00Z, plus a minute.
const NOW: i64 = 1_800_000_060;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/sns/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[derive(Default)]
pub struct Recording {
    pub fetched: Mutex<Vec<String>>,
    pub confirmed: Mutex<Vec<String>>,
    /// Certificate fetches fail (AWS unreachable for a moment).
    pub unreachable: std::sync::atomic::AtomicBool,
}

impl SnsFetcher for Recording {
    fn certificate<'a>(
        &'a self,
        url: &'a Url,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        self.fetched.lock().unwrap().push(url.to_string());
        let down = self.unreachable.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            match down {
                true => Err("connection timed out".to_string()),
                false => Ok(fixture("test-signing-cert.pem")),
            }
        })
    }
    fn confirm<'a>(
        &'a self,
        url: &'a Url,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        self.confirmed.lock().unwrap().push(url.to_string());
        Box::pin(async { Ok(()) })
    }
}

fn config() -> ProviderConfig {
    ProviderConfig::Ses {
        topic_arns: vec![TOPIC.into()],
    }
}

fn sns_headers(body: &[u8]) -> HeaderMap {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "x-amz-sns-message-type",
        HeaderValue::from_str(v["Type"].as_str().unwrap()).unwrap(),
    );
    h.insert(
        "x-amz-sns-message-id",
        HeaderValue::from_str(v["MessageId"].as_str().unwrap()).unwrap(),
    );
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    h
}

async fn check_with(
    f: &Recording,
    c: &ProviderConfig,
    h: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, Reject> {
    verify_async(
        Provider::Ses,
        c,
        &Request {
            headers: h,
            body,
            now,
        },
        f,
    )
    .await
}

async fn check(body: &[u8]) -> (Result<Verified, Reject>, Recording) {
    let f = Recording::default();
    let r = check_with(&f, &config(), &sns_headers(body), body, NOW).await;
    (r, f)
}

fn kinds(v: &Verified) -> Vec<(Kind, String)> {
    v.events
        .iter()
        .map(|e| (e.kind, e.email.as_str().to_string()))
        .collect()
}

#[tokio::test]
async fn signature_versions_1_and_2_with_and_without_subject_verify() {
    let (v, f) = check(&fixture("bounce-permanent-v1.json")).await;
    let v = v.unwrap();
    assert_eq!(
        kinds(&v),
        vec![
            (Kind::HardBounce, "jane@example.com".into()),
            (Kind::HardBounce, "Mary@example.com".into()),
            (Kind::HardBounce, "richard@example.com".into())
        ]
    );
    assert_eq!(f.fetched.lock().unwrap().len(), 1);
    let (v, _) = check(&fixture("bounce-transient-v2.json")).await;
    assert_eq!(
        kinds(&v.unwrap()),
        vec![(Kind::SoftBounce, "jane@example.com".into())]
    );
    let (v, _) = check(&fixture("complaint-v2.json")).await;
    assert_eq!(
        kinds(&v.unwrap()),
        vec![(Kind::Complaint, "richard@example.com".into())]
    );
    let (v, _) = check(&fixture("complaint-not-spam-v1.json")).await;
    assert!(v.unwrap().events.is_empty(), "not-spam is not a complaint");
    let (v, _) = check(&fixture("subscription-unsubscribe-all-v2.json")).await;
    assert_eq!(
        kinds(&v.unwrap()),
        vec![(Kind::Unsubscribe, "recipient@example.com".into())]
    );
    let (v, _) = check(&fixture("subscription-topic-only-v2.json")).await;
    assert!(
        v.unwrap().events.is_empty(),
        "a topic preference is not a stop"
    );
    // Escaped control characters, quotes and unicode in Message and Subject.
    let (v, _) = check(&fixture("delivery-escaped-v1.json")).await;
    assert_eq!(v.unwrap().ignored, 1, "verified, and a Delivery is ignored");
    let (v, _) = check(&fixture("validated-v1.json")).await;
    assert_eq!(
        v.unwrap(),
        Verified {
            ignored: 1,
            ..Verified::default()
        }
    );
}

#[tokio::test]
async fn forgeries_are_refused() {
    for f in [
        "forged-no-trailing-newline-v1.json",
        "forged-subject-included-when-absent-v1.json",
    ] {
        let (v, _) = check(&fixture(f)).await;
        assert!(matches!(v, Err(Reject::Forged(_))), "{f}: {v:?}");
    }
    let body = String::from_utf8(fixture("complaint-v2.json")).unwrap();
    let modified = body.replace("richard@example.com", "ceo@example.com");
    let (v, _) = check(modified.as_bytes()).await;
    assert!(matches!(v, Err(Reject::Forged(_))), "modified Message");
    let v3 = body.replace("\"SignatureVersion\": \"2\"", "\"SignatureVersion\": \"3\"");
    let (v, _) = check(v3.as_bytes()).await;
    assert!(matches!(v, Err(Reject::Forged(_))), "SignatureVersion 3");
}

#[tokio::test]
async fn certificate_urls_are_checked_before_any_fetch() {
    let body = String::from_utf8(fixture("complaint-v2.json")).unwrap();
    let good =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem";
    for bad in [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-0000000000000000000000.pem",
        "https://evil.s3.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-0000000000000000000000.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.txt",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem?x=1",
        "https://169.254.169.254/latest/meta-data.pem",
    ] {
        let forged = body.replace(good, bad);
        let (v, f) = check(forged.as_bytes()).await;
        assert!(v.is_err(), "{bad}");
        assert!(f.fetched.lock().unwrap().is_empty(), "{bad} was fetched");
        assert!(f.confirmed.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn only_allowed_topics_are_accepted_and_confirmed() {
    let (v, f) = check(&fixture("subscription-confirmation-v1.json")).await;
    assert_eq!(v.unwrap(), Verified::default());
    let confirmed = f.confirmed.lock().unwrap().clone();
    assert_eq!(confirmed.len(), 1);
    assert!(
        confirmed[0].starts_with("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")
    );
    // Correctly signed, but someone else's topic: refused, not confirmed.
    let (v, f) = check(&fixture("subscription-confirmation-foreign-topic-v1.json")).await;
    assert!(matches!(v, Err(Reject::Unauthorized(_))), "{v:?}");
    assert!(f.confirmed.lock().unwrap().is_empty());
    // An unsubscribe confirmation is never visited.
    let (v, f) = check(&fixture("unsubscribe-confirmation-v1.json")).await;
    assert_eq!(v.unwrap(), Verified::default());
    assert!(f.confirmed.lock().unwrap().is_empty());
    // A topic not allowed for this app, on a notification.
    let f = Recording::default();
    let other = ProviderConfig::Ses {
        topic_arns: vec!["arn:aws:sns:us-east-1:123456789012:other".into()],
    };
    let body = fixture("complaint-v2.json");
    assert!(matches!(
        check_with(&f, &other, &sns_headers(&body), &body, NOW).await,
        Err(Reject::Unauthorized(_))
    ));
    assert!(
        f.fetched.lock().unwrap().is_empty(),
        "nothing is fetched for a topic the app does not allow"
    );
}

#[tokio::test]
async fn a_certificate_that_cannot_be_fetched_is_answered_so_sns_retries() {
    let f = Recording::default();
    f.unreachable
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let body = fixture("complaint-v2.json");
    let r = check_with(&f, &config(), &sns_headers(&body), &body, NOW).await;
    let Err(reject) = r else { panic!("{r:?}") };
    assert!(matches!(reject, Reject::Unavailable(_)), "{reject:?}");
    // SNS retries only answers outside 200–4xx.
    assert_eq!(Provider::Ses.reject_status(&reject).as_u16(), 500);
    // Once the certificate can be fetched, the same delivery verifies.
    f.unreachable
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(
        check_with(&f, &config(), &sns_headers(&body), &body, NOW)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn headers_must_match_and_old_or_raw_messages_are_refused() {
    let body = fixture("complaint-v2.json");
    let f = Recording::default();
    let mut h = sns_headers(&body);
    h.insert(
        "x-amz-sns-message-type",
        HeaderValue::from_static("SubscriptionConfirmation"),
    );
    assert!(matches!(
        check_with(&f, &config(), &h, &body, NOW).await,
        Err(Reject::Forged(_))
    ));
    let mut h = sns_headers(&body);
    h.insert("x-amz-sns-message-id", HeaderValue::from_static("other"));
    assert!(matches!(
        check_with(&f, &config(), &h, &body, NOW).await,
        Err(Reject::Forged(_))
    ));
    let mut h = sns_headers(&body);
    h.insert("x-amz-sns-rawdelivery", HeaderValue::from_static("true"));
    assert!(matches!(
        check_with(&f, &config(), &h, &body, NOW).await,
        Err(Reject::Malformed(_))
    ));
    let h = sns_headers(&body);
    assert!(
        matches!(
            check_with(&f, &config(), &h, &body, NOW + 7200).await,
            Err(Reject::Stale(_))
        ),
        "2 h old"
    );
    for bad in [&b""[..], b"[]", b"{\"Type\":\"Notification\"", b"\xff"] {
        assert!(
            check_with(&f, &config(), &HeaderMap::new(), bad, NOW)
                .await
                .is_err()
        );
    }
    assert_eq!(
        Provider::Ses.retry_status().as_u16(),
        500,
        "SNS retries only 5xx"
    );
}

#[test]
fn ses_message_shapes_normalise() {
    assert_eq!(
        normalise(
            "m",
            "Successfully validated SNS topic for Amazon SES event publishing."
        )
        .events
        .len(),
        0
    );
    let on_list = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"OnAccountSuppressionList","bouncedRecipients":[{"emailAddress":"x@example.com"}]},"mail":{"destination":["x@example.com"]}}"#;
    // An echo of the account-level suppression list, as for every provider.
    assert_eq!(normalise("m", on_list).events[0].kind, Kind::Suppressed);
    let complaint_on_list = r#"{"notificationType":"Complaint","complaint":{"complaintSubType":"OnAccountSuppressionList","complainedRecipients":[{"emailAddress":"x@example.com"}]},"mail":{}}"#;
    assert_eq!(
        normalise("m", complaint_on_list).events[0].kind,
        Kind::Suppressed
    );
    let event_publishing = r#"{"eventType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"y@example.com"}]},"mail":{}}"#;
    assert_eq!(
        normalise("m", event_publishing).events[0].kind,
        Kind::Complaint
    );
}

async fn ses_events_are_honoured_end_to_end(db: Db) {
    let rec = Arc::new(Recording::default());
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: Clock::manual(NOW as u64 * 1000),
            sns: Some(rec.clone()),
            ..Options::default()
        },
    )
    .await;
    t.state
        .tenants
        .set_provider(&t.app, Provider::Ses, &config())
        .await
        .unwrap();
    let a = t.sim.add_contact(
        "richard@example.com",
        Some("r.alt@relay.wedeliver.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    let b = t.sim.add_contact(
        "b1@example.com",
        Some("jane@example.com"),
        None,
        EmailStatus::SingleOptIn,
    );
    let url = format!("{}/hooks/esp/ses/{}", t.base, t.app);
    let post = |body: Vec<u8>| {
        let h = sns_headers(&body);
        let url = url.clone();
        async move {
            let mut r = reqwest::Client::new().post(url).body(body);
            for (k, v) in &h {
                r = r.header(k, v);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(post(fixture("complaint-v2.json")).await, 200);
    assert_eq!(
        post(fixture("complaint-v2.json")).await,
        200,
        "SNS retry of the same MessageId"
    );
    assert_eq!(post(fixture("bounce-permanent-v1.json")).await, 200);
    assert_eq!(
        post(fixture("forged-no-trailing-newline-v1.json")).await,
        401
    );
    assert_eq!(
        post(fixture("subscription-confirmation-v1.json")).await,
        200
    );
    t.worker.drain().await.unwrap();
    // The complaint stops Richard everywhere; the bounce opts out Jane's address only.
    assert_eq!(
        t.sim.status("r.alt@relay.wedeliver.example"),
        Some(EmailStatus::Admin),
        "contact {a}"
    );
    assert_eq!(t.sim.status("jane@example.com"), Some(EmailStatus::Admin));
    assert_eq!(
        t.sim.status("b1@example.com"),
        Some(EmailStatus::SingleOptIn),
        "contact {b}: bounce is address-only"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events WHERE source = 'esp:ses' AND kind = 'complaint'")
            .await,
        1
    );
    assert_eq!(rec.confirmed.lock().unwrap().len(), 1);
}
on_both_backends!(ses_events_are_honoured_end_to_end);

/// "SNS ... the certificate ... a size cap enforced while the body streams": a certificate
/// URL answering an endless chunked body (no length announced) is refused once the cap is
/// passed, instead of being read for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sns_certificate_cap_holds_while_the_body_streams() {
    use optsync::providers::ses::HttpSnsFetcher;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-pem-file\r\ntransfer-encoding: chunked\r\n\r\n";
        s.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("1000\r\n{}\r\n", "A".repeat(0x1000));
        let mut sent = 0usize;
        // Until the client hangs up (or far past any sane certificate: 64 MiB).
        while sent < 64 << 20 && s.write_all(chunk.as_bytes()).await.is_ok() {
            sent += 0x1000;
        }
        sent
    });
    let fetcher = HttpSnsFetcher::with_client(reqwest::Client::new());
    let url = Url::parse(&format!("http://{addr}/SimpleNotificationService-x.pem")).unwrap();
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        fetcher.certificate(&url),
    )
    .await
    .expect("the endless certificate was read for ever");
    let err = got.expect_err("an endless certificate is refused");
    assert!(err.contains("too large"), "{err}");
    let sent = server.await.unwrap();
    assert!(sent < 64 << 20, "the client kept reading: {sent} bytes");
}
