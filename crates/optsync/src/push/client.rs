//! The `suppress` client a push configuration describes, and the one read that proves it.

use secrecy::SecretString;
use suppress::{
    BrevoClient, Error, MailgunClient, MailgunRegion, MailjetClient, MandrillClient, Options,
    PostmarkClient, Provider, SendgridClient, SesClient, SesCredentials, SesReason,
    SparkpostClient, Suppressed,
};

use super::{PushConfig, PushCredential};

/// One provider's client, built from a stored or proposed configuration.
#[derive(Debug, Clone)]
pub enum PushClient {
    Ses(SesClient),
    Sendgrid(SendgridClient),
    Mailgun(MailgunClient),
    Postmark(PostmarkClient),
    Sparkpost(SparkpostClient),
    Mandrill(MandrillClient),
    Mailjet(MailjetClient),
    Brevo(BrevoClient),
}

fn key(c: &PushConfig) -> Result<SecretString, Error> {
    match &c.credential {
        PushCredential::ApiKey { key } => Ok(SecretString::from(key.clone())),
        PushCredential::Aws { .. } => Err(Error::Config(format!(
            "{}: an API key, not AWS credentials",
            c.provider
        ))),
    }
}

fn ses_reason(c: &PushConfig) -> Result<SesReason, Error> {
    match c.reason.as_deref().unwrap_or("COMPLAINT") {
        "COMPLAINT" => Ok(SesReason::Complaint),
        "BOUNCE" => Ok(SesReason::Bounce),
        other => Err(Error::Config(format!(
            "SES --reason {other:?}: BOUNCE or COMPLAINT (SES has no unsubscribe reason)"
        ))),
    }
}

fn mailgun_region(c: &PushConfig) -> Result<MailgunRegion, Error> {
    match c.regions.first().map(String::as_str) {
        None | Some("us") => Ok(MailgunRegion::Us),
        Some("eu") => Ok(MailgunRegion::Eu),
        Some(other) => Err(Error::Config(format!(
            "Mailgun --region {other:?}: us or eu"
        ))),
    }
}

impl PushClient {
    pub fn new(c: &PushConfig, options: Options) -> Result<Self, Error> {
        let url = c.api_url.as_deref();
        Ok(match c.provider() {
            Provider::Ses => {
                let PushCredential::Aws {
                    access_key_id,
                    secret_access_key,
                } = &c.credential
                else {
                    return Err(Error::Config("SES: AWS credentials".into()));
                };
                let creds = SesCredentials {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: SecretString::from(secret_access_key.clone()),
                };
                Self::Ses(SesClient::new(
                    url,
                    creds,
                    &c.regions,
                    ses_reason(c)?,
                    options,
                )?)
            }
            Provider::Sendgrid => Self::Sendgrid(SendgridClient::new(url, key(c)?, None, options)?),
            Provider::Mailgun => Self::Mailgun(MailgunClient::new(
                url,
                mailgun_region(c)?,
                key(c)?,
                &c.domains,
                options,
            )?),
            Provider::Postmark => {
                Self::Postmark(PostmarkClient::new(url, key(c)?, &c.streams, options)?)
            }
            Provider::Sparkpost => {
                Self::Sparkpost(SparkpostClient::new(url, key(c)?, None, options)?)
            }
            Provider::Mandrill => Self::Mandrill(MandrillClient::new(url, key(c)?, None, options)?),
            Provider::Mailjet => Self::Mailjet(mailjet(c, url, options)?),
            Provider::Brevo => Self::Brevo(BrevoClient::new(url, key(c)?, &c.senders, options)?),
        })
    }

    /// Puts `address` on every list the configuration names and reads it back where the
    /// provider has a read call. Every write is idempotent: a retry writes again harmlessly.
    pub async fn push(&self, address: &str) -> Result<Suppressed, Error> {
        match self {
            Self::Ses(c) => c.suppress(address).await,
            Self::Sendgrid(c) => c.suppress(address).await,
            Self::Mailgun(c) => c.suppress(address).await,
            Self::Postmark(c) => c.suppress(address).await,
            Self::Sparkpost(c) => c.suppress(address).await,
            Self::Mandrill(c) => c.suppress(address).await,
            Self::Mailjet(c) => c.suppress(address).await,
            Self::Brevo(c) => c.suppress(address).await,
        }
    }

    /// Reads whether `address` is on the lists the configuration names, writing nothing;
    /// `None` for a provider with no read call (Mailjet, Brevo).
    pub async fn lookup(&self, address: &str) -> Result<Option<Suppressed>, Error> {
        Ok(Some(match self {
            Self::Ses(c) => c.lookup(address).await?,
            Self::Sendgrid(c) => c.lookup(address).await?,
            Self::Mailgun(c) => c.lookup(address).await?,
            Self::Postmark(c) => c.lookup(address).await?,
            Self::Sparkpost(c) => c.lookup(address).await?,
            Self::Mandrill(c) => c.lookup(address).await?,
            Self::Mailjet(_) | Self::Brevo(_) => return Ok(None),
        }))
    }

    /// One read call (per region, domain or stream) that proves the credential and the scope;
    /// for SES, also that the account still enforces the configured reason.
    pub async fn check(&self) -> Result<(), Error> {
        match self {
            Self::Ses(c) => c.check_reason().await,
            Self::Sendgrid(c) => c.check_credential().await,
            Self::Mailgun(c) => c.check_credential().await,
            Self::Postmark(c) => c.check_credential().await,
            Self::Sparkpost(c) => c.check_credential().await,
            Self::Mandrill(c) => c.check_credential().await,
            Self::Mailjet(c) => c.check_credential().await,
            Self::Brevo(c) => c.check_credential().await,
        }
    }
}

/// Mailjet's key pair, kept as `PUBLIC:PRIVATE` in one file.
fn mailjet(c: &PushConfig, url: Option<&str>, options: Options) -> Result<MailjetClient, Error> {
    let pair = key(c)?;
    let (public, private) = secrecy::ExposeSecret::expose_secret(&pair)
        .split_once(':')
        .ok_or_else(|| {
            Error::Config("Mailjet: the key file holds PUBLIC_KEY:PRIVATE_KEY".into())
        })?;
    MailjetClient::new(
        url,
        public.to_string(),
        SecretString::from(private.to_string()),
        options,
    )
}
