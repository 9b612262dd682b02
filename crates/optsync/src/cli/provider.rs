//! `optsync provider add|list|url|push|unpush`: the sending providers whose webhooks report
//! unsubscribes, complaints and bounces for a tenant.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::read_secret_file;
use crate::app::App;
use crate::clock::rfc3339;
use crate::providers::{Provider, ProviderSettings, Setting, SettingsError};

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Add (or replace) a provider's settings for a tenant; prints the webhook URL to give the
    /// provider, alone on the last line. Secrets are read from files, never the command line.
    ///
    /// ses: --topic-arn (repeatable): the SNS topics this app's SES events come from; only
    /// these are accepted and only their subscriptions are confirmed.
    /// sendgrid: --public-key-file (the Signed Event Webhook's verification key).
    /// mailgun: --signing-key-file (the HTTP webhook signing key, not the API key).
    /// mandrill: --webhook-key-file, and --url if Mandrill was given another URL than the one
    /// printed (the URL is part of what Mandrill signs).
    /// postmark, mailjet: --basic-user with --basic-password-file.
    /// sparkpost: basic auth as above, or --oauth-client-secret-file for SparkPost's OAuth 2.0
    /// mode: optsync is the token URL and prints it with the client id to give SparkPost.
    /// brevo: basic auth as above, or --bearer-token-file.
    /// Passwords, bearer tokens and client secrets must be at least 32 characters; instead of
    /// a file, --generate-secret makes one (256 random bits) and prints it once.
    Add(Box<ProviderAdd>),
    /// List a tenant's providers.
    List { app: String },
    /// Print the webhook URL to give a provider, alone.
    Url { app: String, provider: String },
    /// Opt in to writing this app's opted-out addresses to the provider's own suppression
    /// list, in the scope given (refused, storing nothing, when it would not block the
    /// relay's mail). The credential is read from a file and stored encrypted.
    Push(Box<super::push::PushArgs>),
    /// Stop writing to a provider's suppression list (same as `push APP PROVIDER --remove`).
    Unpush { app: String, provider: String },
}

/// What `provider add` takes.
#[derive(Debug, clap::Args)]
pub struct ProviderAdd {
    app: String,
    /// ses | sendgrid | mailgun | mandrill | postmark | sparkpost | mailjet | brevo
    provider: String,
    /// SES: an SNS topic ARN to accept (repeatable).
    #[arg(long = "topic-arn", value_name = "ARN")]
    topic_arns: Vec<String>,
    #[arg(long, value_name = "FILE")]
    public_key_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    signing_key_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    webhook_key_file: Option<PathBuf>,
    /// Mandrill: the webhook URL exactly as registered with Mandrill.
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    basic_user: Option<String>,
    #[arg(long, value_name = "FILE")]
    basic_password_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    bearer_token_file: Option<PathBuf>,
    /// SparkPost: the OAuth 2.0 client secret SparkPost will present for tokens.
    #[arg(long, value_name = "FILE")]
    oauth_client_secret_file: Option<PathBuf>,
    /// Make the shared secret instead of reading it from a file, and print it once:
    /// postmark and mailjet (with --basic-user): the password; brevo: the password with
    /// --basic-user, else a bearer token; sparkpost: the password with --basic-user, else
    /// an OAuth client secret.
    #[arg(long, conflicts_with_all = ["basic_password_file", "bearer_token_file", "oauth_client_secret_file"])]
    generate_secret: bool,
    /// SendGrid and Mailgun: how old a signed timestamp may be, in seconds (defaults: 24 h
    /// 10 min for SendGrid, which retries for 24 h; 8 h 10 min for Mailgun, which retries for 8 h).
    #[arg(long)]
    max_age_secs: Option<u64>,
}

fn parse_provider(name: &str) -> anyhow::Result<Provider> {
    Provider::from_name(name).with_context(|| {
        format!("unknown provider {name:?}: ses, sendgrid, mailgun, mandrill, postmark, sparkpost, mailjet or brevo")
    })
}

fn secret(f: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    f.as_ref().map(read_secret_file).transpose()
}

/// The flags that give a setting.
fn flags(setting: Setting) -> &'static str {
    match setting {
        Setting::TopicArns => "one or more --topic-arn arn:aws…:sns:REGION:ACCOUNT:TOPIC",
        Setting::PublicKey => "--public-key-file",
        Setting::SigningKey => "--signing-key-file",
        Setting::WebhookKey => "--webhook-key-file",
        Setting::BasicAuth => "--basic-user with --basic-password-file",
        Setting::BasicAuthOrBearer => {
            "--basic-user with --basic-password-file, or --bearer-token-file"
        }
        Setting::BasicAuthOrOauth => {
            "--basic-user with --basic-password-file, or --oauth-client-secret-file"
        }
    }
}

impl ProviderAdd {
    /// The settings, with a generated secret filled in where it was asked for (returned
    /// too, to be printed once).
    fn settings_with_secret(
        &self,
        p: Provider,
    ) -> anyhow::Result<(ProviderSettings, Option<String>)> {
        let mut s = self.settings()?;
        if !self.generate_secret {
            return Ok((s, None));
        }
        let secret = crate::tenant::new_token();
        match (p, s.basic_user.is_some()) {
            (
                Provider::Postmark | Provider::Mailjet | Provider::Brevo | Provider::Sparkpost,
                true,
            ) => s.basic_password = Some(secret.clone()),
            (Provider::Brevo, false) => s.bearer_token = Some(secret.clone()),
            (Provider::Sparkpost, false) => {
                s.oauth_client_id = Some(crate::providers::oauth::client_id_for(&self.app));
                s.oauth_client_secret = Some(secret.clone());
            }
            (Provider::Postmark | Provider::Mailjet, false) => {
                bail!("{} needs --basic-user with --generate-secret", p.name())
            }
            _ => bail!(
                "{} issues its own key; --generate-secret is for postmark, mailjet, brevo and sparkpost",
                p.name()
            ),
        }
        Ok((s, Some(secret)))
    }

    fn settings(&self) -> anyhow::Result<ProviderSettings> {
        Ok(ProviderSettings {
            topic_arns: self.topic_arns.clone(),
            public_key: secret(&self.public_key_file)?,
            signing_key: secret(&self.signing_key_file)?,
            webhook_key: secret(&self.webhook_key_file)?,
            url: self.url.clone(),
            basic_user: self.basic_user.clone(),
            basic_password: secret(&self.basic_password_file)?,
            bearer_token: secret(&self.bearer_token_file)?,
            oauth_client_id: self
                .oauth_client_secret_file
                .as_ref()
                .map(|_| crate::providers::oauth::client_id_for(&self.app)),
            oauth_client_secret: secret(&self.oauth_client_secret_file)?,
            max_age_secs: self.max_age_secs,
        })
    }
}

pub async fn run(app: &App, cmd: ProviderCommand) -> anyhow::Result<()> {
    let tenants = app.tenants();
    match cmd {
        ProviderCommand::Add(add) => {
            let p = parse_provider(&add.provider)?;
            tenants.get(&add.app).await?;
            let (settings, generated) = add.settings_with_secret(p)?;
            let config = match settings.into_config(p, || tenants.provider_url(&add.app, p)) {
                Ok(c) => c,
                Err(SettingsError::Missing { provider, setting }) => {
                    bail!("{provider} needs {}", flags(setting))
                }
                Err(SettingsError::Invalid(why)) => bail!("{why}"),
            };
            tenants.set_provider(&add.app, p, &config).await?;
            let name = p.name();
            if let Some(secret) = generated {
                println!("The generated secret, to give {name} (it is not shown again):");
                println!("{secret}");
            }
            if let crate::providers::ProviderConfig::SparkpostOauth { client_id, .. } = &config {
                println!(
                    "In SparkPost's webhook, choose OAuth 2.0 with token URL {}/token, client id {client_id} and the client secret.",
                    tenants.provider_url(&add.app, p)
                );
            }
            println!(
                "{name} configured for {}. Give {name} this webhook URL:",
                add.app
            );
            println!("{}", tenants.provider_url(&add.app, p));
        }
        ProviderCommand::List { app: name } => {
            let t = tenants.get(&name).await?;
            for (provider, at) in app.store().providers(t.id).await? {
                println!("{provider:<10} configured {}", rfc3339(at));
            }
            super::push::list(app, t.id).await?;
        }
        ProviderCommand::Url {
            app: name,
            provider,
        } => {
            let p = parse_provider(&provider)?;
            let t = tenants.get(&name).await?;
            if tenants.provider_config(&t, p).await?.is_none() {
                bail!("{provider} is not configured for {name}");
            }
            println!("{}", tenants.provider_url(&name, p));
        }
        ProviderCommand::Push(a) => super::push::push(app, *a).await?,
        ProviderCommand::Unpush {
            app: name,
            provider,
        } => super::push::unpush(app, &name, &provider).await?,
    }
    Ok(())
}
