//! Credentials: a service account key / personal access token, or OAuth2 with Keap's rotating
//! refresh tokens.
//!
//! Keap rotates the refresh token on every refresh: the old one dies the moment the new one
//! is issued. If the new pair were used before it is stored and the process then crashed, the
//! tenant would be left holding only a dead token and an operator would have to re-authorise
//! the app by hand. So a refresh hands the new pair to a persistence callback first, and the
//! new access token is used only after the callback confirms. Until it does, the pair is kept
//! in memory and the callback is retried before every call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::error::Error;
use crate::pacing::now_ms;

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

/// Stores a freshly rotated token pair durably; `Err` means it is not stored.
pub type PersistTokens = Arc<
    dyn Fn(OAuthTokens) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// What the client authenticates with.
#[derive(Clone)]
pub enum Credential {
    /// `X-Keap-API-Key`: a service account key or personal access token (`KeapAK-…`).
    ApiKey(SecretString),
    OAuth(Arc<OAuthSession>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("Credential::ApiKey(…)"),
            Self::OAuth(s) => write!(f, "Credential::OAuth(client {})", s.client_id),
        }
    }
}

impl Credential {
    pub fn api_key(key: impl Into<String>) -> Self {
        Self::ApiKey(SecretString::from(key.into()))
    }
}

/// Seconds before expiry at which an access token is refreshed rather than used.
const EXPIRY_SLACK_MS: u64 = 60_000;

struct OAuthState {
    access: Option<(SecretString, u64)>,
    refresh: SecretString,
    /// Rotated tokens the callback has not confirmed yet.
    unpersisted: Option<OAuthTokens>,
}

/// One tenant's OAuth session.
pub struct OAuthSession {
    client_id: String,
    client_secret: SecretString,
    token_url: Url,
    persist: PersistTokens,
    http: reqwest::Client,
    state: tokio::sync::Mutex<OAuthState>,
}

impl fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSession")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

impl OAuthSession {
    /// `token_url` is Keap's `/token` (real: `https://api.infusionsoft.com/token`). `tokens` is
    /// what was last stored; an expired or missing access token is fine, it is refreshed.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: SecretString,
        token_url: Url,
        refresh_token: SecretString,
        access: Option<(SecretString, u64)>,
        persist: PersistTokens,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            client_id: client_id.into(),
            client_secret,
            token_url,
            persist,
            http,
            state: tokio::sync::Mutex::new(OAuthState {
                access,
                refresh: refresh_token,
                unpersisted: None,
            }),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// An access token to send: the current one, or a freshly refreshed (and stored) one.
    /// `force` refreshes even if the current one looks valid (Keap just refused it).
    pub async fn bearer(&self, force: bool) -> Result<SecretString, Error> {
        let mut st = self.state.lock().await;
        if let Some(t) = st.unpersisted.clone() {
            self.store(&mut st, t).await?;
            if !force && let Some((a, _)) = &st.access {
                return Ok(a.clone());
            }
        }
        if !force
            && let Some((a, exp)) = &st.access
            && *exp > now_ms() + EXPIRY_SLACK_MS
        {
            return Ok(a.clone());
        }
        let fresh = self.refresh(&st.refresh).await?;
        // The old refresh token is dead now: remember the new one before anything else.
        st.refresh = fresh.refresh_token.clone();
        st.access = None;
        self.store(&mut st, fresh).await?;
        st.access
            .as_ref()
            .map(|(a, _)| a.clone())
            .ok_or_else(|| Error::Protocol("no access token after refresh".into()))
    }

    async fn store(&self, st: &mut OAuthState, tokens: OAuthTokens) -> Result<(), Error> {
        match (self.persist)(tokens.clone()).await {
            Ok(()) => {
                st.access = Some((tokens.access_token.clone(), tokens.expires_at_ms));
                st.unpersisted = None;
                Ok(())
            }
            Err(e) => {
                tracing::error!(client_id = %self.client_id, error = %e,
                    "rotated Keap OAuth tokens could not be stored; holding them in memory");
                st.unpersisted = Some(tokens);
                Err(Error::TokenPersist(e))
            }
        }
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<OAuthTokens, Error> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.client_secret.expose_secret()
        ));
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|e| Error::Config(e.to_string()))?;
        auth.set_sensitive(true);
        let started = now_ms();
        let resp = self
            .http
            .post(self.token_url.clone())
            .header(reqwest::header::AUTHORIZATION, auth)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| Error::Transient(format!("token refresh: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Transient(format!("token refresh: {e}")))?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Error::Transient(format!("token refresh answered {status}")));
        }
        if !status.is_success() {
            // invalid_grant / invalid_client: the grant is gone; a person must re-authorise.
            let reason = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| status.to_string());
            return Err(Error::Unauthorized(format!(
                "token refresh refused: {reason}"
            )));
        }
        let t: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("token answer: {e}")))?;
        Ok(OAuthTokens {
            access_token: SecretString::from(t.access_token),
            refresh_token: SecretString::from(t.refresh_token),
            expires_at_ms: started + t.expires_in * 1000,
        })
    }
}
