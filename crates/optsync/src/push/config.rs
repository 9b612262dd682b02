//! A push configuration: the provider, its API URL, the scope its list needs and the
//! credential; and the refusals of one that would not block the relay's mail.

use serde::{Deserialize, Serialize};
use suppress::Provider;

/// The credential, as each provider takes it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushCredential {
    /// One API key or server token (Mailjet: `PUBLIC:PRIVATE`).
    ApiKey { key: String },
    /// SES: an access key pair.
    Aws {
        access_key_id: String,
        secret_access_key: String,
    },
}

impl std::fmt::Debug for PushCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey { .. } => f.write_str("ApiKey(…)"),
            Self::Aws { access_key_id, .. } => write!(f, "Aws({access_key_id}, …)"),
        }
    }
}

/// Why a configuration is refused: it would not block the relay's mail, or it cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Scope(String),
    #[error(
        "Mailjet's only suppression call (contact exclusion) blocks marketing mail only: the relay's transactional mail would still be delivered. Pass --marketing-only to push anyway"
    )]
    MailjetMarketingOnly,
    #[error("{flag} does not apply to {provider}")]
    NotApplicable {
        flag: &'static str,
        provider: Provider,
    },
    #[error("{0}")]
    Provider(#[from] suppress::Error),
}

/// What is stored (sealed) for one tenant and provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushConfig {
    pub provider: String,
    /// `None`: the provider's own API.
    pub api_url: Option<String>,
    pub credential: PushCredential,
    /// SES regions, or Mailgun's `us`/`eu`.
    pub regions: Vec<String>,
    pub domains: Vec<String>,
    pub streams: Vec<String>,
    pub senders: Vec<String>,
    /// SES: `BOUNCE` or `COMPLAINT`.
    pub reason: Option<String>,
    pub marketing_only: bool,
}

pub fn parse_provider(name: &str) -> Result<Provider, Refusal> {
    Ok(match name {
        "ses" => Provider::Ses,
        "sendgrid" => Provider::Sendgrid,
        "mailgun" => Provider::Mailgun,
        "postmark" => Provider::Postmark,
        "sparkpost" => Provider::Sparkpost,
        "mandrill" => Provider::Mandrill,
        "mailjet" => Provider::Mailjet,
        "brevo" => Provider::Brevo,
        other => {
            return Err(Refusal::Scope(format!(
                "unknown provider {other:?}: ses, sendgrid, mailgun, postmark, sparkpost, mandrill, mailjet or brevo"
            )));
        }
    })
}

fn need(ok: bool, why: &str) -> Result<(), Refusal> {
    if ok {
        Ok(())
    } else {
        Err(Refusal::Scope(why.to_string()))
    }
}

impl PushConfig {
    pub fn provider(&self) -> Provider {
        // Only configurations built through `check_scope` are stored.
        parse_provider(&self.provider).unwrap_or(Provider::Sendgrid)
    }

    /// The scope refusals that need no call: a list the relay's mail would bypass, or flags
    /// for another provider.
    pub fn check_scope(&self) -> Result<(), Refusal> {
        let p = parse_provider(&self.provider)?;
        self.check_flags(p)?;
        match p {
            Provider::Ses => need(
                !self.regions.is_empty(),
                "SES keeps one suppression list per region: give every region the relay sends from with --region",
            ),
            Provider::Mailgun => need(
                !self.domains.is_empty(),
                "Mailgun keeps suppressions per sending domain: give every domain the relay sends from with --domain",
            ),
            Provider::Postmark => need(
                !self.streams.is_empty(),
                "Postmark keeps suppressions per message stream: give every stream the relay sends through with --stream (e.g. outbound)",
            ),
            Provider::Brevo => need(
                self.marketing_only || !self.senders.is_empty(),
                "Brevo blocks transactional mail per sender: give every From address the relay uses with --sender, or pass --marketing-only to block campaigns only",
            ),
            Provider::Mailjet if !self.marketing_only => Err(Refusal::MailjetMarketingOnly),
            _ => Ok(()),
        }
    }

    fn check_flags(&self, p: Provider) -> Result<(), Refusal> {
        let na = |flag| Err(Refusal::NotApplicable { flag, provider: p });
        if !self.regions.is_empty() && !matches!(p, Provider::Ses | Provider::Mailgun) {
            return na("--region");
        }
        if p == Provider::Mailgun && self.regions.len() > 1 {
            return Err(Refusal::Scope(
                "Mailgun: one --region (us or eu), the region of its domains".into(),
            ));
        }
        if !self.domains.is_empty() && p != Provider::Mailgun {
            return na("--domain");
        }
        if !self.streams.is_empty() && p != Provider::Postmark {
            return na("--stream");
        }
        if !self.senders.is_empty() && p != Provider::Brevo {
            return na("--sender");
        }
        if self.reason.is_some() && p != Provider::Ses {
            return na("--reason");
        }
        if self.marketing_only && !matches!(p, Provider::Mailjet | Provider::Brevo) {
            return na("--marketing-only");
        }
        Ok(())
    }

    /// What is written, in words (shown by `provider list`; no secret).
    pub fn scope(&self) -> String {
        let list = |v: &[String]| v.join(",");
        match self.provider() {
            Provider::Ses => format!(
                "regions {}; reason {}",
                list(&self.regions),
                self.reason.as_deref().unwrap_or("COMPLAINT")
            ),
            Provider::Mailgun => format!(
                "domains {}; region {}",
                list(&self.domains),
                self.regions.first().map_or("us", String::as_str)
            ),
            Provider::Postmark => format!("streams {}", list(&self.streams)),
            Provider::Sparkpost => "transactional and non_transactional".into(),
            Provider::Sendgrid => "global suppressions".into(),
            Provider::Mandrill => "rejection denylist".into(),
            Provider::Mailjet => "marketing only (campaign exclusion)".into(),
            Provider::Brevo if self.senders.is_empty() => "campaigns only".into(),
            Provider::Brevo => format!("campaigns; senders {}", list(&self.senders)),
        }
    }
}
