//! Tenants (one Keap app each): their hook tokens, their sealed Keap credentials, their Post
//! URLs, and the Keap clients built from them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keap::{Credential, KeapClient, OAuthSession, OAuthTokens, OptOutMethod, Pacer, PacingConfig};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::store::{NewTenant, Store, TenantRow};

/// Default base URL of Keap's API (paths hang under it).
pub const KEAP_BASE_URL: &str = "https://api.infusionsoft.com/crm";

/// A Keap credential as stored (sealed) in the tenants table.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredCredential {
    ApiKey {
        key: String,
    },
    OAuth {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        access_token: Option<String>,
        expires_at_ms: Option<u64>,
        /// Keap's `/token` URL; default derived from the base URL.
        token_url: Option<String>,
    },
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey { .. } => f.write_str("ApiKey(…)"),
            Self::OAuth { client_id, .. } => write!(f, "OAuth(client {client_id}, …)"),
        }
    }
}

impl StoredCredential {
    fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey { .. } => "api_key",
            Self::OAuth { .. } => "oauth",
        }
    }
}

/// App names go in URLs and logs: letters, digits, `-`, `_`, `.`; 1–63 characters.
pub fn validate_app(app: &str) -> Result<()> {
    let ok = !app.is_empty()
        && app.len() <= 63
        && app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "app name {app:?}: use 1–63 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A fresh hook token: 256 random bits, URL-safe.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub fn digest_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Compares a presented secret with a stored SHA-256 digest in constant time.
fn matches_digest(presented: &str, stored_hex: &str) -> bool {
    let Ok(stored) = hex::decode(stored_hex) else {
        return false;
    };
    let got = Sha256::digest(presented.as_bytes());
    got.as_slice().ct_eq(&stored).into()
}

/// The Post URL to paste into Keap's action set, in the setup guide's shape.
pub fn post_url(public_url: &str, app: &str, token: &str) -> String {
    let mut u = url::Url::parse(&format!(
        "{}/process_optout.php",
        public_url.trim_end_matches('/')
    ))
    .unwrap_or_else(|_| {
        url::Url::parse("http://127.0.0.1/process_optout.php").expect("static URL")
    });
    u.query_pairs_mut()
        .append_pair("app", app)
        .append_pair("auth", token);
    u.to_string()
}

fn aad(app: &str, column: &str) -> String {
    format!("tenant:{app}:{column}")
}

/// Tenants and their Keap clients.
#[derive(Debug, Clone)]
pub struct Tenants {
    store: Store,
    secrets: SecretBox,
    clock: Clock,
    public_url: String,
    clients: Arc<Mutex<HashMap<i64, (i64, KeapClient)>>>,
    pacers: Arc<Mutex<HashMap<String, Arc<Pacer>>>>,
    /// Pacing for every credential (default: Keap's published limits for its kind).
    pacing_override: Option<PacingConfig>,
}

/// What `tenant add` was given.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub app: String,
    pub keap_base_url: String,
    pub credential: StoredCredential,
    pub legacy_auth: bool,
    pub opt_out_method: OptOutMethod,
}

fn method_name(m: OptOutMethod) -> &'static str {
    match m {
        OptOutMethod::Rest => "rest",
        OptOutMethod::XmlRpc => "xmlrpc",
        OptOutMethod::Auto => "auto",
    }
}

impl Tenants {
    pub fn new(store: Store, secrets: SecretBox, clock: Clock, public_url: &str) -> Self {
        Self {
            store,
            secrets,
            clock,
            public_url: public_url.trim_end_matches('/').to_string(),
            clients: Arc::default(),
            pacers: Arc::default(),
            pacing_override: None,
        }
    }

    /// Use these limits for every credential instead of Keap's published ones (tests, and a
    /// Keap account with a negotiated quota).
    pub fn with_pacing(mut self, pacing: PacingConfig) -> Self {
        self.pacing_override = Some(pacing);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Adds a tenant; returns it with its new hook token.
    pub async fn add(&self, spec: TenantSpec) -> Result<(TenantRow, String)> {
        validate_app(&spec.app)?;
        let base = url::Url::parse(&spec.keap_base_url).map_err(|e| {
            Error::Invalid(format!("--keap-base-url {:?}: {e}", spec.keap_base_url))
        })?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(Error::Invalid("--keap-base-url must be http(s)".into()));
        }
        let legacy_prefix_hash = if spec.legacy_auth {
            let StoredCredential::ApiKey { key } = &spec.credential else {
                return Err(Error::Invalid(
                    "legacy auth needs a legacy API key, not OAuth".into(),
                ));
            };
            if key.starts_with("KeapAK") {
                return Err(Error::Invalid(
                    "legacy auth is refused for KeapAK keys: their first 6 characters are the same for everyone".into(),
                ));
            }
            let prefix: String = key.chars().take(6).collect();
            if prefix.len() < 6 {
                return Err(Error::Invalid(
                    "the API key is too short for legacy auth".into(),
                ));
            }
            Some(digest_hex(&prefix))
        } else {
            None
        };
        let token = new_token();
        let json =
            serde_json::to_vec(&spec.credential).map_err(|e| Error::Crypto(e.to_string()))?;
        let row = NewTenant {
            app: spec.app.clone(),
            keap_base_url: spec.keap_base_url.trim_end_matches('/').to_string(),
            credential_kind: spec.credential.kind().into(),
            credential_sealed: self.secrets.seal(&json, &aad(&spec.app, "credential"))?,
            token_hash: digest_hex(&token),
            token_sealed: self
                .secrets
                .seal(token.as_bytes(), &aad(&spec.app, "token"))?,
            legacy_prefix_hash,
            opt_out_method: method_name(spec.opt_out_method).into(),
        };
        let id = self.store.insert_tenant(&row, self.clock.now_ms()).await?;
        let t = self
            .store
            .tenant(id)
            .await?
            .ok_or_else(|| Error::UnknownTenant(spec.app.clone()))?;
        Ok((t, token))
    }

    pub async fn get(&self, app: &str) -> Result<TenantRow> {
        self.store
            .tenant_by_app(app)
            .await?
            .ok_or_else(|| Error::UnknownTenant(app.to_string()))
    }

    /// The tenant's Post URL (its token decrypted).
    pub async fn post_url(&self, app: &str) -> Result<String> {
        let t = self.get(app).await?;
        let token = self.secrets.open(&t.token_sealed, &aad(&t.app, "token"))?;
        let token =
            String::from_utf8(token).map_err(|_| Error::Crypto("token is not UTF-8".into()))?;
        Ok(post_url(&self.public_url, &t.app, &token))
    }

    /// A new hook token; the old one stops working at once. Returns the new Post URL.
    pub async fn rotate_token(&self, app: &str) -> Result<String> {
        let t = self.get(app).await?;
        let token = new_token();
        let sealed = self.secrets.seal(token.as_bytes(), &aad(&t.app, "token"))?;
        self.store
            .set_tenant_token(t.id, &digest_hex(&token), &sealed, self.clock.now_ms())
            .await?;
        Ok(post_url(&self.public_url, &t.app, &token))
    }

    pub async fn remove(&self, app: &str) -> Result<()> {
        let t = self.get(app).await?;
        self.store.remove_tenant(t.id).await?;
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&t.id);
        Ok(())
    }

    /// The tenant, if `auth` is its hook token (or, for a tenant that opted in, the first six
    /// characters of its legacy key). Unknown apps and wrong tokens are indistinguishable
    /// to the caller; the comparison is constant-time.
    pub async fn authenticate(&self, app: &str, auth: &str) -> Result<Option<TenantRow>> {
        let t = if validate_app(app).is_ok() {
            self.store.tenant_by_app(app).await?
        } else {
            None
        };
        let Some(t) = t else {
            // Spend the same work as a real comparison.
            let _ = matches_digest(auth, &digest_hex("no such tenant"));
            return Ok(None);
        };
        let main = matches_digest(auth, &t.token_hash);
        let legacy = t
            .legacy_prefix_hash
            .as_deref()
            .is_some_and(|h| auth.len() == 6 && matches_digest(auth, h));
        Ok((main || legacy).then_some(t))
    }

    /// Stores (or replaces) a tenant's settings for a sending provider, sealed.
    pub async fn set_provider(
        &self,
        app: &str,
        provider: crate::providers::Provider,
        config: &crate::providers::ProviderConfig,
    ) -> Result<()> {
        let t = self.get(app).await?;
        let json = serde_json::to_vec(config).map_err(|e| Error::Crypto(e.to_string()))?;
        let sealed = self.secrets.seal(
            &json,
            &aad(&t.app, &format!("provider:{}", provider.name())),
        )?;
        self.store
            .upsert_provider(t.id, provider.name(), &sealed, self.clock.now_ms())
            .await
    }

    /// A tenant's settings for a provider, if it has any.
    pub async fn provider_config(
        &self,
        t: &TenantRow,
        provider: crate::providers::Provider,
    ) -> Result<Option<crate::providers::ProviderConfig>> {
        let Some(sealed) = self.store.provider_config(t.id, provider.name()).await? else {
            return Ok(None);
        };
        let raw = self.secrets.open(
            &sealed,
            &aad(&t.app, &format!("provider:{}", provider.name())),
        )?;
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Error::Crypto(format!("stored provider settings: {e}")))
    }

    /// The URL to give a provider for a tenant's webhook.
    pub fn provider_url(&self, app: &str, provider: crate::providers::Provider) -> String {
        format!("{}/hooks/esp/{}/{app}", self.public_url, provider.name())
    }

    pub fn credential(&self, t: &TenantRow) -> Result<StoredCredential> {
        let raw = self
            .secrets
            .open(&t.credential_sealed, &aad(&t.app, "credential"))?;
        serde_json::from_slice(&raw).map_err(|e| Error::Crypto(format!("stored credential: {e}")))
    }

    fn pacer(&self, key: String, default: PacingConfig) -> Arc<Pacer> {
        let mut pacers = self.pacers.lock().unwrap_or_else(|e| e.into_inner());
        pacers
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Pacer::new(self.pacing_override.clone().unwrap_or(default)))
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
        let method: OptOutMethod = t.opt_out_method.parse().map_err(Error::Config)?;
        let (credential, pacer) = match self.credential(t)? {
            StoredCredential::ApiKey { key } => {
                // Keap counts a key's calls wherever they come from: tenants sharing a key
                // share its pacer.
                let pacer = self.pacer(
                    format!("key:{}", digest_hex(&key)),
                    PacingConfig::service_account(),
                );
                (Credential::api_key(key), pacer)
            }
            StoredCredential::OAuth {
                client_id,
                client_secret,
                refresh_token,
                access_token,
                expires_at_ms,
                token_url,
            } => {
                let token_url = match token_url {
                    Some(u) => u,
                    None => derive_token_url(&t.keap_base_url)?,
                };
                let token_url = url::Url::parse(&token_url)
                    .map_err(|e| Error::Config(format!("token URL: {e}")))?;
                let persist = self.persist_tokens(
                    t.id,
                    t.app.clone(),
                    client_id.clone(),
                    client_secret.clone(),
                    token_url.to_string(),
                );
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
                // An OAuth client's limits are shared by every app it serves.
                let pacer = self.pacer(format!("oauth:{client_id}"), PacingConfig::oauth_client());
                (Credential::OAuth(Arc::new(session)), pacer)
            }
        };
        let client = KeapClient::builder(&t.keap_base_url, credential)
            .pacer(pacer)
            .opt_out_method(method)
            .build()?;
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.id, (t.updated_at, client.clone()));
        Ok(client)
    }

    /// Stores rotated OAuth tokens (sealed) before the client may use them. The cached client
    /// is kept: it already holds the new tokens in memory.
    fn persist_tokens(
        &self,
        tenant_id: i64,
        app: String,
        client_id: String,
        client_secret: String,
        token_url: String,
    ) -> keap::PersistTokens {
        let store = self.store.clone();
        let secrets = self.secrets.clone();
        let clock = self.clock.clone();
        let clients = self.clients.clone();
        Arc::new(move |tokens: OAuthTokens| {
            let (store, secrets, clock, clients) = (
                store.clone(),
                secrets.clone(),
                clock.clone(),
                clients.clone(),
            );
            let cred = StoredCredential::OAuth {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: tokens.refresh_token.expose_secret().to_string(),
                access_token: Some(tokens.access_token.expose_secret().to_string()),
                expires_at_ms: Some(tokens.expires_at_ms),
                token_url: Some(token_url.clone()),
            };
            let app = app.clone();
            Box::pin(async move {
                let json = serde_json::to_vec(&cred).map_err(|e| e.to_string())?;
                let sealed = secrets
                    .seal(&json, &aad(&app, "credential"))
                    .map_err(|e| e.to_string())?;
                let now = clock.now_ms();
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
    let mut u = url::Url::parse(base).map_err(|e| Error::Config(format!("base URL: {e}")))?;
    u.set_path("/token");
    u.set_query(None);
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_compared_by_digest() {
        let a = new_token();
        assert!(a.len() >= 43, "256 bits");
        assert_ne!(a, new_token());
        let h = digest_hex(&a);
        assert!(matches_digest(&a, &h));
        assert!(!matches_digest(&a[..42], &h));
        assert!(!matches_digest(&a, "not-hex"));
    }

    #[test]
    fn post_urls_keep_the_guides_shape() {
        assert_eq!(
            post_url("https://optsync.example.com/", "rc135", "a+b/c"),
            "https://optsync.example.com/process_optout.php?app=rc135&auth=a%2Bb%2Fc"
        );
        assert_eq!(
            derive_token_url("https://api.infusionsoft.com/crm").unwrap(),
            "https://api.infusionsoft.com/token"
        );
    }

    #[test]
    fn app_names_are_checked() {
        assert!(validate_app("rc135").is_ok());
        for bad in ["", "a b", "x/../y", "app?x=1", &"a".repeat(64)] {
            assert!(validate_app(bad).is_err(), "{bad:?}");
        }
    }
}
