//! The failed-authentication gate of the hook routes: an address that failed too often
//! recently is refused (429) before anything it presents is looked at, so guessing tokens is
//! slow. One extractor, used by every hook route.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use keap::{RollingWindow, WindowLimit};

use super::error::HttpError;
use crate::state::AppState;

/// Failed hook authentications per source address, in a rolling minute.
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

/// A request that passed the gate; [`AuthGate::failed`] counts a failed authentication
/// against its address.
pub struct AuthGate {
    state: AppState,
    pub ip: IpAddr,
}

impl AuthGate {
    pub fn failed(&self) {
        self.state
            .auth_failures
            .record(self.ip, self.state.clock.now_ms());
    }
}

impl FromRequestParts<AppState> for AuthGate {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if state.auth_failures.blocked(ip, state.clock.now_ms()) {
            tracing::warn!(%ip, "hook refused: too many failed authentications from this address");
            return Err(HttpError::too_many_failures());
        }
        Ok(Self {
            state: state.clone(),
            ip,
        })
    }
}
