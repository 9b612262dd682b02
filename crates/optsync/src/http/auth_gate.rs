//! The failed-authentication gate of Keap's post routes, the only hook routes where a
//! guessable secret (the tenant's token) is presented. Failures are counted per (app, client
//! address) in a rolling minute; past the limit that client is refused (429) for that app
//! before its token is looked at, so guessing is slow, while every other client — and every
//! other app — is served as usual. Signed provider routes have no gate: a bad signature is
//! refused, and nobody can lock a provider out.
//!
//! The client address is the TCP peer, or, when the peer is a trusted proxy
//! (`OPTSYNC_TRUSTED_PROXIES`), the nearest untrusted address in `X-Forwarded-For` /
//! `Forwarded`. IPv6 clients are counted per /64 (one host holds a whole /64). An attempt
//! is reserved before the token is checked and released after, and failures plus attempts in
//! flight may not pass the limit by more than [`IN_FLIGHT_ALLOWANCE`]: a burst of guesses
//! cannot slip past before its failures are recorded, while a burst of genuine posts (Keap
//! sends many at once, from few addresses) is never held back. The table is bounded.

use crate::logfmt::one_line;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use keap::{RollingWindow, WindowLimit};

use super::error::HttpError;
use crate::state::AppState;

/// Whom failures are counted against: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(std::net::Ipv4Addr),
    V6Net(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy, else the
/// nearest address in the forwarding headers (right to left) that is not one.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("forwarded") {
        for part in v.to_str().unwrap_or_default().split([',', ';']) {
            if let Some(f) = part
                .trim()
                .strip_prefix("for=")
                .or_else(|| part.trim().strip_prefix("For="))
            {
                hops.extend(parse_hop(f));
            }
        }
    }
    if hops.is_empty() {
        for v in headers.get_all("x-forwarded-for") {
            hops.extend(
                v.to_str()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(parse_hop),
            );
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// One hop of a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `"[2001:db8::1]:443"`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(v6) = s.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[derive(Debug)]
struct Entry {
    failures: RollingWindow,
    /// Attempts reserved and not yet finished.
    in_flight: u32,
    last_ms: u64,
}

/// Failed authentications per (app, client) in a rolling minute.
#[derive(Debug)]
pub struct AuthFailures {
    limit: WindowLimit,
    entries: Mutex<HashMap<(String, ClientKey), Entry>>,
}

/// Attempts in flight beyond the failure limit a client may have at once (genuine bursts).
pub const IN_FLIGHT_ALLOWANCE: u32 = 256;

/// (app, client) pairs tracked at most; beyond, idle pairs are dropped first, then the
/// longest unseen.
const MAX_TRACKED: usize = 10_000;

impl AuthFailures {
    pub fn new(per_minute: u32) -> Self {
        Self {
            limit: WindowLimit {
                limit: per_minute.max(1),
                length: Duration::from_secs(60),
            },
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves an attempt; false when this client's failures (with its attempts in flight)
    /// have reached the limit for this app.
    pub fn begin(&self, app: &str, client: ClientKey, now_ms: u64) -> bool {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (app.to_string(), client);
        if !m.contains_key(&key) && m.len() >= MAX_TRACKED {
            evict(&mut m, now_ms);
        }
        let e = m.entry(key).or_insert_with(|| Entry {
            failures: RollingWindow::new(self.limit),
            in_flight: 0,
            last_ms: now_ms,
        });
        e.last_ms = now_ms;
        let failed = e.failures.used(now_ms);
        if failed >= self.limit.limit
            || failed + e.in_flight >= self.limit.limit + IN_FLIGHT_ALLOWANCE
        {
            return false;
        }
        e.in_flight += 1;
        true
    }

    /// Ends a reserved attempt, counting it when it failed.
    pub fn finish(&self, app: &str, client: ClientKey, failed: bool, now_ms: u64) {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = m.get_mut(&(app.to_string(), client)) {
            e.in_flight = e.in_flight.saturating_sub(1);
            if failed {
                e.failures.record(now_ms);
            }
        }
    }
}

fn evict(m: &mut HashMap<(String, ClientKey), Entry>, now_ms: u64) {
    m.retain(|_, e| e.in_flight > 0 || e.failures.used(now_ms) > 0);
    if m.len() >= MAX_TRACKED
        && let Some(oldest) = m
            .iter()
            .filter(|(_, e)| e.in_flight == 0)
            .min_by_key(|(_, e)| e.last_ms)
            .map(|(k, _)| k.clone())
    {
        m.remove(&oldest);
    }
}

/// An attempt that passed the gate. [`AuthGate::failed`] counts it; dropping it otherwise
/// releases it uncounted.
pub struct AuthGate {
    failures: Arc<AuthFailures>,
    clock: crate::clock::Clock,
    app: String,
    client: ClientKey,
    pub ip: IpAddr,
    failed: bool,
}

impl AuthGate {
    pub fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for AuthGate {
    fn drop(&mut self) {
        self.failures
            .finish(&self.app, self.client, self.failed, self.clock.now_ms());
    }
}

/// The app a Keap post names: `?app=` on `/process_optout.php`, the path on `/hooks/keap/APP`.
fn app_of(parts: &Parts) -> String {
    if let Some(app) = parts.uri.path().strip_prefix("/hooks/keap/") {
        return app.to_string();
    }
    url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "app")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl FromRequestParts<AppState> for AuthGate {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let ip = client_address(peer, &parts.headers, &state.settings.trusted_proxies);
        let client = ClientKey::from(ip);
        // Unknown apps share one counter per client, so made-up names buy no extra guesses.
        let app = app_of(parts);
        let app = if crate::tenant::validate_app(&app).is_ok() {
            app
        } else {
            "?".to_string()
        };
        if !state
            .auth_failures
            .begin(&app, client, state.clock.now_ms())
        {
            tracing::warn!(%ip, app = %one_line(app), "Keap post refused: too many failed authentications from this client");
            return Err(HttpError::too_many_failures());
        }
        Ok(Self {
            failures: state.auth_failures.clone(),
            clock: state.clock.clone(),
            app,
            client,
            ip,
            failed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "198.51.100.7, 10.0.0.9")]);
        assert_eq!(
            client_address(proxy, &xff, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // An untrusted peer's headers are not believed.
        let stranger: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(client_address(stranger, &xff, &trusted), stranger);
        let fwd = headers(&[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")]);
        assert_eq!(
            client_address(proxy, &fwd, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        // A spoofed leftmost entry does not win over the hop the proxy saw.
        let spoof = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(
            client_address(proxy, &spoof, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = ClientKey::from("2001:db8:1:2::1".parse::<IpAddr>().unwrap());
        let b = ClientKey::from("2001:db8:1:2:ffff::9".parse::<IpAddr>().unwrap());
        let c = ClientKey::from("2001:db8:1:3::1".parse::<IpAddr>().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn attempts_are_reserved_so_a_burst_cannot_pass_the_limit() {
        let f = AuthFailures::new(3);
        let c = ClientKey::from("198.51.100.7".parse::<IpAddr>().unwrap());
        // A burst in flight at once is bounded before any of it has failed…
        let burst = 3 + IN_FLIGHT_ALLOWANCE;
        assert!((0..burst).all(|_| f.begin("rc135", c, 0)));
        assert!(!f.begin("rc135", c, 0));
        // …and once three of it failed, the client is refused.
        for i in 0..burst {
            f.finish("rc135", c, i < 3, 0);
        }
        assert!(!f.begin("rc135", c, 1_000), "three failures: blocked");
        assert!(f.begin("other", c, 1_000), "another app is not blocked");
        let d = ClientKey::from("198.51.100.8".parse::<IpAddr>().unwrap());
        assert!(f.begin("rc135", d, 1_000), "another client is not blocked");
        assert!(f.begin("rc135", c, 61_000), "the minute rolls on");
        // A success releases its reservation uncounted.
        let g = AuthFailures::new(1);
        assert!(g.begin("a", c, 0));
        g.finish("a", c, false, 0);
        assert!(g.begin("a", c, 0));
    }

    #[test]
    fn the_table_stays_bounded() {
        let f = AuthFailures::new(5);
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let c = ClientKey::from(IpAddr::from(std::net::Ipv4Addr::from(i)));
            f.begin("a", c, 0);
            f.finish("a", c, true, 0);
        }
        assert!(f.entries.lock().unwrap().len() <= MAX_TRACKED);
    }
}
