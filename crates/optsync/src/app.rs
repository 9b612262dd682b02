//! The composition root: the one place the application is wired. [`App`] is built from
//! [`Settings`] (store, secrets, tenant registry, Keap clients, clock, wake-up), and
//! [`App::serve`] starts everything that runs — the HTTP server, the workers, the sweep
//! scheduler and housekeeping — behind one [`Serving`] handle that stops them all. `serve`,
//! `reconcile`, the other commands, the demo and the test harness all start here.

use std::net::SocketAddr;
use std::sync::Arc;

use keap::PacingConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::keap_clients::KeapClients;
use crate::providers::ses::{HttpSnsFetcher, SnsFetcher};
use crate::push::PushPacer;
use crate::queue::Queue;
use crate::reconcile::SweepOptions;
use crate::state::AppState;
use crate::store::{Store, redact};
use crate::tenant::Tenants;
use crate::worker::Worker;

/// What an [`App`] is built with beyond its settings.
pub struct AppBuilder {
    settings: Settings,
    clock: Clock,
    pacing: Option<PacingConfig>,
    sns: Option<Arc<dyn SnsFetcher>>,
    /// Apply pending migrations (`serve`, `migrate`, tests) or require a current schema.
    migrate: bool,
}

impl AppBuilder {
    /// Migrate nothing: the schema must be exactly this binary's.
    pub fn current_schema_only(mut self) -> Self {
        self.migrate = false;
        self
    }

    /// The clock every part reads (tests fix it).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Pace every Keap credential to this instead of the settings' or Keap's own limits.
    pub fn pacing(mut self, pacing: PacingConfig) -> Self {
        self.pacing = Some(pacing);
        self
    }

    /// How SNS certificates are fetched (tests serve their own).
    pub fn sns(mut self, sns: Arc<dyn SnsFetcher>) -> Self {
        self.sns = Some(sns);
        self
    }

    /// Opens (and migrates) the database, loads the master key, and wires the parts.
    pub async fn build(self) -> Result<App> {
        // Installed before anything is counted: metrics recorded earlier would be lost.
        crate::telemetry::handle();
        let s = self.settings;
        let store = if self.migrate {
            Store::open(&s.database_url).await
        } else {
            Store::open_current(&s.database_url).await
        };
        let store = store.map_err(|e| match e {
            Error::Db(e) => Error::Config(format!(
                "opening the database {}: {e}",
                redact(&s.database_url)
            )),
            other => other,
        })?;
        let secrets = load_master_key(&store, &s).await?;
        let pacing = self
            .pacing
            .or_else(|| s.keap_limits.clone().map(PacingConfig::new));
        let sns = match self.sns {
            Some(f) => f,
            None => Arc::new(HttpSnsFetcher::new().map_err(Error::Config)?),
        };
        let state = AppState {
            tenants: Tenants::new(
                store.clone(),
                secrets.clone(),
                self.clock.clone(),
                &s.public_url,
            ),
            clients: KeapClients::new(store.clone(), secrets, self.clock.clone(), pacing),
            queue: Queue::new(store.clone()),
            push_pacer: Arc::new(PushPacer::new(s.push_per_second)),
            push_clients: Arc::default(),
            post_hints: Arc::default(),
            settings: Arc::new(s),
            clock: self.clock,
            store,
            sns,
            #[cfg(feature = "test-hooks")]
            before_job: None,
        };
        Ok(App { state })
    }
}

/// The master key, never created anew while the database holds rows sealed with one (every
/// secret would become unreadable), and checked against a stored secret before use.
async fn load_master_key(store: &Store, s: &Settings) -> Result<SecretBox> {
    let tenants = store.tenants().await?;
    let from_env = s
        .master_key
        .as_deref()
        .is_some_and(|k| !k.trim().is_empty());
    let file = SecretBox::key_file(&s.data_dir);
    if !from_env && !file.exists() && !tenants.is_empty() {
        return Err(Error::Config(format!(
            "the master key is missing: {} does not exist and OPTSYNC_MASTER_KEY is not set, but the database holds {} tenant(s) sealed with a key. Restore master.key from the backup taken with the database (or set OPTSYNC_MASTER_KEY); a new key would make every stored secret unreadable",
            file.display(),
            tenants.len()
        )));
    }
    let secrets = SecretBox::load(s.master_key.as_deref(), &s.data_dir)?;
    if let Some(t) = tenants.first() {
        let probe = Tenants::new(
            store.clone(),
            secrets.clone(),
            Clock::system(),
            &s.public_url,
        );
        if probe.post_url(&t.app).await.is_err() {
            return Err(Error::Config(format!(
                "the master key does not open the stored secrets (tenant {}): wrong OPTSYNC_MASTER_KEY or {}",
                t.app,
                file.display()
            )));
        }
    }
    Ok(secrets)
}

/// The application, wired.
#[derive(Clone)]
pub struct App {
    state: AppState,
}

/// What [`App::serve`] runs beside the HTTP server.
#[derive(Debug)]
pub struct ServeOptions {
    /// Worker tasks (0: the caller drives the queue itself, as tests do).
    pub workers: usize,
    /// Sweep every tenant on a schedule, with these options.
    pub sweeps: Option<SweepOptions>,
    /// The admin listener (`/metrics`), bound beforehand; `None`: no admin listener.
    pub admin: Option<tokio::net::TcpListener>,
}

impl ServeOptions {
    /// What the settings ask for.
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            workers: s.workers,
            sweeps: s.reconcile.then(|| SweepOptions {
                budget_share: s.reconcile_budget_share,
                ..SweepOptions::default()
            }),
            admin: None,
        }
    }
}

impl App {
    pub fn builder(settings: Settings) -> AppBuilder {
        AppBuilder {
            settings,
            clock: Clock::system(),
            pacing: None,
            sns: None,
            migrate: true,
        }
    }

    /// Built from the settings alone, on the system clock.
    pub async fn open(settings: Settings) -> Result<Self> {
        Self::builder(settings).build().await
    }

    /// For every command but `serve`, `migrate` and `demo`: the database and the master key
    /// must exist already and the schema be current; nothing is created or migrated.
    pub async fn open_existing(settings: Settings) -> Result<Self> {
        crate::layout::require_existing_state(&settings)?;
        Self::builder(settings).current_schema_only().build().await
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn tenants(&self) -> &Tenants {
        &self.state.tenants
    }

    pub fn settings(&self) -> &Settings {
        &self.state.settings
    }

    /// A worker the caller drives (`run_once`, `drain`).
    pub fn worker(&self) -> Worker {
        Worker::new(self.state.clone())
    }

    pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))
    }

    /// Serves on `listener` (bound beforehand, so its address can be in the public URL)
    /// with the admin listener, workers (replaced when one panics), the sweep scheduler if
    /// asked, and housekeeping: every task in one set, stopped by one signal.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        opts: ServeOptions,
    ) -> Result<Serving> {
        crate::supervise::log_panics();
        let addr = listener.local_addr()?;
        let admin_addr = opts.admin.as_ref().map(|l| l.local_addr()).transpose()?;
        let (tx, rx) = watch::channel(false);
        let stopped = |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let mut tasks = JoinSet::new();
        let s = &self.state;
        // Started first and stopped last: the listeners' requests wait on it.
        let committer = s.queue.committer().map(|c| tokio::spawn(c.run()));
        let tls = start_tls(&s.settings, &mut tasks, &rx)?;
        tasks.spawn(crate::http::serve(
            s.clone(),
            listener,
            tls,
            stopped(rx.clone()),
        ));
        if let Some(l) = opts.admin {
            let router = crate::http::admin::router(s.clone());
            let settings = s.settings.clone();
            let stop = stopped(rx.clone());
            tasks.spawn(async move { crate::http::serve_router(router, &settings, l, stop).await });
            tracing::info!(addr = ?admin_addr, "admin listener (console, /metrics) serving");
        }
        tasks.spawn(crate::supervise::workers(
            s.clone(),
            opts.workers,
            rx.clone(),
        ));
        tasks.spawn(crate::housekeeping::run(s.clone(), rx.clone()));
        if let Some(sweeps) = opts.sweeps {
            tasks.spawn(crate::reconcile::schedule(s.clone(), sweeps, rx.clone()));
        }
        crate::http::auth_gate::warn_legacy_tenants(&self.state).await;
        tracing::info!(%addr, workers = opts.workers, "optsync serving");
        Ok(Serving {
            addr,
            admin_addr,
            shutdown: tx,
            tasks,
            queue: s.queue.clone(),
            committer,
        })
    }
}

/// The hook listener's TLS, if it serves HTTPS: from the certificate files (reloaded on
/// SIGHUP) or through ACME (renewed); either task is one of the serving's, stopped with them.
fn start_tls(
    s: &Settings,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> Result<Option<crate::tls::Tls>> {
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Some(files) = s.tls.clone() {
        let (tls, reload) = crate::tls::Tls::start(files)?;
        tasks.spawn(reload.run(stopped(stop.clone())));
        return Ok(Some(tls));
    }
    if let Some(acme) = &s.acme {
        let (tls, renewal) = crate::acme::start(acme, &s.data_dir)?;
        tasks.spawn(renewal.run(stopped(stop.clone())));
        return Ok(Some(tls));
    }
    Ok(None)
}

/// Everything [`App::serve`] started, owned here and stopped by one signal.
pub struct Serving {
    pub addr: SocketAddr,
    /// Where the admin listener (`/metrics`) is, if there is one.
    pub admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    /// The listeners, the TLS reloader or ACME renewal, the workers' supervisor, housekeeping and the sweep
    /// scheduler.
    tasks: JoinSet<()>,
    queue: Queue,
    /// The group committer (`None` if another `Serving` of the same application runs it).
    committer: Option<tokio::task::JoinHandle<()>>,
}

impl Serving {
    /// Stops accepting, lets the workers finish the job in hand, waits for every task, then
    /// for the group committer to commit what the listeners handed it.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while let Some(ended) = self.tasks.join_next().await {
            note_panic(ended);
        }
        if let Some(committer) = self.committer.take() {
            self.queue.close_intake();
            note_panic(committer.await);
        }
    }
}

impl Drop for Serving {
    /// Dropped without [`Serving::stop`] (its tasks are aborted with it): the committer ends
    /// once it has committed what it holds, so a later `serve` of the application runs its own.
    fn drop(&mut self) {
        if self.committer.is_some() {
            self.queue.close_intake();
        }
    }
}

fn note_panic(ended: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!("a task panicked while stopping");
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
