//! keap-sim: a local emulator of the parts of Keap (Infusionsoft) that optsync talks to.
//!
//! Nothing in a test can reach Keap, so this crate stands in for it, built from what is known
//! about the real service (`reference/keap-api.md`): REST v2 contacts and email-address
//! status, the XML-RPC calls with their byte-level quirks, API-key and OAuth authentication
//! with rotating refresh tokens, the gateway's throttles and `x-keap-*` headers, injected
//! faults, and the "opts out of all email marketing" action set that posts a contact's fields
//! to a URL. Where Keap's behaviour is unknown, [`SimConfig`] has a switch.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keap_sim::SimError> {
//! let sim = keap_sim::KeapSim::builder()
//!     .api_key("KeapAK-test")
//!     .seed(1_000, 42)
//!     .start()
//!     .await?;
//! println!("Keap's paths hang under {}", sim.crm_url());
//! # Ok(()) }
//! ```

pub mod auth;
pub mod clock;
pub mod config;
mod consent;
mod control;
mod gateway;
mod rest;
pub mod seed;
pub mod state;
pub mod store;
mod throttle;
mod xmlrpc_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use keap::EmailStatus;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::SimClock;
pub use config::{
    ActionSetTriggers, RestOptOut, SimConfig, Throttle, ThrottleBody, Unauthorized401,
};
pub use state::{ActionPost, EventOutcome, FaultKind, OAuthStats, Shared, SimEvent, Stats};
pub use store::Store;

/// Everything that can go wrong in the emulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP client setup failed: {0}")]
    Http(String),
    #[error("unknown email address {0}")]
    UnknownAddress(String),
    #[error("unknown contact {0}")]
    UnknownContact(i64),
    #[error("{0}")]
    BadRequest(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// A contact as the emulator holds it, with each address's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimContact {
    pub id: i64,
    pub emails: [Option<String>; 3],
    pub statuses: [Option<EmailStatus>; 3],
}

/// Builds and starts an emulator.
#[derive(Debug, Default)]
pub struct SimBuilder {
    config: SimConfig,
    clock: Option<SimClock>,
    listen: Option<SocketAddr>,
    seed: Option<(usize, u64)>,
}

impl SimBuilder {
    pub fn config(mut self, config: SimConfig) -> Self {
        self.config = config;
        self
    }
    pub fn api_key(mut self, key: &str) -> Self {
        self.config.api_keys.push(key.to_string());
        self
    }
    pub fn oauth_client(mut self, id: &str, secret: &str) -> Self {
        self.config
            .oauth_clients
            .push((id.to_string(), secret.to_string()));
        self
    }
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.config.throttle = throttle;
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
    /// `contacts` deterministic contacts from `seed`.
    pub fn seed(mut self, contacts: usize, seed: u64) -> Self {
        self.seed = Some((contacts, seed));
        self
    }

    pub async fn start(self) -> Result<KeapSim, SimError> {
        let clock = self.clock.unwrap_or_else(SimClock::system);
        let shared = Shared::new(self.config, clock)?;
        if let Some((n, s)) = self.seed {
            let now = shared.now_ms();
            seed::seed(&mut shared.lock().store, n, s, now);
        }
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
                tracing::error!(error = %e, "keap-sim server stopped");
            }
        });
        Ok(KeapSim {
            shared,
            addr: local,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// The HTTP routes: the gateway (REST v2, XML-RPC), OAuth's consent page and `/token`, and
/// `/sim` control.
pub fn router(shared: Arc<Shared>) -> Router {
    let gateway = Router::new()
        .route(
            "/crm/rest/v2/contacts",
            get(rest::list_contacts).post(rest::create_contact),
        )
        .route("/crm/rest/v2/contacts/{id}", get(rest::get_contact))
        .route("/crm/rest/v2/emailAddresses", get(rest::list_addresses))
        .route(
            "/crm/rest/v2/emailAddresses/{email}/status",
            get(rest::get_status).patch(rest::patch_status),
        )
        .route("/crm/xmlrpc/v1", post(xmlrpc_api::handle))
        .route("/crm/xmlrpc", post(xmlrpc_api::handle))
        .route_layer(from_fn_with_state(Arc::clone(&shared), gateway::gateway));
    let control = Router::new()
        .route("/token", post(control::token))
        .route(
            "/sim/contacts",
            get(control::list_contacts).post(control::add_contact),
        )
        .route("/sim/contacts/{id}", get(control::get_contact))
        .route("/sim/emails/{email}", get(control::get_email))
        .route("/sim/emails/{email}/event", post(control::email_event))
        .route("/sim/action-set", put(control::put_action_set))
        .route("/sim/faults", post(control::post_faults))
        .route("/sim/outage", put(control::put_outage))
        .route("/sim/xmlrpc", put(control::put_xmlrpc))
        .route(
            "/sim/stats",
            get(control::get_stats).delete(control::reset_stats),
        )
        .route("/sim/clock", post(control::advance_clock))
        .route("/sim/oauth/codes", post(control::issue_code))
        .route("/sim/oauth/revoke", post(control::revoke))
        .route(
            "/app/oauth/authorize",
            get(consent::authorize).post(consent::decide),
        );
    gateway.merge(control).with_state(shared)
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct KeapSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl KeapSim {
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

    /// The URL Keap's API paths hang under (`…/crm`), as a client's base URL.
    pub fn crm_url(&self) -> String {
        format!("{}/crm", self.base_url())
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn clock(&self) -> &SimClock {
        &self.shared.clock
    }

    /// Adds a contact; each given address that has no status yet gets `status`.
    pub fn add_contact(
        &self,
        email1: &str,
        email2: Option<&str>,
        email3: Option<&str>,
        status: EmailStatus,
    ) -> i64 {
        let now = self.shared.now_ms();
        let emails = [
            Some(email1.to_string()),
            email2.map(str::to_string),
            email3.map(str::to_string),
        ];
        self.shared
            .lock()
            .store
            .add_contact("", "", emails, status, now)
    }

    pub fn contact(&self, id: i64) -> Option<SimContact> {
        let st = self.shared.lock();
        st.store.contacts.get(&id).map(|c| SimContact {
            id,
            emails: c.emails.clone(),
            statuses: c
                .emails
                .clone()
                .map(|e| e.and_then(|e| st.store.status(&e))),
        })
    }

    pub fn status(&self, email: &str) -> Option<EmailStatus> {
        self.shared.lock().store.status(email)
    }

    pub fn event(&self, email: &str, event: SimEvent) -> Result<EventOutcome, SimError> {
        self.shared.apply_event(email, event, None)
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    pub fn reset_stats(&self) {
        self.shared.lock().stats = Stats::default();
    }

    pub fn inject_fault(&self, kind: FaultKind, count: u32) {
        self.shared.lock().faults.push_back((kind, count));
    }

    /// Keap down: every call fails with these kinds in turn until `set_outage(&[])`.
    pub fn set_outage(&self, kinds: &[FaultKind]) {
        self.shared.lock().outage = kinds.to_vec();
    }

    /// Serves XML-RPC, or answers it as a switched-off endpoint (a brownout is off, then on).
    pub fn set_xmlrpc_available(&self, available: bool) {
        self.shared.lock().config.xmlrpc_available = available;
    }

    pub fn set_action_set_url(&self, url: Option<&str>) {
        self.shared.lock().config.action_set_url = url.map(str::to_string);
    }

    /// Changes the emulator's settings while it runs (switches, not throttles or credentials).
    pub fn configure(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut self.shared.lock().config);
    }

    /// An authorization code for `client_id`, as Keap's consent screen would hand out (bound
    /// to no redirect URI; [`Self::issue_auth_code_for`] binds one).
    pub fn issue_auth_code(&self, client_id: &str) -> Option<String> {
        self.issue_code(client_id, None)
    }

    /// An authorization code exchanged only with this same `redirect_uri`.
    pub fn issue_auth_code_for(&self, client_id: &str, redirect_uri: &str) -> Option<String> {
        self.issue_code(client_id, Some(redirect_uri))
    }

    fn issue_code(&self, client_id: &str, redirect_uri: Option<&str>) -> Option<String> {
        let now = self.shared.now_ms();
        let mut st = self.shared.lock();
        let terms = st.grant_terms(now);
        st.auth.issue_code(client_id, redirect_uri, &terms)
    }

    /// Withdraws every grant of an OAuth client; false for an unknown client.
    pub fn revoke_oauth(&self, client_id: &str) -> bool {
        self.shared.lock().auth.revoke(client_id).is_some()
    }

    /// The authorize URL of the consent page, as Keap's `https://accounts.infusionsoft.com/app/oauth/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/app/oauth/authorize", self.base_url())
    }

    /// The token endpoint, as Keap's `https://api.infusionsoft.com/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// Reads the data under the lock.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.shared.lock().store)
    }

    /// Changes the data under the lock (no side effects fire).
    pub fn with_store_mut<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.shared.lock().store)
    }

    pub async fn wait_action_posts(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ActionPost>, SimError> {
        self.shared.wait_action_posts(n, timeout).await
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

impl Drop for KeapSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
