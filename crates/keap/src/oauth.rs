//! Keap's OAuth 2.0 token endpoint (`reference/keap-api.md` §16): the authorization-code
//! exchange that connects an app, and the refresh-token grant that keeps it connected.
//!
//! A refused grant is read for what it means: `invalid_grant` (a code or refresh token that is
//! spent, expired or revoked — Keap has also been seen answering `invalid_request` "Invalid
//! Refresh Token") is [`Error::ReconnectNeeded`]: nothing but a person authorising the app
//! again helps.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::clock::Clock;
use crate::error::Error;

/// A token pair as Keap issued it.
#[derive(Clone)]
pub struct OAuthTokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// Epoch ms after which the access token is no longer accepted.
    pub expires_at_ms: u64,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// What an authorization-code exchange gave: the pair and the app the user connected.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tokens: OAuthTokens,
    /// The answer's `scope`, `full|xy123.infusionsoft.com`.
    pub scope: String,
}

impl Grant {
    /// The connected app as `scope` names it (`xy123.infusionsoft.com`), if it does.
    pub fn app(&self) -> Option<&str> {
        self.scope
            .split_once('|')
            .map(|(_, app)| app.trim())
            .filter(|a| !a.is_empty())
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    #[serde(default)]
    scope: String,
}

/// An OAuth client registered with Keap (the developer app), and where its `/token` is.
pub struct OAuthClient {
    client_id: String,
    client_secret: SecretString,
    token_url: Url,
    clock: Clock,
    http: reqwest::Client,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// `token_url` is Keap's `/token` (real: `https://api.infusionsoft.com/token`); `clock`
    /// dates the expiry of the access tokens it gets.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: SecretString,
        token_url: Url,
        clock: Clock,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            client_id: client_id.into(),
            client_secret,
            token_url,
            clock,
            http,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Exchanges the code Keap's consent page gave for a pair; `redirect_uri` must be the one
    /// the authorize request named. The client authenticates in the form, as Keap documents.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<Grant, Error> {
        let secret = self.client_secret.expose_secret();
        let req = self.http.post(self.token_url.clone()).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &self.client_id),
            ("client_secret", secret),
        ]);
        self.grant(req, "code exchange").await
    }

    /// Spends a refresh token for a new pair; the client authenticates with Basic auth.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<OAuthTokens, Error> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.client_secret.expose_secret()
        ));
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|e| Error::Config(e.to_string()))?;
        auth.set_sensitive(true);
        let req = self
            .http
            .post(self.token_url.clone())
            .header(reqwest::header::AUTHORIZATION, auth)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ]);
        Ok(self.grant(req, "token refresh").await?.tokens)
    }

    async fn grant(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Grant, Error> {
        let started = self.clock.now_ms();
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Transient(format!("{what}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Transient(format!("{what}: {e}")))?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Error::Transient(format!("{what} answered {status}")));
        }
        if !status.is_success() {
            return Err(refusal(what, status, &body));
        }
        let t: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("{what} answer: {e}")))?;
        Ok(Grant {
            tokens: OAuthTokens {
                access_token: SecretString::from(t.access_token),
                refresh_token: SecretString::from(t.refresh_token),
                expires_at_ms: started.saturating_add(t.expires_in.saturating_mul(1000)),
            },
            scope: t.scope,
        })
    }
}

/// What a refused grant means: the grant is gone, or the client itself is wrong.
fn refusal(what: &str, status: reqwest::StatusCode, body: &[u8]) -> Error {
    let v = serde_json::from_slice::<serde_json::Value>(body).ok();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|e| e.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (error, description) = (field("error"), field("error_description"));
    let spent_refresh = error == "invalid_request"
        && description
            .to_ascii_lowercase()
            .contains("invalid refresh token");
    let detail = match (error.is_empty(), description.is_empty()) {
        (true, _) => status.to_string(),
        (false, true) => error.clone(),
        (false, false) => format!("{error}: {description}"),
    };
    if error == "invalid_grant" || spent_refresh {
        Error::ReconnectNeeded(format!("{what} refused: {detail}"))
    } else {
        Error::Unauthorized(format!("{what} refused: {detail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_mean_the_grant_is_gone_ask_for_a_reconnect() {
        let bad = reqwest::StatusCode::BAD_REQUEST;
        for body in [
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
            r#"{"error":"invalid_request","error_description":"Invalid Refresh Token"}"#,
        ] {
            assert!(matches!(
                refusal("token refresh", bad, body.as_bytes()),
                Error::ReconnectNeeded(_)
            ));
        }
        let e = refusal(
            "token refresh",
            reqwest::StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client"}"#,
        );
        assert!(matches!(e, Error::Unauthorized(_)));
    }

    #[test]
    fn the_app_is_read_from_scope() {
        let g = |scope: &str| Grant {
            tokens: OAuthTokens {
                access_token: SecretString::from("a"),
                refresh_token: SecretString::from("r"),
                expires_at_ms: 0,
            },
            scope: scope.into(),
        };
        assert_eq!(
            g("full|xy123.infusionsoft.com").app(),
            Some("xy123.infusionsoft.com")
        );
        assert_eq!(g("full").app(), None);
    }
}
