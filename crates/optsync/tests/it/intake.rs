//! Keap's opt-out post, end to end: accepted, honoured on every address, idempotent; bad
//! input refused with nothing stored; a store outage answered 503.

use std::time::Duration;

use keap::EmailStatus;
use keap_sim::SimEvent;

use crate::{Db, TestApp, on_both_backends, post_to};

async fn action_set_post_opts_out_every_sibling_once(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, emails) = t.contact("ann", 3);
    t.sim.set_action_set_url(Some(&t.post_url));
    // The person clicks the unsubscribe link on EMAIL1; Keap posts to us.
    t.sim.event(&emails[0], SimEvent::UnsubscribeLink).unwrap();
    let posts = t
        .sim
        .wait_action_posts(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(posts[0].status, 200, "accepted");
    assert_eq!(t.count("SELECT COUNT(*) FROM events").await, 1);
    t.worker.drain().await.unwrap();
    assert_eq!(
        t.statuses(&emails),
        vec![
            Some(EmailStatus::Manual),
            Some(EmailStatus::Admin),
            Some(EmailStatus::Admin)
        ]
    );
    let writes = t.sim.stats().writes;
    assert_eq!(writes, 2);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events WHERE honoured_at IS NOT NULL")
            .await,
        1
    );
    // Audit: one row per address, the proof of when each was honoured.
    let audit = t.state.store.audit(None, None, 10).await.unwrap();
    let mut actions: Vec<(String, String)> = audit
        .iter()
        .map(|a| {
            let email = a.decision.email.as_ref().map(|e| e.to_string());
            (email.unwrap_or_default(), a.decision.action.to_string())
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        vec![
            (emails[0].clone(), "already_stopped".into()),
            (emails[1].clone(), "opted_out".into()),
            (emails[2].clone(), "opted_out".into())
        ]
    );
    assert!(
        audit
            .iter()
            .all(|a| a.honoured_at >= a.received_at
                && a.decision.contact.map(|c| c.get()) == Some(id))
    );

    // The same post again: 2xx, and no further write.
    let (status, _) = t
        .post(&[("contactId", &id.to_string()), ("Email", &emails[0])])
        .await;
    assert_eq!(status, 200);
    t.worker.drain().await.unwrap();
    assert_eq!(t.sim.stats().writes, writes, "a replay writes nothing");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events WHERE honoured_at IS NOT NULL")
            .await,
        2
    );
}
on_both_backends!(action_set_post_opts_out_every_sibling_once);

async fn both_url_shapes_and_an_address_only_post(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, emails) = t.contact("bo", 2);
    t.sim
        .event(&emails[1], SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    let token = t.post_url.split("auth=").nth(1).unwrap().to_string();
    let hooks = format!("{}/hooks/keap/{}?auth={token}", t.base, t.app);
    let (status, _) = post_to(&hooks, &[("contactId", &id.to_string())]).await;
    assert_eq!(status, 200);
    // No contact id: the address is resolved to its contacts by the worker.
    let (id2, emails2) = t.contact("cy", 2);
    t.sim
        .event(&emails2[0], SimEvent::Set(EmailStatus::Spam))
        .unwrap();
    let (status, _) = t.post(&[("FirstName", "Cy"), ("Email", &emails2[0])]).await;
    assert_eq!(status, 200);
    t.worker.drain().await.unwrap();
    assert_eq!(
        t.statuses(&emails),
        vec![Some(EmailStatus::Admin), Some(EmailStatus::Manual)]
    );
    assert_eq!(
        t.statuses(&emails2),
        vec![Some(EmailStatus::Spam), Some(EmailStatus::Admin)]
    );
    // The address-only post was stored without a contact, and the worker's decision names
    // the contact it resolved the address to.
    let (contact, email): (Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT contact_id, email FROM events WHERE source = 'keap_post' AND contact_id IS NULL",
    )
    .fetch_one(t.state.store.pool())
    .await
    .unwrap();
    assert_eq!(
        (contact, email.as_deref()),
        (None, Some(emails2[0].as_str()))
    );
    let decided: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT contact_id FROM audit WHERE email = $1")
            .bind(&emails2[1])
            .fetch_all(t.state.store.pool())
            .await
            .unwrap();
    assert_eq!(decided, vec![Some(id2)]);
}
on_both_backends!(both_url_shapes_and_an_address_only_post);

async fn bad_input_is_refused_and_nothing_is_stored(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, _) = t.contact("dee", 2);
    let id = id.to_string();
    let wrong = t.post_url.replace("auth=", "auth=x");
    let (s1, b1) = post_to(&wrong, &[("contactId", &id)]).await;
    let unknown = t.post_url.replace("app=acme", "app=nosuch");
    let (s2, b2) = post_to(&unknown, &[("contactId", &id)]).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2, "unknown app and wrong token look the same");
    let no_auth = format!("{}/process_optout.php?app=acme", t.base);
    assert_eq!(post_to(&no_auth, &[("contactId", &id)]).await.0, 401);

    let big = "x".repeat(70 * 1024);
    let r = reqwest::Client::new()
        .post(&t.post_url)
        .form(&[("contactId", id.as_str()), ("pad", &big)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413, "oversized body");

    let r = reqwest::Client::new()
        .post(&t.post_url)
        .header("content-type", "application/json")
        .body(format!("{{\"contactId\": {id}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "not a form");
    let (s, body) = t.post(&[("contactId", "12abc")]).await;
    assert_eq!(s, 400);
    assert!(
        body["error"].as_str().unwrap().contains("contactId"),
        "{body}"
    );
    assert_eq!(t.post(&[("FirstName", "Nobody")]).await.0, 400);
    assert_eq!(t.post(&[("Email", "not-an-address")]).await.0, 400);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events").await,
        0,
        "nothing stored"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM jobs").await, 0);
}
on_both_backends!(bad_input_is_refused_and_nothing_is_stored);

async fn repeated_failed_authentication_is_slowed(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, _) = t.contact("eve", 1);
    let wrong = t.post_url.replace("auth=", "auth=guess");
    for _ in 0..20 {
        assert_eq!(
            post_to(&wrong, &[("contactId", &id.to_string())]).await.0,
            401
        );
    }
    assert_eq!(
        post_to(&wrong, &[("contactId", &id.to_string())]).await.0,
        429
    );
    // Once an address is over the limit even the right token waits: nothing is stored.
    assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 429);
    assert_eq!(t.count("SELECT COUNT(*) FROM events").await, 0);
}
on_both_backends!(repeated_failed_authentication_is_slowed);

async fn a_store_outage_answers_503_so_keap_retries(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, _) = t.contact("fay", 2);
    t.state.store.close().await;
    let (status, body) = t.post(&[("contactId", &id.to_string())]).await;
    assert_eq!(status, 503, "{body}");
    let r = reqwest::get(format!("{}/readyz", t.base)).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let r = reqwest::get(format!("{}/healthz", t.base)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the process is alive");
}
on_both_backends!(a_store_outage_answers_503_so_keap_retries);

async fn legacy_six_character_auth_only_when_opted_in(db: Db) {
    use optsync::tenant::{StoredCredential, TenantSpec};
    let t = TestApp::spawn(db).await;
    let spec = |app: &str, key: &str, legacy: bool| TenantSpec {
        app: app.into(),
        keap_base_url: t.sim.crm_url(),
        credential: StoredCredential::ApiKey { key: key.into() },
        legacy_auth: legacy,
        opt_out_method: keap::OptOutMethod::Auto,
        allow_http: true,
    };
    let refused = t.state.tenants.add(spec("new", crate::KEY, true)).await;
    assert!(
        refused.is_err(),
        "KeapAK keys share their first 6 characters"
    );
    t.state
        .tenants
        .add(spec("old", "7cf726d0e1legacykey", true))
        .await
        .unwrap();
    t.state
        .tenants
        .add(spec("strict", "9ab123d0e1legacykey", false))
        .await
        .unwrap();
    assert!(
        t.state
            .tenants
            .authenticate("old", "7cf726")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        t.state
            .tenants
            .authenticate("old", "7cf72")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.state
            .tenants
            .authenticate("strict", "9ab123")
            .await
            .unwrap()
            .is_none()
    );
    // Switched off, the legacy token stops working and the full token still does.
    let (_, full) = t
        .state
        .tenants
        .add(spec("older", "5de726d0e1legacykey", true))
        .await
        .unwrap();
    assert!(t.state.tenants.disable_legacy("older").await.unwrap());
    let auth = |app: &'static str, token: String| {
        let tenants = t.state.tenants.clone();
        async move { tenants.authenticate(app, &token).await.unwrap().is_some() }
    };
    assert!(!auth("older", "5de726".into()).await);
    assert!(auth("older", full).await);
    // Rotating the token retires the weak legacy credential with the old token.
    t.state.tenants.rotate_token("old").await.unwrap();
    assert!(
        t.state
            .tenants
            .authenticate("old", "7cf726")
            .await
            .unwrap()
            .is_none()
    );
}
on_both_backends!(legacy_six_character_auth_only_when_opted_in);

/// Intake never calls Keap: a post is stored and answered without one, and a post for a
/// contact Keap does not know ends as `not_found`, visible in the events and the audit.
async fn intake_never_calls_keap_and_unknown_contacts_end_as_not_found(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, _) = t.contact("kim", 2);
    t.sim.reset_stats();
    assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 200);
    let (s, body) = t.post(&[("contactId", "987654")]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        t.sim.stats().total_calls(),
        0,
        "no Keap call before the answer"
    );
    let out = t.worker.drain().await.unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, optsync::worker::JobOutcome::NotFound { .. })),
        "{out:?}"
    );
    let nf = t
        .state
        .store
        .events(None, Some(optsync::store::JobState::NotFound), 10)
        .await
        .unwrap();
    assert_eq!(nf.len(), 1);
    assert_eq!(nf[0].contact_id, Some(987654));
    assert!(nf[0].honoured_at.is_none(), "nothing was honoured");
    let audit = t.state.store.audit(None, None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.decision.contact.map(|c| c.get()) == Some(987654)
                && a.decision.action == optsync::store::AuditAction::ContactNotFound)
    );
}
on_both_backends!(intake_never_calls_keap_and_unknown_contacts_end_as_not_found);

/// Behind a trusted proxy every request comes from the proxy's address: a flood of bad
/// tokens from one client must block that client only — not another client's post, and
/// never a signed provider delivery (which has no failure counting at all).
async fn a_guessing_client_behind_the_proxy_blocks_only_itself(db: Db) {
    let t = TestApp::spawn_with(
        db,
        crate::Options {
            trusted_proxies: "127.0.0.1/32",
            ..crate::Options::default()
        },
    )
    .await;
    crate::esp::configure(&t).await;
    let (id, _) = t.contact("pat", 2);
    let wrong = t.post_url.replace("auth=", "auth=guess");
    let http = reqwest::Client::new();
    let post = |url: &str, from: &str| {
        http.post(url)
            .header("x-forwarded-for", format!("{from}, 127.0.0.1"))
            .form(&[("contactId", id.to_string())])
            .send()
    };
    let mut refused = 0;
    for _ in 0..1_000 {
        match post(&wrong, "203.0.113.5").await.unwrap().status().as_u16() {
            401 => {}
            429 => refused += 1,
            s => panic!("{s}"),
        }
    }
    assert_eq!(refused, 1_000 - 20, "20 guesses a minute, then 429");
    // Another client behind the same proxy is served.
    assert_eq!(
        post(&t.post_url, "198.51.100.7").await.unwrap().status(),
        200
    );
    // The guessing client itself stays refused, even with the right token.
    assert_eq!(
        post(&t.post_url, "203.0.113.5").await.unwrap().status(),
        429
    );
    // A signed SendGrid delivery from the guessing client's address is accepted.
    let (_, ann) = t.contact("ann", 2);
    let now = t.state.clock.epoch_ms() / 1000;
    let body = format!(
        r#"[{{"email":"{}","timestamp":{now},"event":"spamreport","sg_event_id":"proxy-1"}}]"#,
        ann[0]
    )
    .into_bytes();
    let ts = now.to_string();
    let headers = vec![
        (
            "x-twilio-email-event-webhook-signature",
            crate::esp::sendgrid_sign(&ts, &body),
        ),
        ("x-twilio-email-event-webhook-timestamp", ts),
        ("content-type", "application/json".to_string()),
        ("x-forwarded-for", "203.0.113.5".to_string()),
    ];
    let url = format!("{}/hooks/esp/sendgrid/{}", t.base, t.app);
    let (s, out) = crate::esp::post_raw(&url, &headers, body).await;
    assert_eq!((s, out["queued"].as_u64()), (200, Some(1)), "{out}");
}
on_both_backends!(a_guessing_client_behind_the_proxy_blocks_only_itself);

/// A repeated `app` would let the gate count one app while the token is checked against
/// another: a fresh decoy before the real app on every guess is refused from the first, and
/// the real app's gate still closes for that client after 20 failures.
async fn a_decoy_app_before_the_real_one_evades_nothing(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, _) = t.contact("dee", 2);
    let real = t.post_url.clone();
    let base = real.split('?').next().unwrap().to_string();
    let form = [("contactId", id.to_string())];
    let http = reqwest::Client::new();
    for i in 0..300 {
        let url = format!("{base}?app=decoy{i}&app={}&auth=XXXXXX", t.app);
        let s = http.post(&url).form(&form).send().await.unwrap().status();
        assert_eq!(s, 400, "guess {i}: a repeated app is refused");
        let url = format!("{base}?app={}&auth=XXXXXX&auth=YYYYYY", t.app);
        let s = http.post(&url).form(&form).send().await.unwrap().status();
        assert_eq!(s, 400, "guess {i}: a repeated token is refused");
    }
    // Guessing the real app, alone: 20 failures, then that client is refused even with
    // the right token.
    let wrong = format!("{base}?app={}&auth=XXXXXX", t.app);
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            http.post(&wrong)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        http.post(&real).form(&form).send().await.unwrap().status(),
        429
    );
    // The path form is gated on the app the handler reads, percent-encoded or not.
    let path = format!("{}/hooks/keap/%61cme?auth=XXXXXX", t.base);
    assert_eq!(
        http.post(&path).form(&form).send().await.unwrap().status(),
        429
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM events").await, 0);
}
on_both_backends!(a_decoy_app_before_the_real_one_evades_nothing);

/// A tenant still on the legacy 6-character token is limited per app across every client:
/// guesses spread over many addresses close the legacy token for the hour, while the full
/// token keeps working.
async fn legacy_token_guesses_from_many_clients_close_the_legacy_token(db: Db) {
    let t = TestApp::spawn_with(
        db,
        crate::Options {
            trusted_proxies: "127.0.0.1/32",
            clock: keap::Clock::manual(1_780_000_000_000),
            settings: |s| s.legacy_failed_auth_per_hour = 30,
            ..crate::Options::default()
        },
    )
    .await;
    let spec = optsync::tenant::TenantSpec {
        app: "old".into(),
        keap_base_url: t.sim.crm_url(),
        credential: optsync::tenant::StoredCredential::ApiKey {
            key: "7cf726d0e1legacykey".into(),
        },
        legacy_auth: true,
        opt_out_method: keap::OptOutMethod::Auto,
        allow_http: true,
    };
    let (_, full) = t.state.tenants.add(spec).await.unwrap();
    let (id, _) = t.contact("lee", 2);
    let form = [("contactId", id.to_string())];
    let http = reqwest::Client::new();
    let post = |auth: &str, from: String| {
        http.post(format!("{}/process_optout.php?app=old&auth={auth}", t.base))
            .header("x-forwarded-for", from)
            .form(&form)
            .send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.unwrap().status().as_u16();
    assert_eq!(status(post("7cf726", "192.0.2.1".into()).await), 200);
    // 30 clients, one guess each: none of them reaches its own limit.
    for i in 0..30 {
        assert_eq!(
            status(post("aaaaaa", format!("2001:db8:{i}::1")).await),
            401
        );
    }
    assert_eq!(
        status(post("7cf726", "192.0.2.1".into()).await),
        401,
        "the legacy token is closed for the hour"
    );
    assert_eq!(
        status(post(&full, "192.0.2.1".into()).await),
        200,
        "the full token works"
    );
    t.state.clock.advance(Duration::from_secs(3601));
    assert_eq!(status(post("7cf726", "192.0.2.1".into()).await), 200);
}
on_both_backends!(legacy_token_guesses_from_many_clients_close_the_legacy_token);

/// `optsync serve` warns at start-up once for each tenant still accepting the legacy
/// 6-character token, naming it, and says nothing of a tenant that does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_once_per_tenant_on_the_legacy_token() {
    use crate::processes::{cli_with, free_port, serve_env, wait_ready};
    let dir = crate::TempDir::new("legacy-warn");
    let url = crate::fresh_database(Db::Sqlite, dir.path()).await;
    optsync::store::Store::open(&url).await.unwrap();
    let add = |app: &str, key: &str, legacy: bool| {
        let mut args = vec![
            "tenant",
            "add",
            app,
            "--keap-base-url",
            "http://127.0.0.1:9/crm",
            "--allow-http",
        ];
        if legacy {
            args.push("--legacy-auth");
        }
        let env = [
            ("OPTSYNC_KEAP_API_KEY", key),
            ("OPTSYNC_MASTER_KEY", crate::MASTER_KEY),
        ];
        let (ok, _, err) = cli_with(dir.path(), &url, &args, &env);
        assert!(ok, "{err}");
    };
    add("old", "7cf726d0e1legacykey", true);
    add("modern", crate::KEY, false);
    let port = free_port();
    let mut child = serve_env(dir.path(), &url, port, "legacy", false, None, &[]);
    wait_ready(port).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.path().join("serve-legacy.log")).unwrap();
    let warned: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("legacy 6-character token"))
        })
        .map(|l| l["fields"]["app"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(warned, vec!["old".to_string()], "{text}");
}

/// Behind a proxy that appends `X-Forwarded-For`, a client's own `Forwarded` header is
/// passed through: it must not decide who the client is.
async fn a_client_chosen_forwarded_header_does_not_change_the_client(db: Db) {
    let t = TestApp::spawn_with(
        db,
        crate::Options {
            trusted_proxies: "127.0.0.1/32",
            settings: |s| s.forwarded_header = optsync::config::ForwardedHeader::XForwardedFor,
            ..crate::Options::default()
        },
    )
    .await;
    let (id, _) = t.contact("fay", 2);
    let wrong = t.post_url.replace("auth=", "auth=guess");
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..40 {
        let r = http
            .post(&wrong)
            .header(
                "forwarded",
                format!("for=198.18.{}.{}", i / 200, i % 200 + 1),
            )
            .header("x-forwarded-for", "203.0.113.5")
            .form(&[("contactId", id.to_string())])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        20,
        "{statuses:?}"
    );
    // Another X-Forwarded-For client is its own.
    let r = http
        .post(&t.post_url)
        .header("forwarded", "for=203.0.113.5")
        .header("x-forwarded-for", "198.51.100.7")
        .form(&[("contactId", id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
on_both_backends!(a_client_chosen_forwarded_header_does_not_change_the_client);

/// A provider route that authenticates with a shared secret counts failures like the Keap
/// post: 20 wrong passwords a minute from one client, then 429 for that client only.
async fn wrong_provider_secrets_are_counted(db: Db) {
    use base64::Engine as _;
    let t = TestApp::spawn(db).await;
    crate::esp::configure(&t).await;
    let url = format!("{}/hooks/esp/postmark/{}", t.base, t.app);
    let body = br#"{"RecordType":"SpamComplaint","Email":"x@example.com"}"#.to_vec();
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("hook:guess")
    );
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let headers = [
            ("authorization", wrong.clone()),
            ("content-type", "application/json".to_string()),
        ];
        statuses.push(crate::esp::post_raw(&url, &headers, body.clone()).await.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
}
on_both_backends!(wrong_provider_secrets_are_counted);
