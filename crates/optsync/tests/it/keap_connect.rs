//! The console's "Connect a Keap app" against the emulator's consent page: in Chromium, an
//! operator connects an app and sees Keap's first post arrive; over HTTP, a callback with a
//! missing, wrong, foreign or replayed `state`, a replayed `code`, a denial or an ended session
//! creates nothing; and a revoked grant shows the banner until the app is reconnected, which
//! runs its waiting jobs.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use keap::EmailStatus;
use keap_sim::{KeapSim, SimConfig, SimEvent};
use optsync::clock::Now as _;
use optsync::console::auth::{digest, hash_password};

use crate::console::{Browser, PASSWORD};
use crate::{Db, KEY, Options, TestApp, on_both_backends, post_to};

const CLIENT: &str = "optsync-console";
const SECRET: &str = "console-secret";
/// The app the emulator's consent page grants, and its tenant name.
const KEAP_APP: &str = "xy123.infusionsoft.com";
const APP: &str = "xy123";

async fn with_developer_app(db: Db) -> TestApp {
    let config = SimConfig {
        tenant_id: KEAP_APP.into(),
        ..SimConfig::default()
    };
    let sim = KeapSim::builder()
        .config(config)
        .api_key(KEY)
        .oauth_client(CLIENT, SECRET)
        .start()
        .await
        .unwrap();
    let t = TestApp::spawn_with(
        db,
        Options {
            sim: Some(sim),
            keap_oauth: Some((CLIENT, SECRET)),
            ..Options::default()
        },
    )
    .await;
    let hash = hash_password(PASSWORD).unwrap();
    let now = t.state.clock.now();
    t.state
        .store
        .set_admin_password("admin", &hash, now)
        .await
        .unwrap();
    t
}

async fn connecting_a_keap_app_in_a_browser(db: Db) {
    let t = with_developer_app(db).await;
    let base = t.admin.clone().unwrap();
    let b = Browser::start().await;
    let c = b.c();
    b.sign_in(&base, "admin", PASSWORD).await;
    c.find(Locator::Id("connect-keap"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Keap's consent page (the emulator's), naming the developer app and the Keap app.
    assert_eq!(b.text("#app").await, KEAP_APP);
    assert_eq!(b.text("#client").await, CLIENT);
    b.shot("10-keap-consent", false).await;
    c.find(Locator::Id("allow"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(b.text("#connected").await, format!("{APP} is connected"));
    assert_eq!(c.current_url().await.unwrap().path(), "/keap/callback");
    let post_url = b.text("#post-url").await;
    assert_eq!(post_url, t.service.tenants().post_url(APP).await.unwrap());
    assert!(
        b.text("#click-path")
            .await
            .contains("Marketing → Settings → Email Defaults")
    );
    assert_eq!(
        b.text("#first-post").await,
        "waiting for Keap's first post…"
    );
    b.shot("keap-connected", true).await;

    // Keap posts to the new Post URL: honoured, and the page says so without a reload.
    let (id, emails) = t.contact("carol", 2);
    t.sim.set_action_set_url(Some(&post_url));
    t.sim.event(&emails[0], SimEvent::UnsubscribeLink).unwrap();
    let posts = t
        .sim
        .wait_action_posts(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((posts[0].status, posts[0].contact_id), (200, id));
    t.worker.drain().await.unwrap();
    assert_eq!(t.sim.status(&emails[1]), Some(EmailStatus::Admin));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let said = b.text("#first-post").await;
        if said.starts_with("Keap posted at ") {
            assert!(said.ends_with("— the action set is wired"), "{said}");
            break;
        }
        assert!(Instant::now() < deadline, "the page still says {said:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.shot("keap-posted", true).await;
    b.stop().await;
}
on_both_backends!(connecting_a_keap_app_in_a_browser);

/// A signed-in console session over plain HTTP.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

/// A flow started with "Connect a Keap app": where it sends the browser, and its cookie.
struct Flow {
    authorize: url::Url,
    binder: String,
}

impl Console {
    async fn sign_in(t: &TestApp) -> Self {
        Self::sign_in_as(t, "admin").await
    }

    async fn sign_in_as(t: &TestApp, account: &str) -> Self {
        let token = optsync::console::auth::random_token();
        let csrf = optsync::console::auth::random_token();
        let now = t.state.clock.now();
        t.state
            .store
            .create_session(&digest(&token), account, &csrf, now, now + 3_600_000)
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = t.admin.clone().unwrap();
        let cookie = format!("optsync_session={token}");
        Self {
            http,
            base,
            cookie,
            csrf,
        }
    }

    async fn connect(&self, app: &str) -> Flow {
        let r = self
            .http
            .post(format!("{}/keap/connect", self.base))
            .header("cookie", &self.cookie)
            .form(&[("csrf", self.csrf.as_str()), ("app", app)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let set = r.headers()["set-cookie"].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        Flow {
            authorize: url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap(),
            binder: set.split(';').next().unwrap().to_string(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Keap's redirect back, opened in the browser that holds `binder` (and no session
    /// cookie: Keap's site is another site, and the session cookie is `SameSite=Strict`).
    async fn callback(&self, query: &str, binder: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}/keap/callback?{query}", self.base))
            .header("cookie", binder)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

impl Flow {
    fn param(&self, name: &str) -> String {
        self.authorize
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    /// The owner's answer on the consent page; the query Keap sends the browser back with.
    async fn answer(&self, decision: &str) -> String {
        let mut consent = self.authorize.clone();
        consent.set_query(None);
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(consent)
            .form(&[
                ("client_id", self.param("client_id")),
                ("redirect_uri", self.param("redirect_uri")),
                ("state", self.param("state")),
                ("decision", decision.into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(back.path(), "/keap/callback");
        back.query().unwrap().to_string()
    }
}

fn with_state(query: &str, state: &str) -> String {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, state.into())
            } else {
                (k, v)
            }
        })
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn generation(t: &TestApp) -> Option<i64> {
    let tenant = t.state.store.tenant_by_app(APP).await.unwrap()?;
    sqlx::query_scalar("SELECT generation FROM oauth_tokens WHERE tenant_id = $1")
        .bind(tenant.id)
        .fetch_optional(t.state.store.pool())
        .await
        .unwrap()
}

async fn the_callback_connects_only_what_this_browser_started(db: Db) {
    let t = with_developer_app(db).await;
    let console = Console::sign_in(&t).await;
    let tenants = || t.count("SELECT COUNT(*) FROM tenants");
    let flow = console.connect("").await;
    assert_eq!(flow.param("scope"), "full");
    assert_eq!(flow.param("response_type"), "code");
    assert_eq!(
        flow.param("redirect_uri"),
        format!("{}/keap/callback", console.base)
    );
    let allowed = flow.answer("allow").await;

    // Missing state, a state never issued, and this state from another browser: nothing.
    let code_only: String = allowed
        .split('&')
        .filter(|p| !p.starts_with("state="))
        .collect();
    assert_eq!(console.callback(&code_only, &flow.binder).await.0, 403);
    let wrong = with_state(&allowed, &"f".repeat(64));
    assert_eq!(console.callback(&wrong, &flow.binder).await.0, 403);
    let other = Console::sign_in(&t).await.connect("").await;
    assert_eq!(
        console.callback(&allowed, &other.binder).await.0,
        403,
        "foreign"
    );
    assert_eq!(console.callback(&allowed, "").await.0, 403, "no cookie");
    assert_eq!(tenants().await, 1);

    let (status, body) = console.callback(&allowed, &flow.binder).await;
    assert_eq!(status, 200, "{body}");
    let post_url = t.service.tenants().post_url(APP).await.unwrap();
    assert!(body.contains(&post_url.replace('&', "&#38;")), "{body}");
    assert_eq!(tenants().await, 2);
    assert_eq!(generation(&t).await, Some(1));
    let tenant = t.state.store.tenant_by_app(APP).await.unwrap().unwrap();
    assert_eq!(
        tenant.credential_kind,
        optsync::store::CredentialKind::OAuth
    );
    assert_eq!(tenant.keap_base_url, t.sim.crm_url());
    let recorded = t
        .count("SELECT COUNT(*) FROM admin_actions WHERE action = 'keap_connect' AND target = 'xy123' AND user_name = 'admin'")
        .await;
    assert_eq!(recorded, 1);

    // Replayed: the same callback again; the same code under a new flow's state.
    let (status, body) = console.callback(&allowed, &flow.binder).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("not from a connection started here"),
        "the state is spent before Keap is asked: {body}"
    );
    let again = console.connect("").await;
    let replayed_code = with_state(&allowed, &again.param("state"));
    let (status, body) = console.callback(&replayed_code, &again.binder).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("used already"), "{body}");
    assert_eq!((tenants().await, generation(&t).await), (2, Some(1)));

    // Denied on Keap's page; a session that ended before Keap's answer.
    let denied = console.connect("").await;
    let no = denied.answer("deny").await;
    assert!(no.contains("error=access_denied"));
    let (status, body) = console.callback(&no, &denied.binder).await;
    assert_eq!(status, 403);
    assert!(body.contains("denied"), "{body}");
    let ended = console.connect(APP).await;
    let yes = ended.answer("allow").await;
    t.state
        .store
        .delete_session(&digest(
            console.cookie.trim_start_matches("optsync_session="),
        ))
        .await
        .unwrap();
    assert_eq!(console.callback(&yes, &ended.binder).await.0, 403);
    assert_eq!((tenants().await, generation(&t).await), (2, Some(1)));
}
on_both_backends!(the_callback_connects_only_what_this_browser_started);

/// The connect form is a console form: without the session's CSRF token it is refused.
async fn the_connect_form_needs_its_csrf_token(db: Db) {
    let t = with_developer_app(db).await;
    let console = Console::sign_in(&t).await;
    let r = console
        .http
        .post(format!("{}/keap/connect", console.base))
        .header("cookie", &console.cookie)
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    // The console's policy lets its forms go to Keap's consent page, and nothing else new.
    let r = console
        .http
        .get(format!("{}/", console.base))
        .header("cookie", &console.cookie)
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    let keap = format!("form-action 'self' {};", t.sim.base_url());
    assert!(csp.contains(&keap), "{csp}");
    assert!(
        csp.contains("script-src 'self';") && !csp.contains("connect-src"),
        "{csp}"
    );
}
on_both_backends!(the_connect_form_needs_its_csrf_token);

/// Keap posts for new contacts of the app; their Email 2 addresses.
async fn posts(t: &TestApp, url: &str, tag: &str, n: usize) -> Vec<String> {
    let mut second = Vec::new();
    for i in 0..n {
        let (id, emails) = t.contact(&format!("{tag}{i}"), 2);
        t.sim
            .event(&emails[0], SimEvent::Set(EmailStatus::Manual))
            .unwrap();
        assert_eq!(post_to(url, &[("contactId", &id.to_string())]).await.0, 200);
        second.push(emails[1].clone());
    }
    second
}

async fn a_revoked_app_is_reconnected_from_its_banner(db: Db) {
    let t = with_developer_app(db).await;
    let console = Console::sign_in(&t).await;
    let flow = console.connect("").await;
    let allowed = flow.answer("allow").await;
    assert_eq!(console.callback(&allowed, &flow.binder).await.0, 200);
    let url = t.service.tenants().post_url(APP).await.unwrap();
    assert!(t.sim.revoke_oauth(CLIENT));
    let waiting = posts(&t, &url, "w", 2).await;
    let outcomes = t.worker.drain().await.unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, optsync::worker::JobOutcome::Blocked { .. }))
    );
    for page in ["/", "/tenants/xy123"] {
        let (status, body) = console.get(page).await;
        assert_eq!(status, 200);
        assert!(body.contains("data-reconnect=\"xy123\""), "{page}: {body}");
        assert!(body.contains("Reconnect xy123"), "{page}");
    }
    assert!(
        !console
            .get("/tenants/acme")
            .await
            .1
            .contains("data-reconnect")
    );

    // A reconnect of another app refuses a grant for this one, and changes nothing.
    let acme = t.state.store.tenant_by_app("acme").await.unwrap().unwrap();
    let wrong = console.connect("acme").await;
    let (status, body) = console
        .callback(&wrong.answer("allow").await, &wrong.binder)
        .await;
    assert_eq!(status, 403);
    assert!(body.contains("acme was to be reconnected"), "{body}");
    let still = t.state.store.tenant_by_app("acme").await.unwrap().unwrap();
    assert_eq!(still.credential_sealed, acme.credential_sealed);

    let again = console.connect(APP).await;
    let (status, body) = console
        .callback(&again.answer("allow").await, &again.binder)
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("xy123 is connected again"), "{body}");
    let done = t.worker.drain().await.unwrap();
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(
        done.iter()
            .all(|o| matches!(o, optsync::worker::JobOutcome::Done { .. }))
    );
    assert!(
        waiting
            .iter()
            .all(|e| t.sim.status(e).is_some_and(|s| s.is_stop()))
    );
    assert!(!console.get("/").await.1.contains("data-reconnect"));
    assert_eq!(generation(&t).await, Some(2));
}
on_both_backends!(a_revoked_app_is_reconnected_from_its_banner);

/// A customer account, as an accepted invite without an app leaves it.
async fn customer(t: &TestApp, name: &str) -> Console {
    let now = t.state.clock.now();
    let hash = hash_password(PASSWORD).unwrap();
    t.state
        .store
        .set_admin_password(name, &hash, now)
        .await
        .unwrap();
    sqlx::query("UPDATE admin_users SET role = 'customer' WHERE name = $1")
        .bind(name)
        .execute(t.state.store.pool())
        .await
        .unwrap();
    Console::sign_in_as(t, name).await
}

/// An onboarding customer connects their own Keap app, and it is theirs; another customer
/// who allows the same Keap app gets nothing of it, and cannot even start its reconnect.
async fn a_customer_connects_their_own_app_and_no_one_elses(db: Db) {
    let t = with_developer_app(db).await;
    let first = customer(&t, "first@example.com").await;
    assert_eq!(first.get(&format!("/tenants/{APP}")).await.0, 404);
    let flow = first.connect("").await;
    let (status, page) = first
        .callback(&flow.answer("allow").await, &flow.binder)
        .await;
    assert_eq!(status, 200, "{page}");
    let granted = t.state.store.granted_apps("first@example.com").await;
    assert_eq!(granted.unwrap(), vec![APP.to_string()]);
    assert_eq!(first.get(&format!("/tenants/{APP}")).await.0, 200);
    let before = generation(&t).await;

    let second = customer(&t, "second@example.com").await;
    let flow = second.connect("").await;
    let (status, page) = second
        .callback(&flow.answer("allow").await, &flow.binder)
        .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("another account"), "{page}");
    assert_eq!(
        generation(&t).await,
        before,
        "the first customer's tokens are kept"
    );
    let granted = t.state.store.granted_apps("second@example.com").await;
    assert!(granted.unwrap().is_empty());
    let r = second
        .http
        .post(format!("{}/keap/connect", second.base))
        .header("cookie", &second.cookie)
        .form(&[("csrf", second.csrf.as_str()), ("app", APP)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a reconnect only of one's own app");

    let again = first.connect(APP).await;
    let (status, page) = first
        .callback(&again.answer("allow").await, &again.binder)
        .await;
    assert_eq!(status, 200, "the owner reconnects: {page}");
    assert!(generation(&t).await > before);
}
on_both_backends!(a_customer_connects_their_own_app_and_no_one_elses);
