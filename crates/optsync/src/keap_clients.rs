//! The Keap client of each tenant, built from its sealed credential and cached until the
//! tenant row changes (an OAuth app's rotating pair lives in [`crate::oauth_tokens`], so
//! rotation does not change the row), and one pacer per credential: Keap counts a key's (or an OAuth
//! client's) calls wherever they come from, so tenants sharing one share its pacer.

use crate::clock::Millis;
use crate::clock::Now as _;
use crate::store::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keap::{Credential, KeapClient, OAuthClient, OAuthSession, OAuthTokens, Pacer, PacingConfig};
use secrecy::SecretString;

use crate::clock::Clock;
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::oauth_tokens::{DbTokenStore, PairSeal};
use crate::store::{Store, TenantRow};
use crate::tenant::{StoredCredential, digest_hex};

/// A value built from a tenant row, with the row's `updated_at` it was built from.
type Stamped<T> = (Millis, T);

#[derive(Debug, Clone)]
pub struct KeapClients {
    store: Store,
    secrets: SecretBox,
    clock: Clock,
    clients: Arc<Mutex<HashMap<TenantId, (Millis, KeapClient)>>>,
    pacers: Arc<Mutex<HashMap<String, Arc<Pacer>>>>,
    /// Each tenant's pacer, as [`Self::daily_remaining`] found it (until the row changes):
    /// the overview and `/metrics` ask for every tenant's at each look.
    tenant_pacers: Arc<Mutex<HashMap<TenantId, Stamped<Arc<Pacer>>>>>,
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
            tenant_pacers: Arc::default(),
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

    /// An API key's pacer: Keap counts the key's calls wherever they come from.
    fn key_pacer(&self, key: &str) -> Arc<Pacer> {
        self.pacer(
            format!("key:{}", digest_hex(key)),
            PacingConfig::service_account(),
        )
    }

    /// An OAuth client's pacer, shared by every app it serves.
    fn oauth_pacer(&self, client_id: &str) -> Arc<Pacer> {
        self.pacer(format!("oauth:{client_id}"), PacingConfig::oauth_client())
    }

    /// The tenant's cached client, if the tenant row has not changed since it was built.
    fn cached(&self, t: &TenantRow) -> Option<KeapClient> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let (stamp, c) = clients.get(&t.id)?;
        (*stamp == t.updated_at).then(|| c.clone())
    }

    /// Keap calls left today on the tenant's credential, as its pacer counts them (none:
    /// no daily limit). Only the pacer is looked up, no client built: watching a thousand
    /// apps (the overview, `/metrics`) costs no HTTP client for an app that has no work.
    pub fn daily_remaining(&self, t: &TenantRow) -> Result<Option<u32>> {
        Ok(self.tenant_pacer(t)?.budget().daily_remaining)
    }

    /// The pacer a tenant's client uses (or will), cached by tenant until its row changes.
    fn tenant_pacer(&self, t: &TenantRow) -> Result<Arc<Pacer>> {
        let mut cache = self.tenant_pacers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((stamp, p)) = cache.get(&t.id)
            && *stamp == t.updated_at
        {
            return Ok(p.clone());
        }
        let pacer = match StoredCredential::open(&self.secrets, t)? {
            StoredCredential::ApiKey { key } => self.key_pacer(&key),
            StoredCredential::OAuth { client_id, .. } => self.oauth_pacer(&client_id),
        };
        cache.insert(t.id, (t.updated_at, pacer.clone()));
        Ok(pacer)
    }

    /// The Keap client for a tenant, cached until the tenant row changes.
    pub fn client(&self, t: &TenantRow) -> Result<KeapClient> {
        if let Some(c) = self.cached(t) {
            return Ok(c);
        }
        let (credential, pacer) = match StoredCredential::open(&self.secrets, t)? {
            StoredCredential::ApiKey { key } => {
                let pacer = self.key_pacer(&key);
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

    /// An OAuth session that refreshes through the app's pair in the database (shared with
    /// every instance), and the pacer of its OAuth client (whose limits every app it serves
    /// shares).
    fn oauth(&self, t: &TenantRow, cred: StoredCredential) -> Result<(Credential, Arc<Pacer>)> {
        let (client, seed) = self.oauth_client(t, cred)?;
        let pacer = self.oauth_pacer(client.client_id());
        let store = DbTokenStore::new(
            self.store.clone(),
            PairSeal::new(self.secrets.clone(), &t.app),
            self.clock.clone(),
            t.id,
            seed,
        );
        let session = OAuthSession::new(client, Arc::new(store));
        Ok((Credential::OAuth(Arc::new(session)), pacer))
    }

    /// The app's OAuth client, and the pair it was added with.
    fn oauth_client(
        &self,
        t: &TenantRow,
        cred: StoredCredential,
    ) -> Result<(OAuthClient, OAuthTokens)> {
        let StoredCredential::OAuth {
            client_id,
            client_secret,
            refresh_token,
            access_token,
            expires_at_ms,
            token_url,
        } = cred
        else {
            return Err(Error::BadInput(format!(
                "{} is not connected through OAuth",
                t.app
            )));
        };
        let token_url = match token_url {
            Some(u) => u,
            None => derive_token_url(&t.keap_base_url)?,
        };
        let token_url = url::Url::parse(&token_url)
            .map_err(|e| Error::CorruptState(format!("token URL of {}: {e}", t.app)))?;
        let client = OAuthClient::new(
            client_id,
            SecretString::from(client_secret),
            token_url,
            self.clock.clone(),
        )?;
        let seed = OAuthTokens {
            access_token: SecretString::from(access_token.unwrap_or_default()),
            refresh_token: SecretString::from(refresh_token),
            expires_at_ms: expires_at_ms.unwrap_or(0),
        };
        Ok((client, seed))
    }

    /// Connects an OAuth app again (or anew): exchanges the code Keap's consent page gave for
    /// a pair, stores it as the app's newest, clears "reconnect needed" and wakes the app's
    /// blocked jobs. The app Keap names in the grant's scope, if it does.
    pub async fn connect_oauth(
        &self,
        t: &TenantRow,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Option<String>> {
        let (client, _) = self.oauth_client(t, StoredCredential::open(&self.secrets, t)?)?;
        let grant = client.exchange_code(code, redirect_uri).await?;
        let sealed = PairSeal::new(self.secrets.clone(), &t.app).seal(&grant.tokens)?;
        self.store
            .connect_oauth_tokens(t.id, &sealed, self.clock.now())
            .await?;
        tracing::info!(app = %t.app, "Keap app connected through OAuth");
        Ok(grant.app().map(str::to_string))
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
