//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which scripts/test installs), driven over WebDriver: sign in, the overview's counts, a
//! dead job retried from its button, the address page's decisions, a form without its CSRF
//! token refused, wrong passwords refused and slowed. Each page's screenshot is saved under
//! `target/console-screenshots/`. Then, over plain HTTP: every page redirects to sign-in
//! without a session, the console is not on the hook listener, a planted session cookie is
//! never promoted, and the cookie's flags.

use optsync::clock::Now as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use keap_sim::FaultKind;
use optsync::console::auth::hash_password;

use crate::processes::free_port;
use crate::{Db, Options, TempDir, TestApp, on_both_backends};

const PASSWORD: &str = "correct horse battery staple";

/// chromedriver and a headless Chromium session; chromedriver is stopped when dropped.
struct Browser {
    driver: Child,
    client: Option<Client>,
    _profile: TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = TempDir::new("chromium");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Self {
            driver,
            client: Some(client),
            _profile: profile,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Saves what the browser shows as target/console-screenshots/NAME.png.
    async fn shot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The text of the first element matching `css`, waiting for it to appear (a click's
    /// navigation may still be under way).
    async fn text(&self, css: &str) -> String {
        self.settle(css).await.text().await.unwrap()
    }

    async fn settle(&self, css: &str) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
    }

    async fn sign_in(&self, base: &str, user: &str, password: &str) {
        let c = self.c();
        c.goto(&format!("{base}/login")).await.unwrap();
        let u = c.find(Locator::Css("input[name=user]")).await.unwrap();
        u.clear().await.unwrap();
        u.send_keys(user).await.unwrap();
        c.find(Locator::Css("input[name=password]"))
            .await
            .unwrap()
            .send_keys(password)
            .await
            .unwrap();
        c.find(Locator::Id("sign-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // Wait for the answer: the overview, or the sign-in page saying why not.
        self.settle("#error, #tenants").await;
    }

    async fn stop(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A service with some history: opt-outs honoured, one dead job.
async fn with_history(db: Db) -> (TestApp, Vec<String>, i64) {
    let t = TestApp::spawn_with(
        db,
        Options {
            admin: true,
            max_attempts: 1,
            ..Options::default()
        },
    )
    .await;
    let now = t.state.clock.now();
    let hash = hash_password(PASSWORD).unwrap();
    t.state
        .store
        .set_admin_password("admin", &hash, now)
        .await
        .unwrap();
    let (ann, ann_emails) = t.contact("ann", 3);
    t.sim
        .event(
            &ann_emails[0],
            keap_sim::SimEvent::Set(keap::EmailStatus::Manual),
        )
        .unwrap();
    t.post(&[("contactId", &ann.to_string())]).await;
    for i in 0..3 {
        // Keap posts for a contact that opted out: its stop status is there to honour.
        let (id, emails) = t.contact(&format!("p{i}"), 1);
        t.sim
            .event(
                &emails[0],
                keap_sim::SimEvent::Set(keap::EmailStatus::Manual),
            )
            .unwrap();
        t.post(&[("contactId", &id.to_string())]).await;
    }
    t.worker.drain().await.unwrap();
    // Keap fails the next job's first call: with one attempt allowed, it is dead.
    let (bob, _) = t.contact("bob", 1);
    t.post(&[("contactId", &bob.to_string())]).await;
    t.sim.inject_fault(FaultKind::ServerError, 1);
    t.worker.drain().await.unwrap();
    let dead: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'dead'")
        .fetch_one(t.state.store.pool())
        .await
        .unwrap();
    (t, ann_emails, dead)
}

async fn the_console_in_a_browser(db: Db) {
    let (t, ann, dead_job) = with_history(db).await;
    let base = t.admin.clone().unwrap();
    let b = Browser::start().await;
    let c = b.c();

    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/login",
        "no session: sign in first"
    );
    b.shot("01-sign-in").await;
    b.sign_in(&base, "admin", PASSWORD).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    let row = "tr[data-app=acme]";
    assert_eq!(b.text(&format!("{row} .dead")).await, "1");
    assert_eq!(b.text(&format!("{row} .pending")).await, "0");
    assert!(
        b.text(&format!("{row} td:nth-child(2)"))
            .await
            .contains("dead")
    );
    b.shot("02-overview").await;

    // Retry the dead job from its button: it is pending again.
    c.goto(&format!("{base}/tenants/acme")).await.unwrap();
    b.shot("03-tenant").await;
    let button = format!("tr[data-job='{dead_job}'] button.retry");
    c.find(Locator::Css(&button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.settle("#events").await;
    let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(dead_job)
        .fetch_one(t.state.store.pool())
        .await
        .unwrap();
    assert_eq!(state, "pending");
    assert!(
        c.find(Locator::Css(&button)).await.is_err(),
        "no longer listed as stuck"
    );

    // The address page: every decision this test caused about Ann's Email 2.
    c.goto(&format!("{base}/address?email={}", ann[1]))
        .await
        .unwrap();
    b.settle("#decisions").await;
    let decisions = c
        .find_all(Locator::Css("#decisions tr"))
        .await
        .unwrap()
        .len()
        - 1;
    // This test caused one decision about it: Ann's Manual Email made the job opt it out.
    assert_eq!(decisions, 1);
    assert_eq!(b.text("#decisions td.action").await, "opted_out");
    b.shot("04-address").await;
    c.goto(&format!("{base}/report")).await.unwrap();
    assert!(b.text("#summary").await.contains("opt-outs: 5"));
    b.shot("05-report").await;

    // A form posted without the session's CSRF token is refused.
    let cookie = c.get_named_cookie("optsync_session").await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{base}/tenants/acme/jobs/{dead_job}/retry"))
        .header("cookie", format!("optsync_session={}", cookie.value()))
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Signed out, wrong passwords are refused, then slowed.
    c.find(Locator::Css("header button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.settle("#sign-in").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/login");
    b.sign_in(&base, "admin", "wrong password").await;
    assert_eq!(b.text("#error").await, "Wrong user or password.");
    let mut slowed = false;
    for _ in 0..5 {
        b.sign_in(&base, "admin", "wrong again").await;
        slowed |= b
            .text("#error")
            .await
            .starts_with("Too many failed sign-ins");
    }
    assert!(slowed, "repeated failures are slowed");
    b.shot("06-slowed").await;
    b.stop().await;
}
on_both_backends!(the_console_in_a_browser);

/// Without a browser: sessions, cookies and where the console is not.
async fn console_security(db: Db) {
    let (t, _, _) = with_history(db).await;
    let base = t.admin.clone().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/",
        "/tenants/acme",
        "/address?email=a@b.example",
        "/report",
        "/report.csv",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/login", "{path}");
    }
    for path in ["/", "/login", "/metrics", "/report"] {
        let r = http.get(format!("{}{path}", t.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path} is not on the hook listener");
    }
    // A planted cookie is not a session, and signing in issues a new one.
    let planted = "a".repeat(64);
    let r = http
        .get(format!("{base}/"))
        .header("cookie", format!("optsync_session={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", format!("optsync_session={planted}"))
        .form(&[("user", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains(&planted),
        "the planted token is never promoted"
    );
    let token = set.split(';').next().unwrap().to_string();
    let ok = http
        .get(format!("{base}/"))
        .header("cookie", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "DENY");
    let old = http
        .get(format!("{base}/"))
        .header("cookie", format!("optsync_session={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 303);
    let actions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM admin_actions WHERE action = 'sign_in' AND user_name = 'admin'",
    )
    .fetch_one(t.state.store.pool())
    .await
    .unwrap();
    assert_eq!(actions, 1, "the sign-in is recorded with who and when");
    // An expired session is refused, and housekeeping forgets it.
    let now = t.state.clock.now();
    let stale = "b".repeat(64);
    let digest = optsync::console::auth::digest(&stale);
    t.state
        .store
        .create_session(&digest, "admin", "c", now - 10, now - 1)
        .await
        .unwrap();
    let r = http
        .get(format!("{base}/"))
        .header("cookie", format!("optsync_session={stale}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    optsync::housekeeping::prune(&t.state).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_sessions WHERE token_hash = $1")
        .bind(&digest)
        .fetch_one(t.state.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    sign_in_is_slowed_after_three_failures(&http, &base).await;
}
on_both_backends!(console_security);

/// After three failed sign-ins, the next attempt must wait: even the right password is
/// refused (429, no session) right after a fourth failure.
async fn sign_in_is_slowed_after_three_failures(http: &reqwest::Client, base: &str) {
    let attempt = |password: &'static str| {
        http.post(format!("{base}/login"))
            .form(&[("user", "admin"), ("password", password)])
            .send()
    };
    for _ in 0..4 {
        assert_eq!(attempt("wrong password").await.unwrap().status(), 401);
    }
    let r = attempt(PASSWORD).await.unwrap();
    assert_eq!(
        r.status(),
        429,
        "the right password, too soon after failures"
    );
    assert!(r.headers().get("set-cookie").is_none(), "no session");
}
