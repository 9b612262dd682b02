//! Promises the README makes, one test each, named after the promise.

use optsync::clock::Now as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keap::EmailStatus;
use keap_sim::{FaultKind, KeapSim};
use sqlx::Connection as _;

use crate::processes::{add_tenant, cli_with, count, free_port, serve_with, wait_ready};
use crate::{Db, KEY, MASTER_KEY, Options, TempDir, TestApp, fresh_database, on_both_backends};

/// "Concurrent posts and webhook deliveries share one transaction (group commit), each
/// answered after the commit that holds it." On PostgreSQL every row carries the id of the
/// transaction that wrote it (`xmin`). The test locks the events table so that the first
/// post's transaction waits (seen in `pg_locks`), sends the other posts meanwhile, then lets
/// go: the posts that queued behind it share the next transaction. No post is answered
/// before its transaction commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_share_one_transaction() {
    let t = TestApp::spawn(Db::Postgres).await;
    let ids: Vec<i64> = (0..20).map(|i| t.contact(&format!("g{i}"), 1).0).collect();
    let mut gate = sqlx::AnyConnection::connect(&t.database_url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut gate)
        .await
        .unwrap();
    let post = |id: i64| {
        let url = t.post_url.clone();
        tokio::spawn(async move {
            crate::post_to(&url, &[("contactId", &id.to_string())])
                .await
                .0
        })
    };
    let first = post(ids[0]);
    let waiting =
        "SELECT COUNT(*) FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted";
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.count(waiting).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the first post never reached the store"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rest: Vec<_> = ids[1..].iter().map(|&id| post(id)).collect();
    // The other posts reach the committer's queue while the first transaction waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !first.is_finished() && rest.iter().all(|p| !p.is_finished()),
        "a post was answered before its transaction committed"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM events").await, 0);
    sqlx::raw_sql("COMMIT").execute(&mut gate).await.unwrap();
    assert_eq!(first.await.unwrap(), 200);
    for p in rest {
        assert_eq!(p.await.unwrap(), 200);
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM events").await, 20);
    let transactions = t
        .count("SELECT COUNT(DISTINCT xmin::text) FROM events")
        .await;
    assert!(
        transactions <= 3,
        "20 concurrent posts took {transactions} transactions"
    );
}

/// `optsync retry --dead` puts every dead job back in the queue, and they are honoured.
async fn retry_dead_re_drives_every_dead_job(db: Db) {
    let t = TestApp::spawn_with(
        db,
        Options {
            max_attempts: 1,
            ..Options::default()
        },
    )
    .await;
    let people: Vec<(i64, Vec<String>)> = (0..3).map(|i| t.contact(&format!("d{i}"), 2)).collect();
    for (id, e) in &people {
        t.sim
            .event(&e[0], keap_sim::SimEvent::Set(EmailStatus::Manual))
            .unwrap();
        assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 200);
    }
    // Keap fails every job's first call: with one attempt allowed, each is dead.
    t.sim.inject_fault(FaultKind::ServerError, 3);
    t.worker.drain().await.unwrap();
    let dead = "SELECT COUNT(*) FROM jobs WHERE state = 'dead'";
    assert_eq!(t.count(dead).await, 3);
    let env = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    let (ok, out, err) = cli_with(t.dir.path(), &t.database_url, &["retry", "--dead"], &env);
    assert!(ok, "{err}");
    assert!(out.contains('3'), "{out}");
    assert_eq!(t.count(dead).await, 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND attempts = 0")
            .await,
        3
    );
    t.worker.drain().await.unwrap();
    for (_, e) in &people {
        assert_eq!(t.sim.status(&e[1]), Some(EmailStatus::Admin), "{}", e[1]);
    }
}
on_both_backends!(retry_dead_re_drives_every_dead_job);

/// "`rotate-token` kills the old URL ... a running server stops accepting it within a
/// second." The rotation is made by the CLI, another process, so the server cannot have been
/// told: only its one-second cache can end the old token.
async fn rotate_token_takes_effect_within_a_second_on_a_running_server(db: Db) {
    // Each attempt from a client address of its own (through a trusted proxy), so that the
    // old token's refusals are not one client's guesses, which would bring 429s.
    let t = TestApp::spawn_with(
        db,
        Options {
            trusted_proxies: "127.0.0.1/32",
            ..Options::default()
        },
    )
    .await;
    let (id, _) = t.contact("rot", 1);
    let mut client = 0u32;
    let mut post = |url: &str| {
        client += 1;
        post_from(url.to_string(), id, client)
    };
    assert_eq!(post(&t.post_url).await, 200, "the old token, cached");
    let env = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    let (ok, out, err) = cli_with(
        t.dir.path(),
        &t.database_url,
        &["tenant", "rotate-token", &t.app],
        &env,
    );
    assert!(ok, "{err}");
    let token = out.trim().rsplit("auth=").next().unwrap().to_string();
    let old = t.post_url.clone();
    let new = format!("{}auth={token}", old.split("auth=").next().unwrap());
    assert_ne!(old, new);
    let rotated = Instant::now();
    loop {
        let (o, n) = (post(&old).await, post(&new).await);
        if (o, n) == (401, 200) {
            break;
        }
        // A second, and what a busy machine adds to it.
        assert!(
            rotated.elapsed() < Duration::from_secs(3),
            "old token answered {o}, new {n}, {:?} after the rotation",
            rotated.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Keap post for `contact` from client address number `client`, through the proxy.
async fn post_from(url: String, contact: i64, client: u32) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header(
            "x-forwarded-for",
            format!(
                "198.51.{}.{}, 127.0.0.1",
                client / 250 % 250,
                client % 250 + 1
            ),
        )
        .form(&[("contactId", contact.to_string())])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
on_both_backends!(rotate_token_takes_effect_within_a_second_on_a_running_server);

/// "`optsync serve` ... graceful on SIGTERM": the process exits 0, having answered what it
/// accepted, and stops listening; posts still arriving while it stops are either refused or
/// stored, never answered 200 and lost (the group committer is stopped after the listeners).
async fn serve_stops_cleanly_on_sigterm(db: Db) {
    let dir = TempDir::new("sigterm");
    let database_url = fresh_database(db, dir.path()).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let port = free_port();
    let (store, post_url) = add_tenant(
        &database_url,
        dir.path(),
        &sim,
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    let mut child = serve_with(dir.path(), &database_url, port, "term", false, None);
    wait_ready(port).await;
    for i in 0..5 {
        let id = sim.add_contact(
            &format!("t{i}@example.com"),
            None,
            None,
            EmailStatus::Manual,
        );
        assert_eq!(
            crate::post_to(&post_url, &[("contactId", &id.to_string())])
                .await
                .0,
            200
        );
    }
    let ids: Vec<i64> = (0..400)
        .map(|i| {
            let email = format!("late{i}@example.com");
            sim.add_contact(&email, None, None, EmailStatus::Manual)
        })
        .collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = ids
        .chunks(100)
        .map(|chunk| {
            tokio::spawn(post_until_refused(
                post_url.clone(),
                chunk.to_vec(),
                answered.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < 20 {
        assert!(Instant::now() < deadline, "the posts were not answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("optsync serve did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "stopped with {status:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
    let mut accepted = Vec::new();
    for p in posters {
        accepted.extend(p.await.unwrap());
    }
    assert!(
        accepted.len() >= 20 && accepted.len() < ids.len(),
        "{} posts answered 200 of {}: SIGTERM did not land while posts arrived",
        accepted.len(),
        ids.len()
    );
    let stored: std::collections::HashSet<i64> =
        sqlx::query_scalar("SELECT contact_id FROM events WHERE contact_id IS NOT NULL")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .into_iter()
            .collect();
    let lost: Vec<_> = accepted.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "answered 200 but not stored: {lost:?}");
    assert!(count(&store, "SELECT COUNT(*) FROM events").await >= 5 + accepted.len() as i64);
}
on_both_backends!(serve_stops_cleanly_on_sigterm);

/// Posts each contact in turn until the server stops answering; the contacts answered 200.
async fn post_until_refused(url: String, ids: Vec<i64>, answered: Arc<AtomicUsize>) -> Vec<i64> {
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    for id in ids {
        let sent = client
            .post(&url)
            .form(&[("contactId", id.to_string())])
            .send()
            .await;
        match sent {
            Ok(r) if r.status().as_u16() == 200 => {
                accepted.push(id);
                answered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    accepted
}

/// "pages are served with a strict Content-Security-Policy, `X-Frame-Options: DENY` and
/// `Cache-Control: no-store`": the sign-in page and a signed-in page alike.
async fn console_pages_carry_a_strict_csp_and_no_store(db: Db) {
    let t = TestApp::spawn_with(
        db,
        Options {
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let hash = optsync::console::auth::hash_password("correct horse battery staple").unwrap();
    let now = t.state.clock.now();
    t.state
        .store
        .set_admin_password("admin", &hash, now)
        .await
        .unwrap();
    let base = t.admin.clone().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/login"))
        .form(&[
            ("user", "admin"),
            ("password", "correct horse battery staple"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    for path in ["/login", "/", "/tenants/acme", "/report", "/report.csv"] {
        let r = http
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert!(path == "/login" || r.status() == 200, "{path}");
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for d in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            // Only the console's own script file runs: nothing inline, nothing evaluated.
            "script-src 'self'",
        ] {
            assert!(directives.contains(&d), "{path}: {d} missing from {csp}");
        }
        assert!(
            !csp.contains("unsafe-eval"),
            "{path}: no evaluated script may run: {csp}"
        );
        let script = directives
            .iter()
            .find(|d| d.starts_with("script-src"))
            .expect("a script-src directive");
        assert_eq!(*script, "script-src 'self'", "{path}: {csp}");
    }
}
on_both_backends!(console_pages_carry_a_strict_csp_and_no_store);

/// "OAuth ... a rotated refresh token is stored before the new access token is used", and
/// "secrets ... are encrypted at rest": after a job on an OAuth tenant, the token Keap
/// issued in exchange for the first one is in the store, sealed (its text appears nowhere in
/// the row), and it is the live one: Keap accepts it and no longer the first.
async fn an_oauth_tenants_rotated_refresh_token_is_stored_encrypted(db: Db) {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .oauth_client("cid", "csecret")
        .start()
        .await
        .unwrap();
    let t = TestApp::spawn_with(
        db,
        Options {
            sim: Some(sim),
            ..Options::default()
        },
    )
    .await;
    let token_url = format!("{}/token", t.sim.base_url());
    let grant = |form: Vec<(&'static str, String)>| {
        reqwest::Client::new()
            .post(&token_url)
            .basic_auth("cid", Some("csecret"))
            .form(&form)
            .send()
    };
    let code = t.sim.issue_auth_code("cid").unwrap();
    let first: serde_json::Value = grant(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rt0 = first["refresh_token"].as_str().unwrap().to_string();
    t.service
        .tenants()
        .add(optsync::tenant::TenantSpec {
            app: "oa".into(),
            keap_base_url: t.sim.crm_url(),
            credential: optsync::tenant::StoredCredential::OAuth {
                client_id: "cid".into(),
                client_secret: "csecret".into(),
                refresh_token: rt0.clone(),
                access_token: None,
                expires_at_ms: None,
                token_url: Some(token_url.clone()),
            },
            legacy_auth: false,
            opt_out_method: keap::OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    let post_url = t.service.tenants().post_url("oa").await.unwrap();
    let (id, emails) = t.contact("oauth", 2);
    t.sim
        .event(&emails[0], keap_sim::SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    assert_eq!(
        crate::post_to(&post_url, &[("contactId", &id.to_string())])
            .await
            .0,
        200
    );
    t.worker.drain().await.unwrap();
    assert_eq!(t.sim.status(&emails[1]), Some(EmailStatus::Admin));

    // The rotating pair lives in oauth_tokens (shared by every instance); the credential row
    // keeps the client and the first refresh token.
    let sealed: String = sqlx::query_scalar(
        "SELECT o.pair_sealed FROM oauth_tokens o JOIN tenants t ON t.id = o.tenant_id WHERE t.app = 'oa'",
    )
    .fetch_one(t.state.store.pool())
    .await
    .unwrap();
    let credential: String =
        sqlx::query_scalar("SELECT credential_sealed FROM tenants WHERE app = 'oa'")
            .fetch_one(t.state.store.pool())
            .await
            .unwrap();
    let key: [u8; 32] =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, MASTER_KEY)
            .unwrap()
            .try_into()
            .unwrap();
    let plain = optsync::crypto::SecretBox::new(key)
        .open(&sealed, "tenant:oa:oauth_tokens")
        .expect("sealed under the master key, for this tenant's OAuth tokens");
    let stored: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let rt1 = stored["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt0, "the rotated token is stored");
    for row in [&sealed, &credential] {
        assert!(
            !row.contains(&rt1) && !row.contains(&rt0) && !row.contains("csecret"),
            "no secret in clear in the rows"
        );
    }
    let works = |rt: String| {
        let g = grant(vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", rt),
        ]);
        async move { g.await.unwrap().status().is_success() }
    };
    assert!(!works(rt0).await, "Keap consumed the first refresh token");
    assert!(works(rt1).await, "the stored refresh token is the live one");
}
on_both_backends!(an_oauth_tenants_rotated_refresh_token_is_stored_encrypted);
