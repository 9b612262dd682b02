//! Tenants (one Keap app each): their hook tokens, their sealed Keap credentials, their Post
//! URLs, and the Keap clients built from them.

use crate::clock::Now as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keap::OptOutMethod;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::providers::{Provider, ProviderConfig};
use crate::store::{CredentialKind, NewTenant, Store, TenantRow};

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
    fn kind(&self) -> CredentialKind {
        match self {
            Self::ApiKey { .. } => CredentialKind::ApiKey,
            Self::OAuth { .. } => CredentialKind::OAuth,
        }
    }

    /// Sealed for the tenants table, bound to the app's credential column.
    pub(crate) fn seal(&self, secrets: &SecretBox, app: &str) -> Result<String> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Crypto(e.to_string()))?;
        secrets.seal(&json, &aad(app, "credential"))
    }

    pub(crate) fn open(secrets: &SecretBox, t: &TenantRow) -> Result<Self> {
        let raw = secrets.open(&t.credential_sealed, &aad(&t.app, "credential"))?;
        serde_json::from_slice(&raw)
            .map_err(|e| Error::CorruptState(format!("stored credential of {}: {e}", t.app)))
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
        Err(Error::BadInput(format!(
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

/// What a hook's token proved.
#[derive(Debug)]
pub enum HookAuth {
    /// The tenant's full hook token.
    Token(TenantRow),
    /// The legacy 6-character token of a tenant that still accepts it.
    Legacy(TenantRow),
    /// Neither; `legacy`: the app exists and accepts the legacy token.
    Refused { legacy: bool },
}

/// The tenant registry: adding, finding, authenticating and removing tenants, their tokens,
/// Post URLs and provider settings. (Their Keap clients are [`crate::keap_clients`].)
#[derive(Debug, Clone)]
pub struct Tenants {
    store: Store,
    secrets: SecretBox,
    clock: Clock,
    public_url: String,
    /// Tenant rows as hook authentication last read them, for [`AUTH_CACHE_TTL`]: a burst
    /// of posts is checked against memory instead of a database round trip each.
    auth_cache: Arc<Mutex<HashMap<String, (Instant, TenantRow)>>>,
}

/// How long an authenticated tenant row is reused. A token rotated by another process (the
/// CLI) stops working within this; one rotated or removed here stops at once.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(1);

/// What `tenant add` was given.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub app: String,
    pub keap_base_url: String,
    pub credential: StoredCredential,
    pub legacy_auth: bool,
    pub opt_out_method: OptOutMethod,
    /// Accept an `http://` Keap base URL: only for a local emulator such as keap-sim. Keap's
    /// credential travels with every call, so anything else must be `https`.
    pub allow_http: bool,
}

impl Tenants {
    pub fn new(store: Store, secrets: SecretBox, clock: Clock, public_url: &str) -> Self {
        Self {
            store,
            secrets,
            clock,
            public_url: public_url.trim_end_matches('/').to_string(),
            auth_cache: Arc::default(),
        }
    }

    fn forget(&self, app: &str) {
        self.auth_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(app);
    }

    /// The tenant for hook authentication: from the cache while fresh, else the store.
    async fn tenant_for_auth(&self, app: &str) -> Result<Option<TenantRow>> {
        if let Some((at, t)) = self
            .auth_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(app)
            && at.elapsed() < AUTH_CACHE_TTL
        {
            return Ok(Some(t.clone()));
        }
        let t = self.store.tenant_by_app(app).await?;
        let mut cache = self.auth_cache.lock().unwrap_or_else(|e| e.into_inner());
        match &t {
            Some(t) => {
                // Bounded: stale entries go when it grows past the number of real tenants.
                if cache.len() > 10_000 {
                    cache.retain(|_, (at, _)| at.elapsed() < AUTH_CACHE_TTL);
                }
                cache.insert(app.to_string(), (Instant::now(), t.clone()));
            }
            None => {
                cache.remove(app);
            }
        }
        Ok(t)
    }

    /// The key that seals tenant secrets (push settings are sealed with it too).
    pub(crate) fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores an app's push setting for one provider, sealed (replacing an earlier one). The
    /// caller has checked it ([`crate::push::PushConfig::check_scope`] and one live read).
    pub async fn set_push(&self, app: &str, config: &crate::push::PushConfig) -> Result<()> {
        let tenant = self.get(app).await?;
        let now = self.clock.now();
        crate::push::store(&self.store, &self.secrets, &tenant, config, now).await
    }

    /// Adds a tenant; returns it with its new hook token.
    pub async fn add(&self, spec: TenantSpec) -> Result<(TenantRow, String)> {
        validate_app(&spec.app)?;
        let base = url::Url::parse(&spec.keap_base_url)
            .map_err(|e| Error::BadInput(format!("Keap base URL {:?}: {e}", spec.keap_base_url)))?;
        match base.scheme() {
            "https" => {}
            "http" if spec.allow_http => {}
            "http" => {
                return Err(Error::BadInput(
                    "the Keap base URL must be https: the Keap credential travels with every call (http is allowed only with --allow-http for a local emulator)".into(),
                ));
            }
            _ => return Err(Error::BadInput("the Keap base URL must be https".into())),
        }
        let legacy_prefix_hash = if spec.legacy_auth {
            let StoredCredential::ApiKey { key } = &spec.credential else {
                return Err(Error::BadInput(
                    "legacy auth needs a legacy API key, not OAuth".into(),
                ));
            };
            if key.starts_with("KeapAK") {
                return Err(Error::BadInput(
                    "legacy auth is refused for KeapAK keys: their first 6 characters are the same for everyone".into(),
                ));
            }
            let prefix: String = key.chars().take(6).collect();
            if prefix.len() < 6 {
                return Err(Error::BadInput(
                    "the API key is too short for legacy auth".into(),
                ));
            }
            Some(digest_hex(&prefix))
        } else {
            None
        };
        let token = new_token();
        let row = NewTenant {
            app: spec.app.clone(),
            keap_base_url: spec.keap_base_url.trim_end_matches('/').to_string(),
            credential_kind: spec.credential.kind(),
            credential_sealed: spec.credential.seal(&self.secrets, &spec.app)?,
            token_hash: digest_hex(&token),
            token_sealed: self
                .secrets
                .seal(token.as_bytes(), &aad(&spec.app, "token"))?,
            legacy_prefix_hash,
            opt_out_method: spec.opt_out_method,
        };
        let id = self.store.insert_tenant(&row, self.clock.now()).await?;
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
            .set_tenant_token(t.id, &digest_hex(&token), &sealed, self.clock.now())
            .await?;
        self.forget(&t.app);
        Ok(post_url(&self.public_url, &t.app, &token))
    }

    /// Stops accepting the legacy 6-character token (the full hook token keeps working).
    /// Returns whether the tenant had it.
    pub async fn disable_legacy(&self, app: &str) -> Result<bool> {
        let t = self.get(app).await?;
        if t.legacy_prefix_hash.is_none() {
            return Ok(false);
        }
        self.store.clear_legacy(t.id, self.clock.now()).await?;
        self.forget(&t.app);
        Ok(true)
    }

    pub async fn remove(&self, app: &str) -> Result<()> {
        let t = self.get(app).await?;
        self.forget(&t.app);
        self.store.remove_tenant(t.id).await
    }

    /// The tenant, if `auth` is its hook token (or, for a tenant that opted in, the first six
    /// characters of its legacy key). Unknown apps and wrong tokens are indistinguishable
    /// to the caller; the comparison is constant-time.
    pub async fn authenticate(&self, app: &str, auth: &str) -> Result<Option<TenantRow>> {
        Ok(match self.authenticate_hook(app, auth).await? {
            HookAuth::Token(t) | HookAuth::Legacy(t) => Some(t),
            HookAuth::Refused { .. } => None,
        })
    }

    /// [`Tenants::authenticate`], saying which token matched, and for a refusal whether the
    /// app accepts the legacy token (its failures are limited per app too).
    pub async fn authenticate_hook(&self, app: &str, auth: &str) -> Result<HookAuth> {
        let t = if validate_app(app).is_ok() {
            self.tenant_for_auth(app).await?
        } else {
            None
        };
        let Some(t) = t else {
            // Spend the same work as a real comparison.
            let _ = matches_digest(auth, &digest_hex("no such tenant"));
            return Ok(HookAuth::Refused { legacy: false });
        };
        let main = matches_digest(auth, &t.token_hash);
        let legacy = t
            .legacy_prefix_hash
            .as_deref()
            .is_some_and(|h| auth.len() == 6 && matches_digest(auth, h));
        Ok(match (main, legacy) {
            (true, _) => HookAuth::Token(t),
            (false, true) => HookAuth::Legacy(t),
            (false, false) => HookAuth::Refused {
                legacy: t.legacy_prefix_hash.is_some(),
            },
        })
    }

    /// Stores (or replaces) a tenant's settings for a sending provider, sealed.
    pub async fn set_provider(
        &self,
        app: &str,
        provider: Provider,
        config: &ProviderConfig,
    ) -> Result<()> {
        let t = self.get(app).await?;
        let json = serde_json::to_vec(config).map_err(|e| Error::Crypto(e.to_string()))?;
        let sealed = self.secrets.seal(
            &json,
            &aad(&t.app, &format!("provider:{}", provider.name())),
        )?;
        self.store
            .upsert_provider(t.id, provider, &sealed, self.clock.now())
            .await
    }

    /// A tenant's settings for a provider, if it has any.
    pub async fn provider_config(
        &self,
        t: &TenantRow,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>> {
        let Some(sealed) = self.store.provider_config(t.id, provider).await? else {
            return Ok(None);
        };
        let raw = self.secrets.open(
            &sealed,
            &aad(&t.app, &format!("provider:{}", provider.name())),
        )?;
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Error::CorruptState(format!("stored provider settings: {e}")))
    }

    /// The URL to give a provider for a tenant's webhook.
    pub fn provider_url(&self, app: &str, provider: Provider) -> String {
        format!("{}/hooks/esp/{}/{app}", self.public_url, provider.name())
    }
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
    }

    #[test]
    fn app_names_are_checked() {
        assert!(validate_app("rc135").is_ok());
        for bad in ["", "a b", "x/../y", "app?x=1", &"a".repeat(64)] {
            assert!(validate_app(bad).is_err(), "{bad:?}");
        }
    }
}
