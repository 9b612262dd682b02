//! The Keap client of each tenant, built from its sealed credential and cached until the
//! tenant row changes, and one pacer per credential: Keap counts a key's (or an OAuth
//! client's) calls wherever they come from, so tenants sharing one share its pacer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keap::{Credential, KeapClient, OAuthSession, OAuthTokens, Pacer, PacingConfig};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::Clock;
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::store::{Store, TenantRow};
use crate::tenant::{StoredCredential, digest_hex};

#[derive(Debug, Clone)]
pub struct KeapClients {
    store: Store,
    secrets: SecretBox,
    clock: Clock,
    clients: Arc<Mutex<HashMap<i64, (i64, KeapClient)>>>,
    pacers: Arc<Mutex<HashMap<String, Arc<Pacer>>>>,
    /// Pacing for every credential (default: Keap's published limits for its kind).
    pacing_override: Option<PacingConfig>,
}

impl KeapClients {
    /// `pacing`: limits for every credential instead of Keap's published ones (a Keap account
    /// with a negotiated quota; tests against the emulator).
    pub fn new(
        store: Store,
        secrets: SecretBox,
        clock: Clock,
        pacing: Option<PacingConfig>,
    ) -> Self {
        Self {
            store,
            secrets,
            clock,
            clients: Arc::default(),
            pacers: Arc::default(),
            pacing_override: pacing,
        }
    }

    /// The same credentials paced to other limits, with caches of their own.
    pub fn with_pacing(&self, pacing: PacingConfig) -> Self {
        Self::new(
            self.store.clone(),
            self.secrets.clone(),
            self.clock.clone(),
            Some(pacing),
        )
    }

    fn pacer(&self, key: String, default: PacingConfig) -> Arc<Pacer> {
        let mut pacers = self.pacers.lock().unwrap_or_else(|e| e.into_inner());
        pacers
            .entry(key)
            .or_insert_with(|| {
                let config = self.pacing_override.clone().unwrap_or(default);
                Arc::new(Pacer::with_clock(config, self.clock.clone()))
            })
            .clone()
    }

    /// The Keap client for a tenant, cached until the tenant row changes.
    pub fn client(&self, t: &TenantRow) -> Result<KeapClient> {
        if let Some((stamp, c)) = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&t.id)
            && *stamp == t.updated_at
        {
            return Ok(c.clone());
        }
        let (credential, pacer) = match StoredCredential::open(&self.secrets, t)? {
            StoredCredential::ApiKey { key } => {
                let pacer = self.pacer(
                    format!("key:{}", digest_hex(&key)),
                    PacingConfig::service_account(),
                );
                (Credential::api_key(key), pacer)
            }
            oauth @ StoredCredential::OAuth { .. } => self.oauth(t, oauth)?,
        };
        let client = KeapClient::builder(&t.keap_base_url, credential)
            .pacer(pacer)
            .opt_out_method(t.opt_out_method)
            .build()?;
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.id, (t.updated_at, client.clone()));
        Ok(client)
    }

    /// An OAuth session that stores each rotated refresh token before using it, and the
    /// pacer of its OAuth client (whose limits every app it serves shares).
    fn oauth(&self, t: &TenantRow, cred: StoredCredential) -> Result<(Credential, Arc<Pacer>)> {
        let StoredCredential::OAuth {
            client_id,
            client_secret,
            refresh_token,
            access_token,
            expires_at_ms,
            token_url,
        } = cred
        else {
            return Err(Error::CorruptState("not an OAuth credential".into()));
        };
        let token_url = match token_url {
            Some(u) => u,
            None => derive_token_url(&t.keap_base_url)?,
        };
        let token_url = url::Url::parse(&token_url)
            .map_err(|e| Error::CorruptState(format!("token URL of {}: {e}", t.app)))?;
        let persist = self.persist_tokens(t, &client_id, &client_secret, token_url.as_str());
        let session = OAuthSession::new(
            client_id.clone(),
            SecretString::from(client_secret),
            token_url,
            SecretString::from(refresh_token),
            access_token
                .zip(expires_at_ms)
                .map(|(a, e)| (SecretString::from(a), e)),
            persist,
        )?;
        let pacer = self.pacer(format!("oauth:{client_id}"), PacingConfig::oauth_client());
        Ok((Credential::OAuth(Arc::new(session)), pacer))
    }

    /// Stores rotated OAuth tokens (sealed) before the client may use them. The cached client
    /// is kept: it already holds the new tokens in memory.
    fn persist_tokens(
        &self,
        t: &TenantRow,
        client_id: &str,
        client_secret: &str,
        token_url: &str,
    ) -> keap::PersistTokens {
        let (store, secrets, clock, clients) = (
            self.store.clone(),
            self.secrets.clone(),
            self.clock.clone(),
            self.clients.clone(),
        );
        let (tenant_id, app) = (t.id, t.app.clone());
        let (client_id, client_secret, token_url) = (
            client_id.to_string(),
            client_secret.to_string(),
            token_url.to_string(),
        );
        Arc::new(move |tokens: OAuthTokens| {
            let cred = StoredCredential::OAuth {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: tokens.refresh_token.expose_secret().to_string(),
                access_token: Some(tokens.access_token.expose_secret().to_string()),
                expires_at_ms: Some(tokens.expires_at_ms),
                token_url: Some(token_url.clone()),
            };
            let (store, secrets, clock, clients, app) = (
                store.clone(),
                secrets.clone(),
                clock.clone(),
                clients.clone(),
                app.clone(),
            );
            Box::pin(async move {
                let sealed = cred.seal(&secrets, &app).map_err(|e| e.to_string())?;
                let now = clock.epoch_ms();
                store
                    .set_tenant_credential(tenant_id, &sealed, now)
                    .await
                    .map_err(|e| e.to_string())?;
                // The row changed; keep the live client (it holds the tokens) under the new stamp.
                let mut c = clients.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(entry) = c.get_mut(&tenant_id) {
                    entry.0 = now;
                }
                Ok(())
            })
        })
    }
}

/// Keap's `/token` sits at the host's root: `https://api.infusionsoft.com/crm` →
/// `https://api.infusionsoft.com/token`.
fn derive_token_url(base: &str) -> Result<String> {
    let mut u = url::Url::parse(base).map_err(|e| Error::CorruptState(format!("base URL: {e}")))?;
    u.set_path("/token");
    u.set_query(None);
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_url_hangs_off_the_hosts_root() {
        assert_eq!(
            super::derive_token_url("https://api.infusionsoft.com/crm").unwrap(),
            "https://api.infusionsoft.com/token"
        );
    }
}
