//! esp-sim: a local emulator of the sending providers' suppression-list APIs.
//!
//! No test can reach SES, SendGrid, Mailgun, Postmark, SparkPost, Mandrill, Mailjet or Brevo, so
//! this crate stands in for all of them in one process, each under its own prefix, built from
//! what each provider documents (`reference/esp-suppression.md`): the calls that put an address
//! on a do-not-send list, read it back and take it off, with each provider's authentication
//! (SigV4 for SES), error bodies, scopes (region, domain, stream, type, sender), rate limits and
//! 429s. Faults, partial inserts and the clock are driven through `/sim`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), esp_sim::SimError> {
//! let sim = esp_sim::EspSim::builder()
//!     .credential("sendgrid", "SG.test-key")
//!     .start()
//!     .await?;
//! println!("SendGrid's API hangs under {}", sim.url("/sendgrid"));
//! # Ok(()) }
//! ```

// Validation helpers return the provider's exact error answer (`Err(Response)`, 128 bytes) so
// that a handler can send it as is; boxing it would only add an allocation per refusal.
#![allow(clippy::result_large_err)]

mod brevo;
pub mod clock;
pub mod config;
mod control;
mod form;
mod gate;
mod mailgun;
mod mailjet;
mod mandrill;
mod postmark;
pub mod provider;
mod routes;
mod sendgrid;
mod ses;
pub mod sigv4;
mod sparkpost;
pub mod state;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::SimClock;
pub use config::{ConfigError, Credential, MailgunRegion, RateLimit, ReAdd, SesReason, SimConfig};
pub use provider::Provider;
pub use routes::router;
pub use state::{Entry, FaultKind, Scope, Shared, Stats};

/// Everything that can go wrong starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Builds and starts an emulator.
#[derive(Debug, Default)]
pub struct SimBuilder {
    config: SimConfig,
    clock: Option<SimClock>,
    listen: Option<SocketAddr>,
    error: Option<ConfigError>,
}

impl SimBuilder {
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }

    /// Accepts `secret` for `provider` (SES: `ACCESS_KEY_ID:SECRET_ACCESS_KEY`; Mailjet
    /// `PUBLIC:PRIVATE`). A malformed one makes `start` fail.
    pub fn credential(mut self, provider: &str, secret: &str) -> Self {
        match format!("{provider}={secret}").parse::<Credential>() {
            Ok(c) => self.config.credentials.push(c),
            Err(e) => self.error = Some(e),
        }
        self
    }

    pub fn ses_suppressed_reasons(mut self, reasons: &[SesReason]) -> Self {
        self.config.ses_suppressed_reasons = reasons.to_vec();
        self
    }

    pub fn rate_limit(mut self, provider: Provider, limit: Option<RateLimit>) -> Self {
        match limit {
            Some(l) => self.config.rate_limits.insert(provider, l),
            None => self.config.rate_limits.remove(&provider),
        };
        self
    }

    pub fn clock(mut self, clock: SimClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Where to listen; default `127.0.0.1:0` (a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    pub async fn start(self) -> Result<EspSim, SimError> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        let clock = self.clock.unwrap_or_else(SimClock::system);
        let shared = Arc::new(Shared::new(self.config, clock));
        let addr = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "esp-sim server stopped");
            }
        });
        Ok(EspSim {
            shared,
            addr: local,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct EspSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EspSim {
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT` + `path` (e.g. `/ses/us-east-1`: a client's API base).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn clock(&self) -> &SimClock {
        &self.shared.clock
    }

    /// Every entry of `provider`'s lists.
    pub fn entries(&self, provider: Provider) -> Vec<Entry> {
        self.shared.lock().lists.of(provider).cloned().collect()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// The next `count` calls to `provider` fail with `kind`.
    pub fn inject_fault(&self, provider: Provider, kind: FaultKind, count: u32) {
        self.shared.lock().inject(provider, kind, count);
    }

    /// Every call to `provider` fails with `kind` until `set_outage(provider, None)`.
    pub fn set_outage(&self, provider: Provider, kind: Option<FaultKind>) {
        self.shared.lock().set_outage(provider, kind);
    }

    /// Changes the settings while it runs.
    pub fn configure(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut self.shared.lock().config);
    }

    /// Puts an address on Mandrill's allowlist.
    pub fn mandrill_allow(&self, email: &str) {
        self.shared
            .lock()
            .mandrill_allowlist
            .insert(email.to_ascii_lowercase());
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for EspSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
