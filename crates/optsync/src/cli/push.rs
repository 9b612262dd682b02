//! `optsync provider push|unpush`: where an opted-out address is also written to the sending
//! provider's own suppression list, and `provider list`'s lines for those.

use crate::store::TenantId;
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::read_secret_file;
use crate::app::App;
use crate::clock::rfc3339;
use crate::push::{PushClient, PushConfig, PushCredential, Refusal, read_aws_credentials};

/// What `provider push` takes.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    app: String,
    /// ses | sendgrid | mailgun | postmark | sparkpost | mandrill | mailjet | brevo
    provider: String,
    /// The provider's API base (default: its own). https, or http on a loopback address.
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// The API key or server token (Mailjet: PUBLIC_KEY:PRIVATE_KEY), alone in the file.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// SES: an AWS shared-credentials file.
    #[arg(long, value_name = "FILE")]
    aws_credentials_file: Option<PathBuf>,
    /// SES: the profile in --aws-credentials-file.
    #[arg(long, default_value = "default")]
    aws_profile: String,
    /// SES: a region the relay sends from (repeatable; each has its own list).
    /// Mailgun: us or eu, where its domains are.
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Mailgun: a sending domain (repeatable; each has its own list).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Postmark: a message stream (repeatable; each has its own list).
    #[arg(long = "stream")]
    streams: Vec<String>,
    /// Brevo: a From address the relay uses (repeatable; transactional mail is blocked per
    /// sender).
    #[arg(long = "sender")]
    senders: Vec<String>,
    /// SES: BOUNCE or COMPLAINT (default COMPLAINT); the account must enforce it.
    #[arg(long)]
    reason: Option<String>,
    /// Mailjet (required) and Brevo: accept that only marketing mail is blocked.
    #[arg(long)]
    marketing_only: bool,
    /// Remove this push instead; nothing more is written to the provider.
    #[arg(long, conflicts_with_all = ["api_url", "api_key_file", "aws_credentials_file"])]
    remove: bool,
}

impl PushArgs {
    fn credential(&self) -> anyhow::Result<PushCredential> {
        if self.provider == "ses" {
            let file = self
                .aws_credentials_file
                .as_ref()
                .context("ses needs --aws-credentials-file (and --aws-profile unless default)")?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let keys = read_aws_credentials(&text, &self.aws_profile)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            return Ok(PushCredential::Aws {
                access_key_id: keys.access_key_id,
                secret_access_key: keys.secret_access_key,
            });
        }
        let file = self
            .api_key_file
            .as_ref()
            .with_context(|| format!("{} needs --api-key-file", self.provider))?;
        Ok(PushCredential::ApiKey {
            key: read_secret_file(file)?,
        })
    }

    fn config(&self) -> anyhow::Result<PushConfig> {
        Ok(PushConfig {
            provider: self.provider.clone(),
            api_url: self.api_url.clone(),
            credential: self.credential()?,
            regions: self.regions.clone(),
            domains: self.domains.clone(),
            streams: self.streams.clone(),
            senders: self.senders.clone(),
            reason: self.reason.clone(),
            marketing_only: self.marketing_only,
        })
    }
}

/// Checks (scope, then one live read) and stores; refuses with the reason, storing nothing.
pub async fn push(app: &App, a: PushArgs) -> anyhow::Result<()> {
    let tenant = app.tenants().get(&a.app).await?;
    if a.remove {
        return unpush(app, &a.app, &a.provider).await;
    }
    let config = a.config()?;
    config.check_scope().map_err(refused)?;
    let client =
        PushClient::new(&config, suppress::Options::default()).map_err(|e| refused(e.into()))?;
    client
        .check()
        .await
        .map_err(|e| refused(Refusal::from(e)))?;
    app.tenants().set_push(&tenant.app, &config).await?;
    println!(
        "{} push configured for {}: {}",
        config.provider,
        a.app,
        config.scope()
    );
    if config.marketing_only {
        println!(
            "Only marketing mail will be blocked at {}.",
            config.provider
        );
    }
    Ok(())
}

fn refused(r: Refusal) -> anyhow::Error {
    anyhow::anyhow!("refused, nothing stored: {r}")
}

pub async fn unpush(app: &App, name: &str, provider: &str) -> anyhow::Result<()> {
    let t = app.tenants().get(name).await?;
    if !app.store().delete_push(t.id, provider).await? {
        bail!("no {provider} push for {name}");
    }
    println!("{provider} push removed for {name}");
    Ok(())
}

/// `provider list`'s push lines: provider, scope, when (never the credential).
pub async fn list(app: &App, tenant_id: TenantId) -> anyhow::Result<()> {
    for row in app.store().pushes(tenant_id).await? {
        println!(
            "{:<10} push to {} configured {}",
            row.provider,
            row.scope,
            rfc3339(row.updated_at)
        );
    }
    Ok(())
}
