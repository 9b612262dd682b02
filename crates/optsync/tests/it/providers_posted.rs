//! Providers as they really post: each finding of the review of the providers' documented
//! payloads, end to end on both backends. Every fixture is written from the shape the
//! provider documents (named above each case); only the recipient is swapped for a contact's.
//!
//! The rule for echoes of a provider's own suppression list, the same for every provider:
//! that address alone is opted out (like a hard bounce), never the contact's other addresses.

use base64::Engine as _;
use keap::EmailStatus;
use optsync::clock::Clock;
use optsync::providers::{HttpAuth, Provider, ProviderConfig};

use crate::esp::{configure, post_raw, sendgrid_sign};
use crate::{Db, Options, TestApp, on_both_backends};

const T0: u64 = 1_800_000_000_000;
const CLIENT_SECRET: &str = "sparkpost-client-secret-0123456789abcdef";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/esp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn basic_header() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("hook:s3cret-pass")
    )
}

async fn post_basic(t: &TestApp, provider: &str, body: String) -> u16 {
    let url = format!("{}/hooks/esp/{provider}/{}", t.base, t.app);
    let headers = [
        ("authorization", basic_header()),
        ("content-type", "application/json".to_string()),
    ];
    post_raw(&url, &headers, body.into_bytes()).await.0
}

async fn set_up(db: Db) -> TestApp {
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: Clock::manual(T0),
            ..Options::default()
        },
    )
    .await;
    configure(&t).await;
    let basic = ProviderConfig::Http(HttpAuth::Basic {
        user: "hook".into(),
        password: "s3cret-pass".into(),
    });
    for p in [Provider::Mailjet, Provider::Brevo] {
        t.state
            .tenants
            .set_provider(&t.app, p, &basic)
            .await
            .unwrap();
    }
    let oauth = ProviderConfig::SparkpostOauth {
        client_id: optsync::providers::oauth::client_id_for(&t.app),
        client_secret: CLIENT_SECRET.into(),
    };
    t.state
        .tenants
        .set_provider(&t.app, Provider::Sparkpost, &oauth)
        .await
        .unwrap();
    t
}

/// Asserts which of a contact's addresses are stopped after the worker ran.
fn assert_stopped(t: &TestApp, emails: &[String], want: &[bool], case: &str) {
    let got: Vec<bool> = t
        .statuses(emails)
        .into_iter()
        .map(|s| s.is_some_and(EmailStatus::is_stop))
        .collect();
    assert_eq!(got, want, "{case}: {emails:?}");
}

/// Postmark (postmarkapp.com/developer/webhooks/bounce-webhook and the API's bounce types):
/// `Unsubscribe` (16) and `SpamNotification` (512) bounces are stops; a `ManualSuppression`
/// with `Origin: Customer` is the sender's staff, not the person.
async fn postmark_cases(t: &TestApp) {
    let (_, ann) = t.contact("ann", 3);
    let (_, bob) = t.contact("bob", 3);
    let (_, cy) = t.contact("cy", 3);
    let swap = |f: &str, to: &str| fixture(f).replace("john@example.com", to);
    for (f, to) in [
        ("postmark-bounce-unsubscribe.json", &ann[1]),
        ("postmark-bounce-spam-notification.json", &bob[0]),
        ("postmark-manual-suppression-customer.json", &cy[1]),
    ] {
        assert_eq!(post_basic(t, "postmark", swap(f, to)).await, 200, "{f}");
    }
    t.worker.drain().await.unwrap();
    assert_stopped(t, &ann, &[true; 3], "Postmark Unsubscribe bounce");
    assert_stopped(t, &bob, &[true; 3], "Postmark SpamNotification bounce");
    assert_stopped(t, &cy, &[false, true, false], "Postmark staff suppression");
}

/// Echoes of each provider's own suppression list: SendGrid `dropped` (event.md: reasons
/// Unsubscribed/Bounced/Spam Reporting Address; a content drop says nothing about the
/// address), Mailgun `failed` + `suppress-bounce` (Mailgun's event types page), Mailjet
/// `blocked` + `preblocked` and Brevo `blocked` (their event webhook pages).
async fn echo_cases(t: &TestApp) {
    let (_, dee) = t.contact("dee", 3);
    let (_, eve) = t.contact("eve", 3);
    let (_, gus) = t.contact("gus", 3);
    let (_, hal) = t.contact("hal", 3);
    let now = (T0 / 1000).to_string();
    let sg = fixture("sendgrid-dropped-echoes.json")
        .replace("example@test.com", &dee[1])
        .replace("other@test.com", &dee[2])
        .replace("1513299569", &now);
    let sg_url = format!("{}/hooks/esp/sendgrid/{}", t.base, t.app);
    let sg_headers = [
        (
            "x-twilio-email-event-webhook-signature",
            sendgrid_sign(&now, sg.as_bytes()),
        ),
        ("x-twilio-email-event-webhook-timestamp", now.clone()),
    ];
    assert_eq!(post_raw(&sg_url, &sg_headers, sg.into_bytes()).await.0, 200);
    let mg = fixture("mailgun-suppress-bounce.json").replace("u1@relay.wedeliver.example", &eve[1]);
    let mg_url = format!("{}/hooks/esp/mailgun/{}", t.base, t.app);
    let mg_headers = [("content-type", "application/json".to_string())];
    assert_eq!(post_raw(&mg_url, &mg_headers, mg.into_bytes()).await.0, 200);
    let mj = fixture("mailjet-preblocked.json").replace("bounce@mailjet.com", &gus[1]);
    assert_eq!(post_basic(t, "mailjet", mj).await, 200);
    let br = fixture("brevo-blocked.json").replace("example@domain.com", &hal[1]);
    assert_eq!(post_basic(t, "brevo", br).await, 200);
    t.worker.drain().await.unwrap();
    assert_stopped(t, &dee, &[false, true, false], "SendGrid dropped echo");
    assert_stopped(t, &eve, &[false, true, false], "Mailgun suppress-bounce");
    assert_stopped(t, &gus, &[false, true, false], "Mailjet preblocked");
    assert_stopped(t, &hal, &[false, true, false], "Brevo blocked");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events WHERE kind = 'suppressed'")
            .await,
        5,
        "each echo (and the Postmark staff suppression) is recorded as one"
    );
}

/// SparkPost (webhooks.apib and webhook-authentication.md): OAuth 2.0 client credentials —
/// a token from optsync's token URL, then `Authorization: Bearer`; a fixed bearer is never
/// accepted. The batch reuses one `event_id` for a suppression echo (bounce class 25) and a
/// spam complaint: de-duplicating on (provider, id, type) keeps the complaint.
async fn sparkpost_cases(t: &TestApp) {
    let (_, fay) = t.contact("fay", 3);
    let token_url = format!("{}/hooks/esp/sparkpost/{}/token", t.base, t.app);
    let form = |secret: &str| {
        format!(
            "grant_type=client_credentials&client_id=optsync-{}&client_secret={secret}",
            t.app
        )
    };
    let form_ct = [(
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    let (s, _) = post_raw(&token_url, &form_ct, form("wrong").into_bytes()).await;
    assert_eq!(s, 401, "a wrong client secret gets no token");
    let answer = reqwest::Client::new()
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(CLIENT_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // No cache on the way may keep a token (RFC 6749 §5.1).
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert_eq!(answer.headers()["pragma"], "no-cache");
    let tok: serde_json::Value = answer.json().await.unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    assert_eq!(tok["token_type"], "Bearer");

    let url = format!("{}/hooks/esp/sparkpost/{}", t.base, t.app);
    let body = fixture("sparkpost-reused-event-id.json").replace("recipient@example.com", &fay[1]);
    let with = |auth: &str| {
        [
            ("authorization", auth.to_string()),
            ("content-type", "application/json".to_string()),
        ]
    };
    let fixed = with(&format!("Bearer {CLIENT_SECRET}"));
    assert_eq!(
        post_raw(&url, &fixed, body.clone().into_bytes()).await.0,
        401
    );
    let (s, out) = post_raw(&url, &with(&format!("Bearer {token}")), body.into_bytes()).await;
    assert_eq!((s, out["duplicates"].as_u64()), (200, Some(0)), "{out}");
    t.worker.drain().await.unwrap();
    assert_stopped(
        t,
        &fay,
        &[true; 3],
        "SparkPost complaint sharing an event id",
    );
}

async fn providers_as_they_post(db: Db) {
    let t = set_up(db).await;
    postmark_cases(&t).await;
    echo_cases(&t).await;
    sparkpost_cases(&t).await;
}
on_both_backends!(providers_as_they_post);

/// Mailgun's signature covers its timestamp and token only: a delivery replayed to another
/// app that shares the Mailgun account (so the signing key) verifies there too. The token is
/// spent per signing key, so the replay is refused wherever it lands.
async fn a_mailgun_token_is_spent_at_every_app_sharing_the_key(db: Db) {
    let t = set_up(db).await;
    let (beta, _) = t
        .service
        .tenants()
        .add(optsync::tenant::TenantSpec {
            app: "beta".into(),
            keap_base_url: t.sim.crm_url(),
            credential: optsync::tenant::StoredCredential::ApiKey {
                key: crate::KEY.into(),
            },
            legacy_auth: false,
            opt_out_method: keap::OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    let shared_key = ProviderConfig::Mailgun {
        signing_key: "test-webhook-signing-key".into(),
        max_age_secs: 10 * 365 * 86_400,
    };
    t.state
        .tenants
        .set_provider(&beta.app, Provider::Mailgun, &shared_key)
        .await
        .unwrap();
    let body = fixture("mailgun-suppress-bounce.json").into_bytes();
    let headers = [("content-type", "application/json".to_string())];
    let at = |app: &str| format!("{}/hooks/esp/mailgun/{app}", t.base);
    assert_eq!(post_raw(&at(&t.app), &headers, body.clone()).await.0, 200);
    let (s, out) = post_raw(&at("beta"), &headers, body).await;
    assert_eq!(s, 406, "the token was spent at the other app: {out}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events e JOIN tenants t ON t.id = e.tenant_id WHERE t.app = 'beta'")
            .await,
        0
    );
}
on_both_backends!(a_mailgun_token_is_spent_at_every_app_sharing_the_key);
