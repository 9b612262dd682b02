//! An app's OAuth pair kept in the database for every instance, sealed at rest like the
//! tenants' credentials: the [`keap::TokenStore`] its OAuth session refreshes through (one
//! refresher at a time across instances, the new pair stored before it is used), and the
//! connection of a new authorization.

use crate::clock::Millis;
use crate::clock::Now as _;
use crate::store::TenantId;
use std::sync::Arc;

use keap::{OAuthTokens, StoreFuture, StoredPair, TokenStore};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::store::Store;

/// The sealed form of a pair.
#[derive(Serialize, Deserialize)]
struct SealedPair {
    access_token: Option<String>,
    refresh_token: String,
    expires_at_ms: u64,
}

/// Seals and opens an app's pair, bound to the app and the column.
#[derive(Debug, Clone)]
pub struct PairSeal {
    secrets: SecretBox,
    aad: String,
}

impl PairSeal {
    pub fn new(secrets: SecretBox, app: &str) -> Self {
        Self {
            secrets,
            aad: format!("tenant:{app}:oauth_tokens"),
        }
    }

    pub fn seal(&self, t: &OAuthTokens) -> Result<String> {
        let pair = SealedPair {
            access_token: Some(t.access_token.expose_secret().to_string()),
            refresh_token: t.refresh_token.expose_secret().to_string(),
            expires_at_ms: t.expires_at_ms,
        };
        let json = serde_json::to_vec(&pair).map_err(|e| Error::Crypto(e.to_string()))?;
        self.secrets.seal(&json, &self.aad)
    }

    pub fn open(&self, sealed: &str) -> Result<OAuthTokens> {
        let raw = self.secrets.open(sealed, &self.aad)?;
        let p: SealedPair = serde_json::from_slice(&raw)
            .map_err(|e| Error::CorruptState(format!("stored OAuth tokens: {e}")))?;
        Ok(OAuthTokens {
            access_token: SecretString::from(p.access_token.unwrap_or_default()),
            refresh_token: SecretString::from(p.refresh_token),
            expires_at_ms: p.expires_at_ms,
        })
    }
}

/// One app's pair in the database.
#[derive(Clone)]
pub struct DbTokenStore {
    store: Store,
    seal: PairSeal,
    clock: Clock,
    tenant_id: TenantId,
    /// The pair the tenant was added with: stored as generation 1 if none is stored yet.
    seed: Arc<OAuthTokens>,
}

impl std::fmt::Debug for DbTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbTokenStore(tenant {})", self.tenant_id)
    }
}

fn text(e: Error) -> String {
    e.to_string()
}

fn generation(g: u64) -> i64 {
    i64::try_from(g).unwrap_or(i64::MAX)
}

impl DbTokenStore {
    pub fn new(
        store: Store,
        seal: PairSeal,
        clock: Clock,
        tenant_id: TenantId,
        seed: OAuthTokens,
    ) -> Self {
        Self {
            store,
            seal,
            clock,
            tenant_id,
            seed: Arc::new(seed),
        }
    }

    async fn load_pair(&self) -> Result<Option<StoredPair>> {
        let mut row = self.store.oauth_tokens(self.tenant_id).await?;
        if row.is_none() {
            let sealed = self.seal.seal(&self.seed)?;
            let now = self.clock.now();
            self.store
                .seed_oauth_tokens(self.tenant_id, &sealed, now)
                .await?;
            row = self.store.oauth_tokens(self.tenant_id).await?;
        }
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StoredPair {
            tokens: self.seal.open(&row.pair_sealed)?,
            generation: u64::try_from(row.generation).unwrap_or(0),
            reconnect_needed: row.reconnect_reason,
        }))
    }
}

impl TokenStore for DbTokenStore {
    fn load(&self) -> StoreFuture<'_, Option<StoredPair>> {
        Box::pin(async move { self.load_pair().await.map_err(text) })
    }

    fn lease(&self, holder: &str, now_ms: u64, until_ms: u64) -> StoreFuture<'_, bool> {
        let holder = holder.to_string();
        let ms = |t: u64| Millis(i64::try_from(t).unwrap_or(i64::MAX));
        Box::pin(async move {
            self.store
                .lease_oauth_tokens(self.tenant_id, &holder, ms(now_ms), ms(until_ms))
                .await
                .map_err(text)
        })
    }

    fn save(
        &self,
        holder: &str,
        replaces: u64,
        tokens: OAuthTokens,
    ) -> StoreFuture<'_, Option<u64>> {
        let holder = holder.to_string();
        Box::pin(async move {
            let sealed = self.seal.seal(&tokens).map_err(text)?;
            let now = self.clock.now();
            let saved = self
                .store
                .save_oauth_tokens(self.tenant_id, &holder, generation(replaces), &sealed, now)
                .await
                .map_err(text)?;
            Ok(saved.map(|g| u64::try_from(g).unwrap_or(0)))
        })
    }

    fn release(&self, holder: &str) -> StoreFuture<'_, ()> {
        let holder = holder.to_string();
        Box::pin(async move {
            self.store
                .release_oauth_lease(self.tenant_id, &holder)
                .await
                .map_err(text)
        })
    }

    fn mark_reconnect_needed(
        &self,
        holder: &str,
        generation_: u64,
        reason: &str,
    ) -> StoreFuture<'_, ()> {
        let (holder, reason) = (holder.to_string(), reason.to_string());
        Box::pin(async move {
            let now = self.clock.now();
            self.store
                .mark_oauth_reconnect(
                    self.tenant_id,
                    &holder,
                    generation(generation_),
                    &reason,
                    now,
                )
                .await
                .map_err(text)
        })
    }
}
