//! Customer accounts in the console: an operator invites a customer to app A (`acme`); the
//! customer sets a password through the link and lands signed in on their apps; every
//! console route of app B (`beta`, taken from the router's own table) and every operator
//! page answers them 404; the address lookup, report and CSV show only app A; a used or
//! expired (72 h, fixed clock) link is refused; an onboarding link (no app) shows an empty
//! list with "Connect a Keap app"; `optsync admin invite` prints the link last. And the
//! invite link followed in a real headless Chromium.

use std::time::Duration;

use keap::OptOutMethod;
use optsync::clock::{Clock, Now as _};
use optsync::console::auth::hash_password;
use optsync::console::routes::{Access, routes};
use optsync::tenant::{StoredCredential, TenantSpec};

use fantoccini::Locator;

use crate::console::Browser;
use crate::processes::cli_with;
use crate::{Db, KEY, MASTER_KEY, Options, TestApp, on_both_backends, post_to};

const PASSWORD: &str = "correct horse battery staple";
const CUSTOMER: &str = "cust@example.com";
/// 2026-11-30 00:00 UTC.
const T0: u64 = 1_796_083_200_000;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The session cookie a sign-in answered with, as a `Cookie` header value.
fn cookie_of(r: &reqwest::Response) -> String {
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// The value of the first `name="NAME" value="…"` in a page.
fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in\n{html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A signed-in account: its cookie and its CSRF token.
struct Signed {
    cookie: String,
    csrf: String,
}

impl Signed {
    async fn get(&self, url: &str) -> reqwest::Response {
        let r = http().get(url).header("cookie", &self.cookie).send().await;
        r.unwrap()
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut f = vec![("csrf", self.csrf.as_str())];
        f.extend_from_slice(form);
        let r = http().post(url).header("cookie", &self.cookie).form(&f);
        r.send().await.unwrap()
    }
}

async fn signed(base: &str, cookie: String) -> Signed {
    let s = Signed {
        cookie,
        csrf: String::new(),
    };
    let home = s.get(&format!("{base}/")).await;
    assert_eq!(home.status(), 200);
    let csrf = field(&home.text().await.unwrap(), "csrf");
    Signed { csrf, ..s }
}

/// acme (from the harness) and beta, each with one honoured opt-out of the same contact,
/// and `admin` an operator, signed in.
async fn two_apps(db: Db) -> (TestApp, String, Signed, i64) {
    let t = TestApp::spawn_with(
        db,
        Options {
            admin: true,
            clock: Clock::manual(T0),
            ..Options::default()
        },
    )
    .await;
    let base = t.admin.clone().unwrap();
    t.service
        .tenants()
        .add(TenantSpec {
            app: "beta".into(),
            keap_base_url: t.sim.crm_url(),
            credential: StoredCredential::ApiKey { key: KEY.into() },
            legacy_auth: false,
            opt_out_method: OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    let beta_url = t.service.tenants().post_url("beta").await.unwrap();
    let (id, emails) = t.contact("shared", 2);
    t.sim
        .event(
            &emails[0],
            keap_sim::SimEvent::Set(keap::EmailStatus::Manual),
        )
        .unwrap();
    let contact = id.to_string();
    assert_eq!(t.post(&[("contactId", &contact)]).await.0, 200);
    assert_eq!(post_to(&beta_url, &[("contactId", &contact)]).await.0, 200);
    t.worker.drain().await.unwrap();
    let beta_job: i64 = sqlx::query_scalar(
        "SELECT j.id FROM jobs j JOIN tenants t ON t.id = j.tenant_id WHERE t.app = 'beta'",
    )
    .fetch_one(t.state.store.pool())
    .await
    .unwrap();
    let now = t.state.clock.now();
    let hash = hash_password(PASSWORD).unwrap();
    t.state
        .store
        .set_admin_password("admin", &hash, now)
        .await
        .unwrap();
    let r = http()
        .post(format!("{base}/login"))
        .form(&[("user", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let operator = signed(&base, cookie_of(&r)).await;
    (t, base, operator, beta_job)
}

/// The operator's invite form: the link it shows, as a full URL.
async fn invite_from_console(base: &str, operator: &Signed, email: &str, app: &str) -> String {
    let r = operator
        .post(
            &format!("{base}/accounts/invite"),
            &[("email", email), ("app", app)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let at = page
        .find("<code id=\"invite-link\">")
        .expect("the link is shown")
        + 23;
    let link = &page[at..at + page[at..].find('<').unwrap()];
    assert!(link.starts_with("/invite/"), "{link}");
    format!("{base}{link}")
}

/// Sets the password through the link; the customer is signed in.
async fn accept(base: &str, link: &str) -> Signed {
    let form = http().get(link).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let short = [("password", "too short"), ("again", "too short")];
    let r = http().post(link).form(&short).send().await.unwrap();
    assert_eq!(r.status(), 400, "the rules of set-password");
    let ok = [("password", PASSWORD), ("again", PASSWORD)];
    let r = http().post(link).form(&ok).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    signed(base, cookie_of(&r)).await
}

/// A concrete URL for a route of app `app`.
fn concrete(path: &str, app: &str, job: i64) -> String {
    path.replace("{app}", app)
        .replace("{job}", &job.to_string())
        .replace("{token}", &"0".repeat(64))
}

/// Every route of another app, and every operator page, answers 404 — by every method the
/// router lists, and before any CSRF check.
async fn nothing_of_beta(base: &str, customer: &Signed, beta_job: i64) {
    let known_signed_in = [
        "/logout",
        "/",
        "/address",
        "/address/live",
        "/report",
        "/report.csv",
        // Connecting a new app is any account's; a reconnect is refused outside its own
        // apps (`keap_connect::a_customer_connects_their_own_app_and_no_one_elses`).
        "/keap/connect",
    ];
    let mut tried = 0;
    for r in routes() {
        assert_eq!(
            r.path.contains("{app}"),
            r.access == Access::App,
            "{}: a route of one app is guarded as one",
            r.path
        );
        match r.access {
            Access::App | Access::Operator => {}
            Access::Public => continue,
            Access::SignedIn => {
                assert!(
                    known_signed_in.contains(&r.path),
                    "{}: a new route every account may use: scope it and test it here",
                    r.path
                );
                continue;
            }
        }
        let url = format!("{base}{}", concrete(r.path, "beta", beta_job));
        for m in &r.methods {
            let status = match m.as_str() {
                "GET" => customer.get(&url).await.status(),
                _ => customer.post(&url, &[]).await.status(),
            };
            assert_eq!(status, 404, "{m} {url}");
            tried += 1;
        }
    }
    assert!(tried >= 6, "every route of an app and every operator page");
    for path in ["/report?app=beta", "/report.csv?app=beta"] {
        let r = customer.get(&format!("{base}{path}")).await;
        assert_eq!(r.status(), 404, "{path}");
    }
}

/// What the customer sees of app A, and only of app A.
async fn all_of_acme(base: &str, customer: &Signed, operator: &Signed) {
    let home = customer
        .get(&format!("{base}/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains("href=\"/tenants/acme\""), "{home}");
    assert!(
        !home.contains("beta"),
        "no other app on the customer's home"
    );
    let page = customer.get(&format!("{base}/tenants/acme")).await;
    assert_eq!(page.status(), 200);
    let csv = customer.get(&format!("{base}/report.csv")).await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!rows.is_empty(), "{csv}");
    assert!(rows.iter().all(|r| r.starts_with("acme,")), "{csv}");
    let r = customer.get(&format!("{base}/report.csv?app=acme")).await;
    assert_eq!(r.status(), 200);
    let lookup = format!("{base}/address?email=shared.2@example.com");
    let theirs = customer.get(&lookup).await.text().await.unwrap();
    let all = operator.get(&lookup).await.text().await.unwrap();
    assert!(all.contains(">beta<") && all.contains(">acme<"), "{all}");
    assert!(
        theirs.contains(">acme<") && !theirs.contains("beta"),
        "{theirs}"
    );
    let r = customer
        .post(&format!("{base}/tenants/acme/post-url/rotate"), &[])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"post-url\""));
}

async fn a_customer_sees_only_their_app(db: Db) {
    let (t, base, operator, beta_job) = two_apps(db).await;
    let link = invite_from_console(&base, &operator, CUSTOMER, "acme").await;
    let customer = accept(&base, &link).await;
    nothing_of_beta(&base, &customer, beta_job).await;
    all_of_acme(&base, &customer, &operator).await;

    // The link is spent: it opens nothing, sets nothing.
    assert_eq!(http().get(&link).send().await.unwrap().status(), 404);
    let again = [
        ("password", "another long password"),
        ("again", "another long password"),
    ];
    let r = http().post(&link).form(&again).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // The accounts page lists both, with role and apps; the actions name who did them.
    let page = operator
        .get(&format!("{base}/accounts"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<td class=\"role\">customer</td><td class=\"apps\">acme</td>"),
        "{page}"
    );
    assert!(page.contains("<td class=\"role\">operator</td><td class=\"apps\">every app</td>"));
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM admin_actions WHERE (user_name = 'admin' AND action = 'invite' AND target = $1)
         OR (user_name = $1 AND action IN ('accept_invite', 'rotate_post_url'))",
    )
    .bind(CUSTOMER)
    .fetch_one(t.state.store.pool())
    .await
    .unwrap();
    assert_eq!(recorded, 3);
    onboarding_and_expiry(&t, &base, &operator).await;
}
on_both_backends!(a_customer_sees_only_their_app);

/// An invite without an app: an empty list and the way to connect one; an app granted
/// later shows up. A link 72 hours old is refused; an operator cannot be invited.
async fn onboarding_and_expiry(t: &TestApp, base: &str, operator: &Signed) {
    let link = invite_from_console(base, operator, "new@example.com", "").await;
    let newcomer = accept(base, &link).await;
    let home = newcomer
        .get(&format!("{base}/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains("id=\"no-apps\"") && home.contains("Connect a Keap app"));
    assert!(!home.contains("acme") && !home.contains("beta"));
    let r = newcomer.get(&format!("{base}/report.csv")).await;
    assert_eq!(r.status(), 404, "never the report of every app");
    let beta = t.state.store.tenant_by_app("beta").await.unwrap().unwrap();
    let now = t.state.clock.now();
    t.state
        .store
        .grant_app("new@example.com", beta.id, now)
        .await
        .unwrap();
    let home = newcomer
        .get(&format!("{base}/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains("href=\"/tenants/beta\""), "{home}");

    let late = invite_from_console(base, operator, "late@example.com", "acme").await;
    t.state.clock.advance(Duration::from_secs(72 * 3600 - 1));
    assert_eq!(http().get(&late).send().await.unwrap().status(), 200);
    t.state.clock.advance(Duration::from_secs(1));
    assert_eq!(http().get(&late).send().await.unwrap().status(), 404);
    let ok = [("password", PASSWORD), ("again", PASSWORD)];
    let r = http().post(&late).form(&ok).send().await.unwrap();
    assert_eq!(r.status(), 404, "an expired link sets nothing");
    let role = t
        .state
        .store
        .account_role("late@example.com")
        .await
        .unwrap();
    assert_eq!(role, None);
    optsync::housekeeping::prune(&t.state).await;
    let left = t.count("SELECT COUNT(*) FROM console_invites WHERE email = 'late@example.com'");
    assert_eq!(left.await, 0, "housekeeping forgets expired invites");
    t.state
        .store
        .set_admin_password("admin@example.com", "h", now)
        .await
        .unwrap();
    let refused = optsync::console::invite::invite(&t.state, "admin@example.com", None, "x");
    assert!(refused.await.is_err(), "an operator is never invited");
}

async fn the_cli_prints_the_link_last(db: Db) {
    let (t, base, _, _) = two_apps(db).await;
    let env = [
        ("OPTSYNC_MASTER_KEY", MASTER_KEY),
        ("OPTSYNC_ADMIN_PUBLIC_URL", "https://console.example.com"),
    ];
    let (dir, url) = (t.dir.path().to_path_buf(), t.database_url.clone());
    let args = ["admin", "invite", "cli@example.com", "--app", "acme"];
    let run = move || cli_with(&dir, &url, &args, &env);
    let (ok, out, err) = tokio::task::spawn_blocking(run).await.unwrap();
    assert!(ok, "{out}{err}");
    let last = out.lines().last().unwrap();
    let token = last
        .strip_prefix("https://console.example.com/invite/")
        .unwrap_or_else(|| panic!("the link alone on the last line:\n{out}"));
    assert_eq!(token.len(), 64);
    // It is a working link on this console.
    let r = http()
        .get(format!("{base}/invite/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("cli@example.com"));

    let (dir, url) = (t.dir.path().to_path_buf(), t.database_url.clone());
    let no_url = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    let run = move || cli_with(&dir, &url, &["admin", "invite", "x@example.com"], &no_url);
    let (ok, _, err) = tokio::task::spawn_blocking(run).await.unwrap();
    assert!(!ok && err.contains("OPTSYNC_ADMIN_PUBLIC_URL"), "{err}");
}
on_both_backends!(the_cli_prints_the_link_last);

/// The invite link in a real browser: set the password, land on the customer's own apps;
/// another app's page is not there for them.
async fn an_invited_customer_in_a_browser(db: Db) {
    let (_t, base, operator, _) = two_apps(db).await;
    let link = invite_from_console(&base, &operator, CUSTOMER, "acme").await;
    let b = Browser::start().await;
    let c = b.c();
    c.goto(&link).await.unwrap();
    assert_eq!(b.text("#account").await, CUSTOMER);
    for name in ["password", "again"] {
        let css = format!("input[name={name}]");
        let field = c.find(Locator::Css(&css)).await.unwrap();
        field.send_keys(PASSWORD).await.unwrap();
    }
    b.check_page("invite").await;
    let button = c.find(Locator::Id("set-password")).await.unwrap();
    button.click().await.unwrap();
    assert_eq!(b.text("#apps").await, "acme", "signed in, on their apps");
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    b.check_page("customer-apps").await;
    c.goto(&format!("{base}/tenants/beta")).await.unwrap();
    assert_eq!(b.text("body").await, "no such app");
    c.goto(&format!("{base}/tenants/acme")).await.unwrap();
    b.settle("#events").await;
    b.stop().await;
}
on_both_backends!(an_invited_customer_in_a_browser);
