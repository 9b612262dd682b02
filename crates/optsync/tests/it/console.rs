//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which scripts/test installs), driven over WebDriver: sign in, the overview's counts, a
//! dead job retried from its button, the address page's decisions, the report's date
//! pickers, a form without its CSRF token refused, wrong passwords refused and slowed.
//! Every page is checked as a customer reads it (see [`Browser::check_page`]: no sideways
//! scrolling at 1280 and 390 px, times in the viewer's zone, no ISO timestamp or stored
//! identifier) and its screenshot saved under `target/console-screenshots/` (and under
//! `docs/screenshots/` with `OPTSYNC_UPDATE_SCREENSHOTS=1`). Then, over plain HTTP: every page redirects to sign-in
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

pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// The browser's time zone: UTC+05:30 all year.
const VIEWER_TZ: &str = "Asia/Kolkata";
const VIEWER_OFFSET_MS: i64 = 330 * 60_000;

/// `2026-11-30T12:17:07` (with `.514` after it, when `millis`) somewhere in `s`.
fn has_iso(s: &str, millis: bool) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (0..b.len().saturating_sub(20)).any(|i| {
        digits(i..i + 4)
            && b[i + 4] == b'-'
            && digits(i + 5..i + 7)
            && b[i + 7] == b'-'
            && digits(i + 8..i + 10)
            && b[i + 10] == b'T'
            && digits(i + 11..i + 13)
            && b[i + 13] == b':'
            && (!millis || (b[i + 19] == b'.' && b[i + 20].is_ascii_digit()))
    })
}

/// The stored words a page must put in a sentence instead.
fn raw_identifiers() -> Vec<String> {
    use optsync::store::{AuditAction, EventKind, JobState};
    let stored = AuditAction::ALL
        .iter()
        .map(|a| a.as_str())
        .chain(EventKind::ALL.iter().map(|k| k.as_str()))
        .chain(JobState::ALL.iter().map(|s| s.as_str()))
        .filter(|w| w.contains('_'));
    let more = [
        "keap_post",
        "esp:",
        "fanout",
        "discrepancy",
        "sign_in",
        "sign_out",
        "retry_job",
        "reveal_post_url",
        "live_status",
        "xmlrpc",
    ];
    stored.chain(more).map(String::from).collect()
}

/// chromedriver and a headless Chromium session; chromedriver is stopped when dropped.
pub(crate) struct Browser {
    driver: Child,
    client: Option<Client>,
    _profile: TempDir,
}

impl Browser {
    pub(crate) async fn start() -> Self {
        let port = free_port();
        // The viewer's zone is not UTC, so that the pages' times are seen to be rewritten.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TZ", VIEWER_TZ)
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
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900", "--lang=en-GB",
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

    pub(crate) fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Saves what the browser shows as target/console-screenshots/NAME.png, and, for the
    /// README's pictures (`readme`) with `OPTSYNC_UPDATE_SCREENSHOTS=1`, as
    /// docs/screenshots/NAME.png.
    pub(crate) async fn shot(&self, name: &str, readme: bool) {
        let png = self.c().screenshot().await.unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut dirs = vec![root.join("target/console-screenshots")];
        if readme && std::env::var_os("OPTSYNC_UPDATE_SCREENSHOTS").is_some() {
            dirs.push(root.join("docs/screenshots"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        }
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.c().execute(script, Vec::new()).await.unwrap()
    }

    /// Resizes the window and waits until the page's viewport is `width` wide.
    async fn width(&self, width: u32) {
        self.c().set_window_size(width, 900).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let inner = self.js("return window.innerWidth").await;
            if inner.as_u64() == Some(u64::from(width)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the viewport stays {inner}, not {width}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page as a customer reads it, at 1280 px then 390 px: nothing scrolls sideways
    /// (the page is no wider than its viewport less a vertical scroll bar)
    /// (at 1280 px not even a table inside its box); no ISO timestamp in the text and none
    /// with milliseconds even in the markup; no stored identifier; every time rewritten by
    /// the page's script. Saves NAME and NAME-390 screenshots.
    pub(crate) async fn check_page(&self, name: &str) {
        self.width(1280).await;
        let source = self.c().source().await.unwrap();
        assert!(
            !has_iso(&source, true),
            "{name}: an ISO time with milliseconds"
        );
        let text = self.text("body").await;
        assert!(!has_iso(&text, false), "{name}: a raw ISO time: {text}");
        for id in raw_identifiers() {
            assert!(!text.contains(&id), "{name} shows {id:?}: {text}");
        }
        let unrewritten = self
            .js("return document.querySelectorAll('time:not([data-local])').length")
            .await;
        assert_eq!(unrewritten, 0, "{name}: a time not in the viewer's zone");
        let overflow = "return [\
            document.documentElement.scrollWidth - document.documentElement.clientWidth, \
            Array.from(document.querySelectorAll('.wrap')) \
                .filter(w => w.scrollWidth > w.clientWidth).length]";
        assert_eq!(
            self.js(overflow).await,
            serde_json::json!([0, 0]),
            "{name} at 1280 px"
        );
        self.shot(name, true).await;
        self.width(390).await;
        let page = self.js(overflow).await;
        assert_eq!(page[0], 0, "{name} scrolls sideways at 390 px");
        self.shot(&format!("{name}-390"), false).await;
        self.width(1280).await;
    }

    /// The text of the first element matching `css`, waiting for it to appear (a click's
    /// navigation may still be under way).
    pub(crate) async fn text(&self, css: &str) -> String {
        self.settle(css).await.text().await.unwrap()
    }

    pub(crate) async fn settle(&self, css: &str) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
    }

    pub(crate) async fn sign_in(&self, base: &str, user: &str, password: &str) {
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

    pub(crate) async fn stop(mut self) {
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
    b.check_page("sign-in").await;
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
    b.check_page("overview").await;
    times_are_in_the_viewers_zone(&b, &format!("{row} td:nth-child(3) time")).await;

    // The app's page: each contact with its addresses; the dead job, retried from its
    // button, is pending again and the page says nothing is stuck.
    c.goto(&format!("{base}/tenants/acme")).await.unwrap();
    let events = b.text("#events").await;
    for a in &ann {
        assert!(
            events.contains(a.as_str()),
            "Ann's {a} beside her contact: {events}"
        );
    }
    assert!(events.contains("Keap's opt-out post"), "{events}");
    b.check_page("app").await;
    let button = format!("tr[data-job='{dead_job}'] button.retry");
    c.find(Locator::Css(&button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        b.text("#no-stuck").await,
        "Nothing blocked or dead — every opt-out went through."
    );
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
    assert_eq!(b.text("#decisions td.action").await, "opted out");
    c.find(Locator::Id("live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let live = b.text("table#live").await;
    assert!(
        live.contains("Opt-Out: Admin (no marketing mail)"),
        "{live}"
    );
    b.check_page("address").await;
    the_report_by_date_pickers(&b, &t, &base).await;

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
    b.shot("sign-in-slowed", false).await;
    b.stop().await;
}
on_both_backends!(the_console_in_a_browser);

/// The time in `css` reads in the viewer's zone (UTC+05:30) with its age; its tooltip keeps
/// the UTC time the server wrote.
async fn times_are_in_the_viewers_zone(b: &Browser, css: &str) {
    let el = b.settle(css).await;
    let at = el.attr("datetime").await.unwrap().unwrap();
    let ms = optsync::report::parse_date(&at).unwrap();
    let local = optsync::clock::rfc3339(ms + VIEWER_OFFSET_MS);
    let text = el.text().await.unwrap();
    // 24-hour or 12-hour, as the browser's locale has it.
    let (h, m): (u32, &str) = (local[11..13].parse().unwrap(), &local[14..16]);
    let twelve = format!(
        "{:02}:{m} {}",
        (h + 11) % 12 + 1,
        if h < 12 { "AM" } else { "PM" }
    );
    assert!(
        text.contains(&local[11..16]) || text.contains(&twelve),
        "{text} is not {local} local"
    );
    assert!(
        text.ends_with(" ago") || text.ends_with("just now"),
        "{text}"
    );
    let title = el.attr("title").await.unwrap().unwrap_or_default();
    assert!(title.ends_with(" UTC"), "{title}");
}

/// The report for today alone, picked in the date pickers, holds today's opt-outs; a day
/// that is not a date is refused in a sentence, with nothing else shown.
async fn the_report_by_date_pickers(b: &Browser, t: &TestApp, base: &str) {
    let c = b.c();
    c.goto(&format!("{base}/report")).await.unwrap();
    let today = optsync::clock::rfc3339(t.state.clock.epoch_ms())[..10].to_string();
    let until = b.settle("input[name=until][type=date]").await;
    assert_eq!(until.prop("value").await.unwrap().unwrap(), today);
    b.js(&format!(
        "document.querySelector('input[name=since]').value = '{today}'; \
         document.querySelector('form.fields').submit()"
    ))
    .await;
    b.settle("#opt-outs").await;
    assert!(b.text("#summary").await.contains("opt-outs: 5"));
    let url = c.current_url().await.unwrap();
    assert!(
        url.query().unwrap().contains(&format!("since={today}")),
        "{url}"
    );
    b.check_page("report").await;
    c.goto(&format!("{base}/report?since=2026-02-30&until={today}"))
        .await
        .unwrap();
    assert_eq!(
        b.text("#error").await,
        "The first date “2026-02-30” is not a date: pick one from the calendar."
    );
    assert!(c.find(Locator::Css("#summary")).await.is_err());
    assert!(c.find(Locator::Css("#opt-outs")).await.is_err());
}

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
