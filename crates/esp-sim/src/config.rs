//! The emulator's settings: credentials per provider, the SES account's enforced reasons, rate
//! limits, and a switch for each behaviour the providers do not document
//! (`reference/esp-suppression.md` marks them UNCONFIRMED). Each default is stated on its field.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::provider::{Provider, UnknownProvider};

/// An SES suppression reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SesReason {
    Bounce,
    Complaint,
}

impl SesReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "BOUNCE",
            Self::Complaint => "COMPLAINT",
        }
    }
}

impl FromStr for SesReason {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "BOUNCE" => Ok(Self::Bounce),
            "COMPLAINT" => Ok(Self::Complaint),
            other => Err(ConfigError(format!(
                "SES reason {other:?}: expected BOUNCE or COMPLAINT"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<UnknownProvider> for ConfigError {
    fn from(e: UnknownProvider) -> Self {
        Self(e.to_string())
    }
}

/// At most `limit` calls per `window` for one provider (a fixed window from the first call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

impl FromStr for RateLimit {
    type Err = ConfigError;
    /// `N/s`, `N/min` or `N/h`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError(format!("rate limit {s:?}: expected N/s, N/min or N/h"));
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let window = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if limit == 0 {
            return Err(bad());
        }
        Ok(Self { limit, window })
    }
}

/// One accepted credential. SES takes `ACCESS_KEY_ID:SECRET_ACCESS_KEY`, Mailjet
/// `PUBLIC:PRIVATE`; every other provider one opaque secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub provider: Provider,
    pub secret: String,
}

/// Never prints the secret.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, <redacted>)", self.provider)
    }
}

impl FromStr for Credential {
    type Err = ConfigError;
    /// `PROVIDER=SECRET`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (p, secret) = s
            .split_once('=')
            .ok_or_else(|| ConfigError("credential: expected PROVIDER=SECRET".into()))?;
        let provider: Provider = p.parse()?;
        if secret.is_empty() {
            return Err(ConfigError(format!("credential for {provider}: empty")));
        }
        if matches!(provider, Provider::Ses | Provider::Mailjet) && !secret.contains(':') {
            return Err(ConfigError(format!(
                "credential for {provider}: expected ID:SECRET"
            )));
        }
        Ok(Self {
            provider,
            secret: secret.to_string(),
        })
    }
}

/// Mailgun's two API bases; a domain lives in one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MailgunRegion {
    Us,
    Eu,
}

impl MailgunRegion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
        }
    }
}

/// What SendGrid, Mailgun and Mandrill answer when an address already on the list is added
/// again: not documented by any of them (SES, SparkPost, Mailjet and Brevo document upserts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReAdd {
    /// As a first add (default).
    Accept,
    /// SendGrid echoes only the addresses it added, Mailgun answers a form insert with 400
    /// "Address already exists", Mandrill `"added": false`. The entry stays.
    Refuse,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub credentials: Vec<Credential>,
    /// The SES account's `SuppressionAttributes.SuppressedReasons`, in every region (default
    /// both: accounts created after 2019-11-25).
    pub ses_suppressed_reasons: Vec<SesReason>,
    /// Calls allowed per provider. Defaults: SendGrid 600/min (the default its 2019 changelog
    /// names; per-endpoint numbers are not published), Brevo 150/s ("All other endpoints");
    /// none for the rest, whose numbers are unpublished.
    pub rate_limits: BTreeMap<Provider, RateLimit>,
    /// Mailgun domains by region. Empty: every domain exists in both regions. Otherwise a
    /// domain asked of the other region's base is a 404, as Mailgun answers.
    pub mailgun_domains: Vec<(MailgunRegion, String)>,
    /// Postmark message streams of the server. Empty: every stream id exists.
    pub postmark_streams: Vec<String>,
    /// How long a Postmark suppression takes to become active ("can take a minute"; 60 s).
    pub postmark_activation_delay: Duration,
    /// Most addresses per Postmark create call (UNCONFIRMED, recollection 50).
    pub postmark_max_per_call: usize,
    /// Request bodies larger than this are refused with 413 (default 1 MiB; SparkPost's own
    /// limit is 50 MB, far above what a suppression push sends).
    pub max_body_bytes: usize,
    /// How long an injected `timeout` fault holds a request before answering 504.
    pub fault_timeout_delay: Duration,
    pub readd: ReAdd,
}

impl Default for SimConfig {
    fn default() -> Self {
        let mut rate_limits = BTreeMap::new();
        rate_limits.insert(
            Provider::Sendgrid,
            RateLimit {
                limit: 600,
                window: Duration::from_secs(60),
            },
        );
        rate_limits.insert(
            Provider::Brevo,
            RateLimit {
                limit: 150,
                window: Duration::from_secs(1),
            },
        );
        Self {
            credentials: Vec::new(),
            ses_suppressed_reasons: vec![SesReason::Bounce, SesReason::Complaint],
            rate_limits,
            mailgun_domains: Vec::new(),
            postmark_streams: Vec::new(),
            postmark_activation_delay: Duration::from_secs(60),
            postmark_max_per_call: 50,
            max_body_bytes: 1 << 20,
            fault_timeout_delay: Duration::from_secs(60),
            readd: ReAdd::Accept,
        }
    }
}

impl SimConfig {
    /// The secrets accepted for `provider`.
    pub fn secrets(&self, provider: Provider) -> impl Iterator<Item = &str> {
        self.credentials
            .iter()
            .filter(move |c| c.provider == provider)
            .map(|c| c.secret.as_str())
    }

    /// Whether Mailgun serves `domain` from `region`'s base.
    pub fn mailgun_domain_in(&self, region: MailgunRegion, domain: &str) -> bool {
        self.mailgun_domains.is_empty()
            || self
                .mailgun_domains
                .iter()
                .any(|(r, d)| *r == region && d.eq_ignore_ascii_case(domain))
    }

    pub fn postmark_stream_exists(&self, stream: &str) -> bool {
        self.postmark_streams.is_empty() || self.postmark_streams.iter().any(|s| s == stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_refuse_what_they_should() {
        let c: Credential = "ses=AKID:secret".parse().unwrap();
        assert_eq!(c.provider, Provider::Ses);
        assert!("ses=nocolon".parse::<Credential>().is_err());
        assert!("sendgrid=".parse::<Credential>().is_err());
        assert!("nope=x".parse::<Credential>().is_err());
        assert!(!format!("{c:?}").contains("secret"), "Debug redacts");
        let r: RateLimit = "5/s".parse().unwrap();
        assert_eq!((r.limit, r.window), (5, Duration::from_secs(1)));
        assert!("0/s".parse::<RateLimit>().is_err());
        assert!("5/day".parse::<RateLimit>().is_err());
        assert_eq!("COMPLAINT".parse::<SesReason>(), Ok(SesReason::Complaint));
        assert!("UNSUBSCRIBE".parse::<SesReason>().is_err());
    }
}
