//! Credentials: a service account key / personal access token, or OAuth2 with Keap's rotating
//! refresh tokens.
//!
//! Keap rotates the refresh token on every refresh: the old one dies the moment the new one
//! is issued. An [`OAuthSession`] therefore keeps its pair in a [`TokenStore`] shared by every
//! process serving the app, and refreshes only under the store's lease: it takes a newer
//! stored pair instead of spending its own, stores the new pair before using it (until the
//! store confirms, the pair is held in memory and storing it is retried before every call),
//! and turns a refusal for good into [`Error::ReconnectNeeded`], recorded in the store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;
use crate::oauth::{OAuthClient, OAuthTokens};
use crate::token_store::{StoredPair, TokenStore};

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
            Self::OAuth(s) => write!(f, "Credential::OAuth(client {})", s.client.client_id()),
        }
    }
}

impl Credential {
    pub fn api_key(key: impl Into<String>) -> Self {
        Self::ApiKey(SecretString::from(key.into()))
    }
}

/// How long before its expiry an access token is refreshed rather than used.
const EXPIRY_SLACK_MS: u64 = 60_000;
/// How long a refresh lease lasts: longer than the token call's 30-second timeout, so that a
/// lease runs out only when its holder is gone.
const LEASE_MS: u64 = 90_000;
/// While another process refreshes, how often and how long to look for its stored pair.
const WAIT_STEP: Duration = Duration::from_millis(50);
const WAIT_STEPS: u32 = 100;

/// The pair this process holds, and the stored generation it came from.
struct Held {
    tokens: OAuthTokens,
    generation: u64,
}

#[derive(Default)]
struct SessionState {
    held: Option<Held>,
    /// A rotated pair the store has not confirmed, and the generation it replaces.
    unstored: Option<(u64, OAuthTokens)>,
}

/// One app's OAuth session in this process.
pub struct OAuthSession {
    client: OAuthClient,
    store: Arc<dyn TokenStore>,
    /// This session's name on the store's lease.
    holder: String,
    state: tokio::sync::Mutex<SessionState>,
}

impl fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSession")
            .field("client", &self.client)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

fn store_error(e: String) -> Error {
    Error::TokenPersist(e)
}

impl OAuthSession {
    /// A session that reads its pair from `store` on first use.
    pub fn new(client: OAuthClient, store: Arc<dyn TokenStore>) -> Self {
        let n: u64 = rand::rng().random();
        Self {
            client,
            store,
            holder: format!("{n:016x}"),
            state: tokio::sync::Mutex::default(),
        }
    }

    pub fn client_id(&self) -> &str {
        self.client.client_id()
    }

    fn now(&self) -> u64 {
        self.client.clock().now_ms()
    }

    fn fresh(&self, t: &OAuthTokens) -> bool {
        t.expires_at_ms > self.now() + EXPIRY_SLACK_MS
    }

    /// An access token to send: the current one, a newer stored one, or a freshly refreshed
    /// (and stored) one. `force`: Keap just refused the current one.
    pub async fn bearer(&self, force: bool) -> Result<SecretString, Error> {
        let mut st = self.state.lock().await;
        if let Some((replaces, tokens)) = st.unstored.clone() {
            self.save(&mut st, replaces, tokens).await?;
        }
        let refused = match &st.held {
            Some(h) if !force && self.fresh(&h.tokens) => return Ok(h.tokens.access_token.clone()),
            Some(h) if force => Some(h.tokens.access_token.expose_secret().to_string()),
            _ => None,
        };
        let stored = self.load().await?;
        if let Some(why) = &stored.reconnect_needed {
            return Err(Error::ReconnectNeeded(why.clone()));
        }
        if self.adopt(&mut st, &stored) {
            let t = &stored.tokens;
            if self.fresh(t) && refused.as_deref() != Some(t.access_token.expose_secret()) {
                return Ok(t.access_token.clone());
            }
        }
        self.refresh_under_lease(&mut st, stored.generation).await
    }

    async fn load(&self) -> Result<StoredPair, Error> {
        self.store
            .load()
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::ReconnectNeeded("no OAuth tokens are stored for the app".into()))
    }

    /// Takes the stored pair if this process holds none or an older one; whether it did.
    fn adopt(&self, st: &mut SessionState, stored: &StoredPair) -> bool {
        let older = st
            .held
            .as_ref()
            .is_none_or(|h| h.generation < stored.generation);
        if older {
            st.held = Some(Held {
                tokens: stored.tokens.clone(),
                generation: stored.generation,
            });
        }
        older
    }

    async fn refresh_under_lease(
        &self,
        st: &mut SessionState,
        generation: u64,
    ) -> Result<SecretString, Error> {
        let now = self.now();
        let leased = self
            .store
            .lease(&self.holder, now, now + LEASE_MS)
            .await
            .map_err(store_error)?;
        if !leased {
            return self.await_other(st, generation).await;
        }
        // Under the lease: the pair stored just before it was taken may be newer still.
        let stored = self.load().await;
        match stored {
            Ok(p) if p.generation != generation => {
                self.store
                    .release(&self.holder)
                    .await
                    .map_err(store_error)?;
                self.adopt(st, &p);
                return Ok(p.tokens.access_token);
            }
            Err(e) => {
                let _ = self.store.release(&self.holder).await;
                return Err(e);
            }
            Ok(_) => {}
        }
        self.refresh_leased(st, generation).await
    }

    /// Refreshes with the held pair (generation `generation`, the stored one) while holding
    /// the lease.
    async fn refresh_leased(
        &self,
        st: &mut SessionState,
        generation: u64,
    ) -> Result<SecretString, Error> {
        let refresh = match &st.held {
            Some(h) => h.tokens.refresh_token.clone(),
            None => return Err(Error::Protocol("no OAuth pair held".into())),
        };
        match self.client.refresh(&refresh).await {
            Ok(fresh) => {
                self.save(st, generation, fresh).await?;
                st.held
                    .as_ref()
                    .map(|h| h.tokens.access_token.clone())
                    .ok_or_else(|| Error::Protocol("no access token after refresh".into()))
            }
            Err(Error::ReconnectNeeded(why)) => self.refused(st, generation, why).await,
            Err(e) => {
                let _ = self.store.release(&self.holder).await;
                Err(e)
            }
        }
    }

    /// Keap refused the stored refresh token. Another process may have rotated it after all
    /// (its lease ran out during a slow call): read once more before giving up on the grant.
    async fn refused(
        &self,
        st: &mut SessionState,
        generation: u64,
        why: String,
    ) -> Result<SecretString, Error> {
        let stored = self.load().await?;
        if self.adopt(st, &stored) && stored.reconnect_needed.is_none() {
            self.store
                .release(&self.holder)
                .await
                .map_err(store_error)?;
            return Ok(stored.tokens.access_token);
        }
        tracing::error!(client_id = %self.client.client_id(), reason = %why,
            "Keap refused the app's OAuth grant; the app must be connected again");
        self.store
            .mark_reconnect_needed(&self.holder, generation, &why)
            .await
            .map_err(store_error)?;
        Err(Error::ReconnectNeeded(why))
    }

    /// Another process holds the lease: wait for the pair it stores.
    async fn await_other(
        &self,
        st: &mut SessionState,
        generation: u64,
    ) -> Result<SecretString, Error> {
        for _ in 0..WAIT_STEPS {
            tokio::time::sleep(WAIT_STEP).await;
            let stored = self.load().await?;
            if stored.generation != generation {
                self.adopt(st, &stored);
                return Ok(stored.tokens.access_token);
            }
            if let Some(why) = stored.reconnect_needed {
                return Err(Error::ReconnectNeeded(why));
            }
        }
        Err(Error::Transient(
            "another process is refreshing the app's OAuth tokens".into(),
        ))
    }

    /// Stores a rotated pair; only then is it used. Until the store confirms, the pair is
    /// kept (the old refresh token is dead) and storing it is retried before the next call.
    async fn save(
        &self,
        st: &mut SessionState,
        replaces: u64,
        tokens: OAuthTokens,
    ) -> Result<(), Error> {
        match self
            .store
            .save(&self.holder, replaces, tokens.clone())
            .await
        {
            Ok(Some(generation)) => {
                st.held = Some(Held { tokens, generation });
                st.unstored = None;
                Ok(())
            }
            Ok(None) => {
                // A newer authorization was stored meanwhile: it wins; this pair is dropped.
                st.unstored = None;
                let stored = self.load().await?;
                self.adopt(st, &stored);
                Ok(())
            }
            Err(e) => {
                tracing::error!(client_id = %self.client.client_id(), error = %e,
                    "rotated Keap OAuth tokens could not be stored; holding them in memory");
                st.unstored = Some((replaces, tokens));
                Err(Error::TokenPersist(e))
            }
        }
    }
}
