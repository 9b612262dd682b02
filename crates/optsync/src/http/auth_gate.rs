//! The failed-authentication gate of the hook routes where a guessable secret is presented:
//! Keap's post (the tenant's token) and the providers that authenticate with a shared secret
//! (basic auth, a bearer token, SparkPost's OAuth client secret). Failures are counted per
//! (scope, client address) in a rolling minute, the scope being the app (or provider and
//! app); past the limit that client is refused (429) for that scope before its secret is
//! looked at, so guessing is slow, while every other client — and every other app — is
//! served as usual. Signature-verified providers have no gate: a signature cannot be
//! guessed, and a provider's shared sending addresses must not be locked out by another of
//! its customers.
//!
//! The gate counts exactly the app the handler authenticates: [`KeapAuth`] parses the
//! query once, refuses a repeated `app` or `auth` (400), and hands both to the handler.
//!
//! The client is found by [`super::client`]; IPv6 clients are counted per /64. An attempt
//! is reserved before the secret is checked and released after, and failures plus attempts
//! in flight may not pass the limit by more than [`IN_FLIGHT_ALLOWANCE`]: a burst of guesses
//! cannot slip past before its failures are recorded, while a burst of genuine posts (Keap
//! sends many at once, from few addresses) is never held back. The table is bounded.
//!
//! A tenant that still accepts the legacy 6-character token (24 bits) is also limited per
//! app across all clients: past `OPTSYNC_LEGACY_FAILED_AUTH_PER_HOUR` failures in an hour
//! the legacy token is refused for the rest of the hour, so many addresses (a whole IPv6
//! /48) cannot share out the guessing. The full token keeps working.

use crate::logfmt::one_line;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::request::Parts;
use keap::{RollingWindow, WindowLimit};

use super::error::HttpError;
pub use crate::client::{ClientKey, ForwardedHeader, client_address, client_ip};
use crate::state::AppState;

#[derive(Debug)]
struct Entry {
    failures: RollingWindow,
    /// Attempts reserved and not yet finished.
    in_flight: u32,
    last_ms: u64,
}

/// Failed authentications per (scope, client) in a rolling minute, and per legacy app in a
/// rolling hour.
#[derive(Debug)]
pub struct AuthFailures {
    limit: WindowLimit,
    entries: Mutex<HashMap<(String, ClientKey), Entry>>,
    legacy_limit: WindowLimit,
    legacy: Mutex<HashMap<String, RollingWindow>>,
}

/// Attempts in flight beyond the failure limit a client may have at once (genuine bursts).
pub const IN_FLIGHT_ALLOWANCE: u32 = 256;

/// (app, client) pairs tracked at most; beyond, idle pairs are dropped first, then the
/// longest unseen.
const MAX_TRACKED: usize = 10_000;

impl AuthFailures {
    pub fn new(per_minute: u32, legacy_per_hour: u32) -> Self {
        Self {
            limit: WindowLimit {
                limit: per_minute.max(1),
                length: Duration::from_secs(60),
            },
            entries: Mutex::new(HashMap::new()),
            legacy_limit: WindowLimit {
                limit: legacy_per_hour.max(1),
                length: Duration::from_secs(3600),
            },
            legacy: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `app`'s legacy token may still be accepted this hour.
    pub fn legacy_open(&self, app: &str, now_ms: u64) -> bool {
        let mut m = self.legacy.lock().unwrap_or_else(|e| e.into_inner());
        m.get_mut(app)
            .is_none_or(|w| w.used(now_ms) < self.legacy_limit.limit)
    }

    /// Counts a failed authentication at an app that accepts the legacy token. Only such
    /// apps (a few, all known to the store) are tracked.
    pub fn legacy_failed(&self, app: &str, now_ms: u64) {
        let mut m = self.legacy.lock().unwrap_or_else(|e| e.into_inner());
        if !m.contains_key(app) && m.len() >= MAX_TRACKED {
            m.retain(|_, w| w.used(now_ms) > 0);
        }
        let limit = self.legacy_limit;
        m.entry(app.to_string())
            .or_insert_with(|| RollingWindow::new(limit))
            .record(now_ms);
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
    scope: String,
    client: ClientKey,
    pub ip: IpAddr,
    failed: bool,
}

impl AuthGate {
    /// Reserves an attempt for `scope` from the client `ip`, or refuses it (429) when that
    /// client has failed too often there.
    pub fn enter(
        failures: &Arc<AuthFailures>,
        state: &AppState,
        scope: String,
        ip: IpAddr,
    ) -> Result<Self, HttpError> {
        let client = ClientKey::from(ip);
        if !failures.begin(&scope, client, state.clock.now_ms()) {
            tracing::warn!(%ip, scope = %one_line(&scope), "refused: too many failed authentications from this client");
            return Err(HttpError::too_many_failures());
        }
        Ok(Self {
            failures: failures.clone(),
            clock: state.clock.clone(),
            scope,
            client,
            ip,
            failed: false,
        })
    }

    pub fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for AuthGate {
    fn drop(&mut self) {
        self.failures
            .finish(&self.scope, self.client, self.failed, self.clock.now_ms());
    }
}

/// A Keap post's credentials, parsed once: the app (`?app=` on `/process_optout.php`, the
/// path on `/hooks/keap/APP`) and the token, with the gate passed for exactly that app.
pub struct KeapAuth {
    pub app: String,
    pub auth: String,
    pub gate: AuthGate,
}

/// `app` and `auth` from the query; each may be given once. Two would let the gate and the
/// check read different ones.
pub fn keap_query(query: &str) -> Result<(Option<String>, Option<String>), HttpError> {
    let (mut app, mut auth) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "app" => &mut app,
            "auth" => &mut auth,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(HttpError::bad_request(format!(
                "{k} is given more than once"
            )));
        }
    }
    Ok((app, auth))
}

impl AuthGate {
    /// The counts this gate belongs to (the legacy token's per-app limit is kept there too).
    pub fn failures(&self) -> &AuthFailures {
        &self.failures
    }
}

impl<S> FromRequestParts<S> for KeapAuth
where
    S: Send + Sync,
    AppState: FromRef<S>,
    Arc<AuthFailures>: FromRef<S>,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, HttpError> {
        let failures = Arc::<AuthFailures>::from_ref(s);
        let state = &AppState::from_ref(s);
        let ip = client_ip(
            &state.settings,
            crate::client::peer_of(parts),
            &parts.headers,
        );
        let (query_app, auth) = keap_query(parts.uri.query().unwrap_or_default())?;
        let app = if parts.uri.path().starts_with("/hooks/keap/") {
            // The same decoding the route gives the handler.
            Path::<String>::from_request_parts(parts, state)
                .await
                .map(|Path(app)| app)
                .unwrap_or_default()
        } else {
            query_app.unwrap_or_default()
        };
        // Unknown apps share one counter per client, so made-up names buy no extra guesses.
        let scope = if crate::tenant::validate_app(&app).is_ok() {
            app.clone()
        } else {
            "?".to_string()
        };
        let gate = AuthGate::enter(&failures, state, scope, ip)?;
        Ok(Self {
            app,
            auth: auth.unwrap_or_default(),
            gate,
        })
    }
}

/// A warning per tenant that still accepts the legacy 6-character token, at start-up.
pub async fn warn_legacy_tenants(state: &AppState) {
    match state.store.tenants().await {
        Ok(ts) => {
            for t in ts.iter().filter(|t| t.legacy_prefix_hash.is_some()) {
                tracing::warn!(app = %t.app, per_hour = state.settings.legacy_failed_auth_per_hour,
                    "this app still accepts the legacy 6-character token (24 bits, guessable); its failures are limited per app, and once past the limit its legacy token is refused for the hour. Give Keap the full Post URL and run `optsync tenant legacy-off APP`");
            }
        }
        Err(e) => {
            tracing::warn!(error = %one_line(&e), "could not list the tenants on the legacy token")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_app_or_token_is_refused() {
        assert_eq!(
            keap_query("app=rc135&auth=t&x=1&x=2").unwrap(),
            (Some("rc135".into()), Some("t".into()))
        );
        assert!(keap_query("app=decoy1&app=rc135&auth=t").is_err());
        assert!(keap_query("app=rc135&auth=a&auth=b").is_err());
        assert!(
            keap_query("app=rc135&%61pp=x").is_err(),
            "encoded names too"
        );
    }

    #[test]
    fn a_legacy_app_closes_after_its_hourly_failures_from_anyone() {
        let f = AuthFailures::new(20, 3);
        assert!(f.legacy_open("rc135", 0));
        for _ in 0..3 {
            f.legacy_failed("rc135", 0);
        }
        assert!(!f.legacy_open("rc135", 1_000));
        assert!(f.legacy_open("other", 1_000));
        assert!(f.legacy_open("rc135", 3_601_000), "the hour rolls on");
    }

    #[test]
    fn attempts_are_reserved_so_a_burst_cannot_pass_the_limit() {
        let f = AuthFailures::new(3, 100);
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
        let g = AuthFailures::new(1, 100);
        assert!(g.begin("a", c, 0));
        g.finish("a", c, false, 0);
        assert!(g.begin("a", c, 0));
    }

    #[test]
    fn the_table_stays_bounded() {
        let f = AuthFailures::new(5, 100);
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let c = ClientKey::from(IpAddr::from(std::net::Ipv4Addr::from(i)));
            f.begin("a", c, 0);
            f.finish("a", c, true, 0);
        }
        assert!(f.entries.lock().unwrap().len() <= MAX_TRACKED);
    }
}
