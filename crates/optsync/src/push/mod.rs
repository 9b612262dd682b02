//! Suppression at the sending provider: per tenant, which providers an opted-out address is
//! to be written to (opt-in: it sends addresses to a third party), with the scope each
//! provider's list needs and the credential, sealed at rest. A configuration that would not
//! block the relay's mail is refused before anything is stored.

mod aws;
mod cache;
mod client;
mod config;
mod pace;

pub use aws::{AwsKeys, read_aws_credentials};
pub use cache::PushClients;
pub use client::PushClient;
pub use config::{PushConfig, PushCredential, Refusal};
pub use pace::PushPacer;

use crate::clock::Millis;
use crate::crypto::SecretBox;
use crate::error::Result;
use crate::store::{Store, TenantRow};

/// The `suppress` client's name for a provider optsync also receives webhooks from.
pub fn provider_of(p: crate::providers::Provider) -> suppress::Provider {
    use crate::providers::Provider as P;
    match p {
        P::Ses => suppress::Provider::Ses,
        P::Sendgrid => suppress::Provider::Sendgrid,
        P::Mailgun => suppress::Provider::Mailgun,
        P::Postmark => suppress::Provider::Postmark,
        P::Sparkpost => suppress::Provider::Sparkpost,
        P::Mandrill => suppress::Provider::Mandrill,
        P::Mailjet => suppress::Provider::Mailjet,
        P::Brevo => suppress::Provider::Brevo,
    }
}

/// What the sealed column is bound to: a row moved to another tenant or provider won't open.
pub fn aad(app: &str, provider: suppress::Provider) -> String {
    format!("tenant:{app}:push:{provider}")
}

/// Seals and stores a checked configuration.
pub async fn store(
    store: &Store,
    secrets: &SecretBox,
    tenant: &TenantRow,
    config: &PushConfig,
    now: Millis,
) -> Result<()> {
    let json = serde_json::to_vec(config).map_err(|e| crate::Error::CorruptState(e.to_string()))?;
    let sealed = secrets.seal(&json, &aad(&tenant.app, config.provider()))?;
    store
        .upsert_push(
            tenant.id,
            &config.provider().to_string(),
            &config.scope(),
            &sealed,
            now,
        )
        .await
}

/// A tenant's stored pushes, opened.
pub async fn load(
    store: &Store,
    secrets: &SecretBox,
    tenant: &TenantRow,
) -> Result<Vec<PushConfig>> {
    let mut out = Vec::new();
    for row in store.pushes(tenant.id).await? {
        let provider = config::parse_provider(&row.provider)
            .map_err(|e| crate::Error::CorruptState(e.to_string()))?;
        let raw = secrets.open(&row.config_sealed, &aad(&tenant.app, provider))?;
        out.push(
            serde_json::from_slice(&raw).map_err(|e| crate::Error::CorruptState(e.to_string()))?,
        );
    }
    Ok(out)
}
