//! Everything a handler or worker needs, passed explicitly. Built only by [`crate::app`].

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::http::auth_gate::AuthFailures;
use crate::keap_clients::KeapClients;
use crate::providers::ses::SnsFetcher;
use crate::queue::Queue;
use crate::store::Store;
use crate::tenant::Tenants;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The job queue: where accepted work is stored (and the workers woken), claimed,
    /// completed, put back and re-driven.
    pub queue: Queue,
    pub tenants: Tenants,
    pub clients: KeapClients,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub auth_failures: Arc<AuthFailures>,
    /// Fetches SNS signing certificates and confirms SNS subscriptions.
    pub sns: Arc<dyn SnsFetcher>,
    /// Failed console sign-ins, per account and per client.
    pub sign_in: Arc<crate::console::auth::SignInLimiter>,
}
