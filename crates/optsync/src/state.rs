//! Everything a handler or worker needs, passed explicitly. Built only by [`crate::app`].
//! What one listener alone uses (its rate limiters) lives with that listener's router.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::keap_clients::KeapClients;
use crate::post_hints::PostHints;
use crate::providers::ses::SnsFetcher;
use crate::push::{PushClients, PushPacer};
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
    /// Paces pushes to the sending providers, per app and provider.
    pub push_pacer: Arc<PushPacer>,
    /// The push clients built so far, per app and provider.
    pub push_clients: Arc<PushClients>,
    /// What the workers learned per app that lets a Keap post skip the contact read.
    pub post_hints: Arc<PostHints>,
    /// Fetches SNS signing certificates and confirms SNS subscriptions.
    pub sns: Arc<dyn SnsFetcher>,
    /// Called with each claimed job's id before it runs (tests make a worker panic with it).
    #[cfg(feature = "test-hooks")]
    pub before_job: Option<Arc<dyn Fn(i64) + Send + Sync>>,
}
