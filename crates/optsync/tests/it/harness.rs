//! Spawning the service for a test: a fresh database per test (a SQLite file in a temporary
//! directory, or a new database on the PostgreSQL server scripts/test starts), keap-sim
//! in-process, the HTTP server on port 0, and a worker the test drives.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keap::{EmailStatus, Limits, OptOutMethod, PacingConfig};
use keap_sim::KeapSim;
use optsync::app::{App, ServeOptions, Serving};
use optsync::clock::Clock;
use optsync::config::Settings;
use optsync::state::AppState;
use optsync::tenant::{StoredCredential, TenantSpec};
use optsync::worker::Worker;
use sqlx::Connection as _;

pub const KEY: &str = "KeapAK-5a4b3c2d1e0f5a4b3c2d1e0f5a4b3c2d1e0f5a4b3c2d1e0f";
pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs a test body once on each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Db::Postgres).await
            }
        }
    };
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "optsync-it-{tag}-{}-{}",
            std::process::id(),
            rand_hex()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn rand_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A database URL for a fresh, empty database on the chosen backend.
pub async fn fresh_database(db: Db, dir: &Path) -> String {
    match db {
        Db::Sqlite => format!("sqlite://{}", dir.join("optsync.db").display()),
        Db::Postgres => {
            let admin = std::env::var("OPTSYNC_TEST_DATABASE_URL").expect(
                "OPTSYNC_TEST_DATABASE_URL is not set: run the tests through scripts/test, which starts PostgreSQL",
            );
            sqlx::any::install_default_drivers();
            let name = format!("optsync_t_{}", rand_hex());
            let mut c = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL server");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .expect("create a test database");
            let mut u = url::Url::parse(&admin).unwrap();
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
    }
}

/// keap-sim on `clock`, accepting `keys` (for a test whose service runs on the same clock).
pub async fn sim_on(clock: &Clock, keys: &[&str]) -> KeapSim {
    keys.iter()
        .fold(KeapSim::builder().clock(clock.clone()), |b, k| b.api_key(k))
        .start()
        .await
        .unwrap()
}

/// Pacing for tests: no limits worth waiting for, quick backoffs.
pub fn test_pacing() -> PacingConfig {
    PacingConfig {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..PacingConfig::new(Limits {
            windows: vec![],
            daily: None,
        })
    }
}

pub struct TestApp {
    pub sim: KeapSim,
    pub service: App,
    pub state: AppState,
    pub worker: Worker,
    pub running: Option<Serving>,
    pub base: String,
    pub app: String,
    pub post_url: String,
    /// The admin listener's base URL, when asked for.
    pub admin: Option<String>,
    pub database_url: String,
    pub dir: TempDir,
}

pub struct Options {
    pub clock: Clock,
    pub max_attempts: i64,
    pub sim: Option<KeapSim>,
    pub sns: Option<std::sync::Arc<dyn optsync::providers::ses::SnsFetcher>>,
    /// `OPTSYNC_TRUSTED_PROXIES`.
    pub trusted_proxies: &'static str,
    /// `OPTSYNC_HEADER_TIMEOUT_SECS` (default 10 s).
    pub header_timeout: Option<Duration>,
    /// How long a failing job is retried before it may be buried (zero here, so a test of
    /// burial needs only `max_attempts`; the service's default is 72 h).
    pub bury_after: Duration,
    /// Serve the admin listener (console and `/metrics`) too, on a port of its own.
    pub admin: bool,
    /// Any other settings, changed before the service is built.
    pub settings: fn(&mut Settings),
    /// The console connects Keap apps through this developer app (client id, secret) of the
    /// emulator's; implies `admin`.
    pub keap_oauth: Option<(&'static str, &'static str)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Clock::system(),
            max_attempts: 8,
            sim: None,
            sns: None,
            trusted_proxies: "",
            header_timeout: None,
            bury_after: Duration::ZERO,
            admin: false,
            settings: |_| {},
            keap_oauth: None,
        }
    }
}

impl TestApp {
    pub async fn spawn(db: Db) -> Self {
        Self::spawn_with(db, Options::default()).await
    }

    pub async fn spawn_with(db: Db, o: Options) -> Self {
        let dir = TempDir::new("app");
        let database_url = fresh_database(db, dir.path()).await;
        let sim = match o.sim {
            Some(s) => s,
            None => KeapSim::builder().api_key(KEY).start().await.unwrap(),
        };
        let listener = App::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut settings = Settings::for_dir(dir.path(), Some(database_url.clone()));
        settings.public_url = base.clone();
        settings.max_attempts = o.max_attempts;
        settings.bury_after = o.bury_after;
        settings.retry_base = Duration::from_millis(1_000);
        settings.trusted_proxies = optsync::config::parse_proxies(o.trusted_proxies).unwrap();
        if let Some(d) = o.header_timeout {
            settings.header_timeout = d;
        }
        settings.master_key = Some(MASTER_KEY.into());
        let admin = if o.admin || o.keap_oauth.is_some() {
            Some(App::bind("127.0.0.1:0".parse().unwrap()).await.unwrap())
        } else {
            None
        };
        if let (Some((id, secret)), Some(a)) = (o.keap_oauth, &admin) {
            connect_through(&mut settings, &sim, id, secret, a.local_addr().unwrap());
        }
        (o.settings)(&mut settings);
        let mut builder = App::builder(settings).clock(o.clock).pacing(test_pacing());
        if let Some(sns) = o.sns {
            builder = builder.sns(sns);
        }
        let app = builder.build().await.unwrap();
        let app_name = "acme".to_string();
        app.tenants()
            .add(TenantSpec {
                app: app_name.clone(),
                keap_base_url: sim.crm_url(),
                credential: StoredCredential::ApiKey { key: KEY.into() },
                legacy_auth: false,
                opt_out_method: OptOutMethod::Auto,
                allow_http: true,
            })
            .await
            .unwrap();
        let post_url = app.tenants().post_url(&app_name).await.unwrap();
        let serve = ServeOptions {
            workers: 0,
            sweeps: None,
            admin,
        };
        let running = app.serve(listener, serve).await.unwrap();
        let admin = running.admin_addr.map(|a| format!("http://{a}"));
        Self {
            worker: app.worker(),
            state: app.state().clone(),
            service: app,
            sim,
            running: Some(running),
            base,
            app: app_name,
            post_url,
            admin,
            database_url,
            dir,
        }
    }

    /// POSTs a form to the tenant's Post URL.
    pub async fn post(&self, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
        post_to(&self.post_url, form).await
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_one(self.state.store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    /// A contact in the emulator with `n` marketable addresses.
    pub fn contact(&self, tag: &str, n: usize) -> (i64, Vec<String>) {
        let emails: Vec<String> = (1..=n).map(|i| format!("{tag}.{i}@example.com")).collect();
        let id = self.sim.add_contact(
            &emails[0],
            emails.get(1).map(String::as_str),
            emails.get(2).map(String::as_str),
            EmailStatus::SingleOptIn,
        );
        (id, emails)
    }

    pub fn statuses(&self, emails: &[String]) -> Vec<Option<EmailStatus>> {
        emails.iter().map(|e| self.sim.status(e)).collect()
    }
}

/// The console's "Connect a Keap app" through the emulator's developer app `id`, the console
/// at `admin` (its own URL, so the redirect URI is `http://ADMIN/keap/callback`).
fn connect_through(
    settings: &mut Settings,
    sim: &KeapSim,
    id: &str,
    secret: &str,
    admin: std::net::SocketAddr,
) {
    let console = format!("http://{admin}");
    let url = |u: String| url::Url::parse(&u).unwrap();
    settings.keap_oauth = Some(optsync::config::KeapOAuth {
        client_id: id.into(),
        client_secret: secret.into(),
        authorize_url: url(sim.authorize_url()),
        token_url: url(sim.token_url()),
        api_url: url(sim.crm_url()),
        redirect_uri: format!("{console}/keap/callback"),
    });
    settings.admin_public_url = Some(console);
}

pub async fn post_to(url: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}
