//! Signing in to the console: Argon2id password hashes, sessions kept in the database (the
//! cookie's value is a random 256-bit token; only its digest is stored, and a new one is
//! issued at every sign-in, so a planted cookie is never promoted), a CSRF token per session
//! carried by every form, and sign-in attempts limited per account and per client.

use crate::clock::Now as _;
use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use super::sign_in::SignInLimiter;
use super::sign_in::{MAX_USER_BYTES, Outcome, Refusal};
use crate::client::ClientKey;
use crate::error::{Error, Result};
use crate::logfmt::one_line;
use crate::state::AppState;

/// The session cookie's name over http.
pub const COOKIE: &str = "optsync_session";
/// Its name when the console is served over https: the `__Host-` prefix makes browsers
/// take it only from a secure origin, for the whole host, never set by a sibling domain.
pub const SECURE_COOKIE: &str = "__Host-optsync_session";
/// How long a session lasts at most.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;
/// The shortest password `admin set-password` and an invite's page accept.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Whether a new password meets the rules (`admin set-password` and invites alike); if
/// not, what to tell the person.
pub fn check_new_password(password: &str) -> std::result::Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

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

/// Whether the console itself is served over https (`OPTSYNC_ADMIN_PUBLIC_URL`): then the
/// cookie is `Secure` and `__Host-`; over http (a private address) it is plain, so signing
/// in works there.
pub fn cookie_secure(settings: &crate::config::Settings) -> bool {
    settings
        .admin_public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// The `Set-Cookie` value for a new session (or, with `None`, one that ends it).
pub fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let (name, flag) = if secure {
        (SECURE_COOKIE, "; Secure")
    } else {
        (COOKIE, "")
    };
    match token {
        Some(t) => format!(
            "{name}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{flag}",
            SESSION_TTL_MS / 1000
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{flag}"),
    }
}

pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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

impl<S> FromRequestParts<S> for Session
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        // Found once per request: an authorization layer may have read it already.
        if let Some(s) = parts.extensions.get::<Session>() {
            return Ok(s.clone());
        }
        let state = AppState::from_ref(state);
        let to_sign_in = || Redirect::to("/login").into_response();
        let name = if cookie_secure(&state.settings) {
            SECURE_COOKIE
        } else {
            COOKIE
        };
        let Some(token) = cookie_value(&parts.headers, name).filter(|t| t.len() == 64) else {
            return Err(to_sign_in());
        };
        let token_hash = digest(token);
        let now = state.clock.now();
        let idle_ms = state.settings.console_idle.as_millis() as i64;
        match state
            .store
            .touch_session(&token_hash, now, idle_ms, SESSION_TTL_MS)
            .await
        {
            Ok(Some(s)) => {
                let session = Session {
                    user: s.user_name,
                    csrf: s.csrf,
                    token_hash,
                };
                parts.extensions.insert(session.clone());
                Ok(session)
            }
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

/// Why a sign-in did not start a session.
#[derive(Debug)]
pub enum SignInError {
    /// Refused, with the status and what to tell the person.
    Refused(StatusCode, String),
    Unavailable(Error),
}

/// Checks a sign-in within the limits ([`super::sign_in`]): the attempt is reserved before
/// the password is verified, and the verification waits for one of a few slots.
pub async fn check_sign_in(
    state: &AppState,
    limiter: &SignInLimiter,
    peer: IpAddr,
    headers: &HeaderMap,
    user: &str,
    password: String,
) -> std::result::Result<(), SignInError> {
    let refused = |status, why: &str| Err(SignInError::Refused(status, why.to_string()));
    if user.len() > MAX_USER_BYTES {
        return refused(StatusCode::BAD_REQUEST, "That user name is too long.");
    }
    let ip = crate::client::client_ip(&state.settings, peer, headers);
    let client = ClientKey::from(ip);
    let busy = "Too many sign-ins at once. Try again in a moment.";
    match limiter.begin(user, client, state.clock.now_ms()) {
        Ok(()) => {}
        Err(Refusal::Wait(wait)) => {
            tracing::warn!(%ip, user = %one_line(user), "console sign-in refused: too many failures");
            let why = format!(
                "Too many failed sign-ins. Try again in {} s.",
                wait.as_secs().max(1)
            );
            return refused(StatusCode::TOO_MANY_REQUESTS, &why);
        }
        Err(Refusal::Busy) => return refused(StatusCode::TOO_MANY_REQUESTS, busy),
    }
    let verdict = password_ok(state, limiter, user, password).await;
    let outcome = match &verdict {
        Ok(Some(true)) => Outcome::Succeeded,
        Ok(Some(false)) => Outcome::Failed,
        Ok(None) | Err(_) => Outcome::Abandoned,
    };
    limiter.finish(user, client, outcome, state.clock.now_ms());
    match verdict {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => {
            tracing::warn!(%ip, user = %one_line(user), "console sign-in failed");
            refused(StatusCode::UNAUTHORIZED, "Wrong user or password.")
        }
        Ok(None) => refused(StatusCode::TOO_MANY_REQUESTS, busy),
        Err(e) => Err(SignInError::Unavailable(e)),
    }
}

/// Verifies off the async threads, in one of the few verification slots: Argon2 is
/// deliberately slow and large. An unknown user costs the same as a wrong password, so the
/// answer's timing does not say which accounts exist. `None`: no slot came free in time.
async fn password_ok(
    state: &AppState,
    limiter: &SignInLimiter,
    user: &str,
    password: String,
) -> Result<Option<bool>> {
    let stored = state.store.admin_password_hash(user).await?;
    let known = stored.is_some();
    let hash = stored.unwrap_or_else(|| dummy_hash().to_string());
    let Ok(slot) = limiter.verification_slot().await else {
        return Ok(None);
    };
    let ok = tokio::task::spawn_blocking(move || {
        let ok = verify_password(&hash, &password);
        drop(slot);
        ok
    })
    .await
    .unwrap_or(false);
    Ok(Some(known && ok))
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
    fn cookies_are_http_only_and_strict() {
        let c = session_cookie(Some("t"), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(c.starts_with("__Host-optsync_session=t; Path=/;"), "{c}");
        assert!(!c.contains("Domain"));
        let plain = session_cookie(Some("t"), false);
        assert!(!plain.contains("Secure") && plain.starts_with("optsync_session=t;"));
    }

    #[test]
    fn the_cookie_follows_the_consoles_own_scheme() {
        let mut s = crate::config::Settings::for_dir(std::path::Path::new("/tmp/x"), None);
        s.public_url = "https://hooks.example.com".into();
        assert!(
            !cookie_secure(&s),
            "the hook listener's URL says nothing of the console"
        );
        s.admin_public_url = Some("https://console.example.com".into());
        assert!(cookie_secure(&s));
        s.admin_public_url = Some("http://10.0.0.5:9090".into());
        assert!(!cookie_secure(&s));
    }
}
