//! Everything a handler or worker needs, passed explicitly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keap::{RollingWindow, WindowLimit};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;
use crate::tenant::Tenants;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub tenants: Tenants,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    /// Wakes idle workers when intake stores a job.
    pub wake: Arc<Notify>,
    pub auth_failures: Arc<AuthFailures>,
    /// Fetches SNS signing certificates and confirms SNS subscriptions.
    pub sns: Arc<dyn crate::providers::ses::SnsFetcher>,
}

impl AppState {
    pub fn new(store: Store, tenants: Tenants, settings: Settings, clock: Clock) -> Self {
        let per_minute = settings.failed_auth_per_minute;
        Self {
            store,
            tenants,
            settings: Arc::new(settings),
            clock,
            wake: Arc::new(Notify::new()),
            auth_failures: Arc::new(AuthFailures::new(per_minute)),
            sns: Arc::new(
                crate::providers::ses::HttpSnsFetcher::new().expect("an HTTP client can be built"),
            ),
        }
    }
}

/// Failed hook authentications per source address, in a rolling minute: past the limit the
/// address is refused (429) before its token is even looked at, so guessing tokens is slow.
#[derive(Debug)]
pub struct AuthFailures {
    limit: WindowLimit,
    by_ip: Mutex<HashMap<IpAddr, RollingWindow>>,
}

/// Addresses tracked at most; beyond, idle entries are dropped (memory stays bounded under a
/// spray of source addresses).
const MAX_TRACKED: usize = 10_000;

impl AuthFailures {
    pub fn new(per_minute: u32) -> Self {
        Self {
            limit: WindowLimit {
                limit: per_minute.max(1),
                length: Duration::from_secs(60),
            },
            by_ip: Mutex::new(HashMap::new()),
        }
    }

    /// The address has used up its failures for now.
    pub fn blocked(&self, ip: IpAddr, now_ms: u64) -> bool {
        let mut m = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        m.get_mut(&ip).is_some_and(|w| w.available(now_ms) == 0)
    }

    pub fn record(&self, ip: IpAddr, now_ms: u64) {
        let mut m = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_TRACKED {
            m.retain(|_, w| w.used(now_ms) > 0);
        }
        m.entry(ip)
            .or_insert_with(|| RollingWindow::new(self.limit))
            .record(now_ms);
    }
}
