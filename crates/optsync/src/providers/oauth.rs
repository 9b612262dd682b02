//! OAuth 2.0 client credentials for SparkPost, which cannot send a fixed bearer token: given
//! `auth_type: oauth2`, SparkPost first posts its client id and secret to a token URL, then
//! sends the access token it got as `Authorization: Bearer …`, asking for a new one when an
//! answer is 400 or 401. optsync is that token URL (`…/hooks/esp/sparkpost/APP/token`).
//!
//! Tokens are stateless: `EXPIRY.MAC`, the MAC an HMAC-SHA256 under the client secret of
//! the client id and expiry, so every instance checks them without storing any, and changing
//! the secret revokes them all.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::auth::same_secret;
use super::{Reject, Request};

/// How long an access token is good for.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;
/// The client id optsync gives SparkPost for an app.
pub fn client_id_for(app: &str) -> String {
    format!("optsync-{app}")
}

fn mac(secret: &str, client_id: &str, expiry: i64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(format!("sparkpost-token\n{client_id}\n{expiry}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A token good until `now + TOKEN_LIFETIME_SECS` (epoch seconds).
pub fn issue(secret: &str, client_id: &str, now: i64) -> String {
    let expiry = now + TOKEN_LIFETIME_SECS;
    format!("{expiry}.{}", mac(secret, client_id, expiry))
}

/// Checks the request's bearer token: issued under this secret for this client, not expired.
/// Every refusal is `Unauthorized` (401), which makes SparkPost fetch a new token.
pub fn check_bearer(secret: &str, client_id: &str, req: &Request<'_>) -> Result<(), Reject> {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| Reject::Unauthorized("no bearer token".into()))?;
    let (expiry, given) = token
        .split_once('.')
        .ok_or_else(|| Reject::Unauthorized("not a token optsync issued".into()))?;
    let expiry: i64 = expiry
        .parse()
        .map_err(|_| Reject::Unauthorized("not a token optsync issued".into()))?;
    if !same_secret(given.as_bytes(), mac(secret, client_id, expiry).as_bytes()) {
        return Err(Reject::Unauthorized("wrong token".into()));
    }
    if expiry <= req.now {
        return Err(Reject::Unauthorized("token expired".into()));
    }
    Ok(())
}

/// Client credentials as a token request presents them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClientCredentials {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl ClientCredentials {
    /// From the body (form or JSON, as RFC 6749 §2.3.1 and SparkPost's `auth_request_details`
    /// allow) and, for the client's id and secret, HTTP basic auth.
    pub fn read(authorization: Option<&str>, body: &[u8]) -> Self {
        let mut c: ClientCredentials = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .map(|v| {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                ClientCredentials {
                    grant_type: s("grant_type"),
                    client_id: s("client_id"),
                    client_secret: s("client_secret"),
                }
            })
            .unwrap_or_else(|| {
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(body).unwrap_or_default();
                let s = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                ClientCredentials {
                    grant_type: s("grant_type"),
                    client_id: s("client_id"),
                    client_secret: s("client_secret"),
                }
            });
        if let Some((id, secret)) = authorization.and_then(basic) {
            c.client_id.get_or_insert(id);
            c.client_secret.get_or_insert(secret);
        }
        c
    }

    /// The grant is client credentials and both match, compared in constant time.
    pub fn matches(&self, client_id: &str, secret: &str) -> bool {
        let grant_ok = self
            .grant_type
            .as_deref()
            .is_none_or(|g| g == "client_credentials");
        let id_ok = same_secret(
            self.client_id.as_deref().unwrap_or_default().as_bytes(),
            client_id.as_bytes(),
        );
        let secret_ok = same_secret(
            self.client_secret.as_deref().unwrap_or_default().as_bytes(),
            secret.as_bytes(),
        );
        grant_ok & id_ok & secret_ok
    }
}

fn basic(header: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header.strip_prefix("Basic ")?.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn req<'a>(headers: &'a HeaderMap, now: i64) -> Request<'a> {
        Request {
            headers,
            body: b"[]",
            now,
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn an_issued_token_works_until_it_expires_and_only_for_its_client() {
        let token = issue(SECRET, "optsync-acme", 1_000);
        let h = bearer(&token);
        assert!(check_bearer(SECRET, "optsync-acme", &req(&h, 1_000)).is_ok());
        assert!(
            check_bearer(
                SECRET,
                "optsync-acme",
                &req(&h, 1_000 + TOKEN_LIFETIME_SECS)
            )
            .is_err()
        );
        assert!(check_bearer(SECRET, "optsync-other", &req(&h, 1_000)).is_err());
        assert!(
            check_bearer(
                "another secret entirely, 32 chars+",
                "optsync-acme",
                &req(&h, 1_000)
            )
            .is_err()
        );
        // A later expiry with the old MAC does not verify.
        let (_, mac) = token.split_once('.').unwrap();
        let forged = bearer(&format!("{}.{mac}", 1_000 + 10 * TOKEN_LIFETIME_SECS));
        assert!(check_bearer(SECRET, "optsync-acme", &req(&forged, 1_000)).is_err());
    }

    #[test]
    fn client_credentials_from_form_json_or_basic_auth() {
        let form = ClientCredentials::read(
            None,
            b"grant_type=client_credentials&client_id=optsync-acme&client_secret=0123456789abcdef0123456789abcdef",
        );
        assert!(form.matches("optsync-acme", SECRET));
        let json = ClientCredentials::read(
            None,
            br#"{"client_id":"optsync-acme","client_secret":"0123456789abcdef0123456789abcdef"}"#,
        );
        assert!(json.matches("optsync-acme", SECRET));
        let basic_auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("optsync-acme:{SECRET}"))
        );
        let basic = ClientCredentials::read(Some(&basic_auth), b"grant_type=client_credentials");
        assert!(basic.matches("optsync-acme", SECRET));
        let wrong_grant = ClientCredentials::read(Some(&basic_auth), b"grant_type=password");
        assert!(!wrong_grant.matches("optsync-acme", SECRET));
        assert!(!ClientCredentials::read(None, b"").matches("optsync-acme", SECRET));
    }
}
