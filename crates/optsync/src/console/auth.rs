//! Signing in to the console: Argon2id password hashes, sessions kept in the database (the
//! cookie's value is a random 256-bit token; only its digest is stored, and a new one is
//! issued at every sign-in, so a planted cookie is never promoted), a CSRF token per session
//! carried by every form, and sign-in attempts limited per account and per client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "optsync_session";
/// How long a session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;
/// The shortest password `admin set-password` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// An Argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Config(format!("hashing the password: {e}")))
}

/// Whether `password` matches the stored hash (Argon2's own constant-time comparison).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The hash verified when a sign-in names an unknown account, so that answer costs what a
/// wrong password costs: of a random password nobody knows, made once per process.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The `Set-Cookie` value for a new session (or, with `None`, one that ends it).
pub fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_TTL_MS / 1000
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in operator, from the session cookie. Without a valid session, every console
/// page redirects to the sign-in page.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    pub token_hash: String,
}

impl Session {
    /// Whether a form's `csrf` field is this session's token (constant time).
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/login").into_response();
        let Some(token) = cookie_value(&parts.headers, COOKIE).filter(|t| t.len() == 64) else {
            return Err(to_sign_in());
        };
        let token_hash = digest(token);
        let now = state.clock.epoch_ms();
        match state.store.session(&token_hash, now).await {
            Ok(Some(s)) => Ok(Session {
                user: s.user_name,
                csrf: s.csrf,
                token_hash,
            }),
            Ok(None) => Err(to_sign_in()),
            Err(e) => {
                tracing::error!(error = %crate::logfmt::one_line(&e), "console: the store is unavailable");
                Err((
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable",
                )
                    .into_response())
            }
        }
    }
}

/// Failed sign-ins, per account and per client: past [`FREE_FAILURES`] in a window, each
/// further attempt must wait twice as long as the last (up to [`MAX_WAIT`]). Bounded.
#[derive(Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const FREE_FAILURES: u32 = 3;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
const MAX_TRACKED: usize = 10_000;

impl SignInLimiter {
    fn keys(user: &str, ip: IpAddr) -> [String; 2] {
        [format!("user:{user}"), format!("ip:{ip}")]
    }

    /// How long this attempt must still wait, if it must.
    pub fn wait(&self, user: &str, ip: IpAddr) -> Option<Duration> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.retain(|_, (_, at)| at.elapsed() < WINDOW);
        Self::keys(user, ip)
            .iter()
            .filter_map(|k| f.get(k))
            .filter(|(n, _)| *n > FREE_FAILURES)
            .map(|(n, at)| {
                let wait = Duration::from_secs(1 << (n - FREE_FAILURES).min(10)).min(MAX_WAIT);
                wait.saturating_sub(at.elapsed())
            })
            .filter(|w| !w.is_zero())
            .max()
    }

    pub fn failed(&self, user: &str, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= MAX_TRACKED {
            f.retain(|_, (_, at)| at.elapsed() < WINDOW);
        }
        for k in Self::keys(user, ip) {
            if f.len() >= MAX_TRACKED && !f.contains_key(&k) {
                continue;
            }
            let e = f.entry(k).or_insert((0, Instant::now()));
            e.0 += 1;
            e.1 = Instant::now();
        }
    }

    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for k in Self::keys(user, ip) {
            f.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery "));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn repeated_failures_must_wait_longer_each_time() {
        let l = SignInLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(l.wait("admin", ip), None);
            l.failed("admin", ip);
        }
        l.failed("admin", ip);
        let first = l.wait("admin", ip).expect("slowed");
        l.failed("admin", ip);
        let second = l.wait("admin", ip).expect("slowed");
        assert!(second > first);
        assert!(
            l.wait("admin", "192.0.2.9".parse().unwrap()).is_some(),
            "per account too"
        );
        l.succeeded("admin", ip);
        assert_eq!(l.wait("admin", ip), None);
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let c = session_cookie(Some("t"), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!session_cookie(Some("t"), false).contains("Secure"));
    }
}
