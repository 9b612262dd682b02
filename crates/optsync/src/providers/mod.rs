//! The sending providers' webhooks: unsubscribes, complaints and bounces from the services
//! that deliver the mail sent to a contact's other addresses.
//!
//! Each provider authenticates its webhook its own way, and each is checked on the raw
//! request bytes before anything in them is believed: SendGrid signs timestamp‖body with
//! ECDSA P-256, Mailgun signs timestamp‖token with HMAC-SHA256 (so tokens are single-use),
//! Mandrill signs URL‖sorted form fields with HMAC-SHA1, and Postmark, SparkPost, Mailjet and
//! Brevo use basic auth or a bearer token. Every comparison of a secret is constant-time.
//! Each provider's event types are then mapped to one [`Kind`].

mod auth;
mod brevo;
mod mailgun;
mod mailjet;
mod mandrill;
pub mod oauth;
mod postmark;
mod sendgrid;
pub mod ses;
pub mod settings;
pub mod signers;
mod sparkpost;

use axum::http::HeaderMap;
use keap::EmailAddress;
use serde::{Deserialize, Serialize};

pub use auth::HttpAuth;
pub use mandrill::signature as mandrill_signature;
pub use settings::{MIN_SECRET_CHARS, ProviderSettings, Setting, SettingsError};

/// Checks a SendGrid verification key before it is stored.
pub fn sendgrid_key_ok(b64: &str) -> Result<(), String> {
    sendgrid::parse_key(b64).map(|_| ())
}

/// A sending provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Ses,
    Sendgrid,
    Mailgun,
    Postmark,
    Sparkpost,
    Mandrill,
    Mailjet,
    Brevo,
}

impl Provider {
    pub const ALL: [Provider; 8] = [
        Self::Ses,
        Self::Sendgrid,
        Self::Mailgun,
        Self::Postmark,
        Self::Sparkpost,
        Self::Mandrill,
        Self::Mailjet,
        Self::Brevo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ses => "ses",
            Self::Sendgrid => "sendgrid",
            Self::Mailgun => "mailgun",
            Self::Postmark => "postmark",
            Self::Sparkpost => "sparkpost",
            Self::Mandrill => "mandrill",
            Self::Mailjet => "mailjet",
            Self::Brevo => "brevo",
        }
    }

    /// The provider's own spelling, for sentences ("suppressed at SendGrid").
    pub fn title(self) -> &'static str {
        match self {
            Self::Ses => "SES",
            Self::Sendgrid => "SendGrid",
            Self::Mailgun => "Mailgun",
            Self::Postmark => "Postmark",
            Self::Sparkpost => "SparkPost",
            Self::Mandrill => "Mandrill",
            Self::Mailjet => "Mailjet",
            Self::Brevo => "Brevo",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The answer to a request that is refused for good (forged, stale, replayed, malformed):
    /// one the provider does not retry where it has one (Mailgun 406), and never Postmark's
    /// 403, which would stop its retries of genuine events too.
    pub fn reject_status(self, r: &Reject) -> Status {
        match (self, r) {
            (_, Reject::Unavailable(_)) => self.retry_status(),
            (Self::Mailgun, _) => Status::DoNotRetry,
            (
                _,
                Reject::Unauthorized(_) | Reject::Forged(_) | Reject::Stale(_) | Reject::Replayed,
            ) => Status::Unauthorized,
            (_, Reject::Malformed(_)) => Status::Malformed,
        }
    }

    /// The answer when a verified delivery could not be stored: one that makes the provider
    /// try again (Brevo retries 429 but not every 5xx).
    pub fn retry_status(self) -> Status {
        match self {
            // SNS retries only answers outside 200–4xx.
            Self::Ses => Status::RetryServerError,
            Self::Brevo => Status::RetryTooMany,
            _ => Status::RetryUnavailable,
        }
    }
}

/// How a provider's webhook is answered, in the provider's terms (each provider retries
/// on its own set of codes); the HTTP listener turns it into its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Refused for good, in the one answer this provider never retries (Mailgun: 406).
    DoNotRetry,
    /// The signature, token or credentials are wrong or stale (401).
    Unauthorized,
    /// The body is not what the provider sends (400).
    Malformed,
    /// Try again: a server error (500; SNS retries nothing else).
    RetryServerError,
    /// Try again: too many requests (429; Brevo retries it, not every 5xx).
    RetryTooMany,
    /// Try again: unavailable (503).
    RetryUnavailable,
}

impl Status {
    /// The HTTP status code.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::DoNotRetry => 406,
            Self::Unauthorized => 401,
            Self::Malformed => 400,
            Self::RetryServerError => 500,
            Self::RetryTooMany => 429,
            Self::RetryUnavailable => 503,
        }
    }
}

/// A provider's settings for one tenant, stored sealed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// Amazon SES through SNS: the topics this app's events may come from.
    Ses { topic_arns: Vec<String> },
    /// SendGrid's signed Event Webhook: the verification key (base64 DER, as SendGrid shows
    /// it) and how old a signed timestamp may be.
    Sendgrid {
        public_key: String,
        max_age_secs: u64,
    },
    /// Mailgun's HTTP webhook signing key (not the API key).
    Mailgun {
        signing_key: String,
        max_age_secs: u64,
    },
    /// Mandrill's webhook key, and the URL exactly as registered with Mandrill (it is part of
    /// what is signed).
    Mandrill { webhook_key: String, url: String },
    /// Basic auth or a bearer token (Postmark, SparkPost, Mailjet, Brevo).
    Http(HttpAuth),
    /// SparkPost's OAuth 2.0 client credentials: optsync issues the tokens ([`oauth`]).
    SparkpostOauth {
        client_id: String,
        client_secret: String,
    },
}

impl ProviderConfig {
    /// Where single-use signature tokens are counted: the signing key itself (as a digest),
    /// so a token spent at one app is spent at every app sharing the key. `None`: the
    /// scheme has no such tokens.
    pub fn token_scope(&self) -> Option<String> {
        use sha2::{Digest, Sha256};
        match self {
            Self::Mailgun { signing_key, .. } => Some(hex::encode(Sha256::digest(
                format!("mailgun\n{signing_key}").as_bytes(),
            ))),
            _ => None,
        }
    }
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ses { .. } => "Ses(…)",
            Self::Sendgrid { .. } => "Sendgrid(…)",
            Self::Mailgun { .. } => "Mailgun(…)",
            Self::Mandrill { .. } => "Mandrill(…)",
            Self::Http(_) => "Http(…)",
            Self::SparkpostOauth { .. } => "SparkpostOauth(…)",
        })
    }
}

/// SendGrid retries for up to 24 hours and does not say whether retries are re-signed: a
/// tighter window could refuse a genuine late unsubscribe.
pub const SENDGRID_MAX_AGE_SECS: u64 = 86_400 + 600;
/// The longest freshness window a provider may be given: signature tokens are remembered
/// this long, so a window beyond it would let old tokens be replayed.
pub const MAX_SIGNED_AGE_SECS: u64 = 7 * 86_400;
/// Mailgun retries for 8 hours (5 min, 10 min, 15 min, 1 h, 2 h, 4 h), and its signature
/// covers only the timestamp and token, not the event: a captured delivery's signature would
/// vouch for any event within the window, so the window is no longer than the retries need
/// (8 hours and 10 minutes of clock skew); its tokens are remembered for as long.
pub const MAILGUN_MAX_AGE_SECS: u64 = 8 * 3600 + 600;

/// What a provider's event means for optsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The recipient unsubscribed: a stop source.
    Unsubscribe,
    /// The recipient reported the mail as spam: a stop source.
    Complaint,
    /// The address does not exist: that address alone is opted out.
    HardBounce,
    /// An echo of the provider's own suppression list (it refused to send because the address
    /// is on it, or the sender's staff put it there): the same for every provider — that
    /// address alone is opted out, like a hard bounce, and it is never a stop source for the
    /// contact's other addresses, because it is not a new request from the person (their
    /// unsubscribe or complaint, if that is what put the address there, came as its own event).
    Suppressed,
    /// Recorded only.
    SoftBounce,
    /// Recorded only: optsync never opts anyone back in.
    Resubscribe,
}

impl Kind {
    /// Whether the event needs work in Keap (a job), or is only recorded. The store's
    /// `EventKind::acts` answers the same (a test in the provider hooks checks it); providers
    /// do not import the store.
    pub fn acts(self) -> bool {
        matches!(
            self,
            Self::Unsubscribe | Self::Complaint | Self::HardBounce | Self::Suppressed
        )
    }
}

/// One normalised event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub kind: Kind,
    pub email: EmailAddress,
    /// The provider's id for the event, for de-duplication.
    pub id: Option<String>,
}

/// A verified delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    pub events: Vec<Normalized>,
    /// Events of types optsync does not act on (opens, deliveries, …) or without a usable
    /// recipient.
    pub ignored: usize,
    /// A single-use signature token to remember (Mailgun).
    pub token: Option<String>,
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    Unauthorized(String),
    Forged(String),
    Stale(String),
    Replayed,
    Malformed(String),
    /// Not the sender's fault, and perhaps passing (the SNS signing certificate could not be
    /// fetched): answered with the status that makes the provider try again.
    Unavailable(String),
}

impl Reject {
    /// The reason's name in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forged(_) => "forged",
            Self::Stale(_) => "stale",
            Self::Replayed => "replayed",
            Self::Malformed(_) => "malformed",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthorized(m) => write!(f, "unauthorized: {m}"),
            Self::Forged(m) => write!(f, "signature does not verify: {m}"),
            Self::Stale(m) => write!(f, "too old: {m}"),
            Self::Replayed => f.write_str("replayed signature token"),
            Self::Malformed(m) => write!(f, "malformed: {m}"),
            Self::Unavailable(m) => write!(f, "temporarily unavailable: {m}"),
        }
    }
}

/// What a verifier is given.
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Epoch seconds now.
    pub now: i64,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }
}

/// Checks a delivery with the tenant's settings for the provider and normalises its events
/// (SES needs the network for its certificate: see [`verify_async`]).
pub fn verify(
    provider: Provider,
    config: &ProviderConfig,
    req: &Request<'_>,
) -> Result<Verified, Reject> {
    match (provider, config) {
        (
            Provider::Sendgrid,
            ProviderConfig::Sendgrid {
                public_key,
                max_age_secs,
            },
        ) => sendgrid::verify(public_key, *max_age_secs, req),
        (
            Provider::Mailgun,
            ProviderConfig::Mailgun {
                signing_key,
                max_age_secs,
            },
        ) => mailgun::verify(signing_key, *max_age_secs, req),
        (Provider::Mandrill, ProviderConfig::Mandrill { webhook_key, url }) => {
            mandrill::verify(webhook_key, url, req)
        }
        (Provider::Postmark, ProviderConfig::Http(a)) => {
            a.check(req)?;
            postmark::parse(req.body)
        }
        (Provider::Sparkpost, ProviderConfig::Http(a)) => {
            a.check(req)?;
            sparkpost::parse(req.body)
        }
        (
            Provider::Sparkpost,
            ProviderConfig::SparkpostOauth {
                client_id,
                client_secret,
            },
        ) => {
            oauth::check_bearer(client_secret, client_id, req)?;
            sparkpost::parse(req.body)
        }
        (Provider::Mailjet, ProviderConfig::Http(a)) => {
            a.check(req)?;
            mailjet::parse(req.body)
        }
        (Provider::Brevo, ProviderConfig::Http(a)) => {
            a.check(req)?;
            brevo::parse(req.body)
        }
        _ => Err(Reject::Unauthorized(
            "the provider is configured with another scheme".into(),
        )),
    }
}

/// The parse step alone, as it runs on a body that passed verification: what the fuzzers
/// drive (an attacker with a provider's credentials reaches exactly this). SES: the SNS
/// envelope's string to sign and the SES message inside it.
pub fn parse_verified(provider: Provider, body: &[u8]) -> Result<Verified, Reject> {
    match provider {
        Provider::Sendgrid => sendgrid::parse(body),
        Provider::Mailgun => {
            let v = json(body)?;
            let token = v
                .pointer("/signature/token")
                .and_then(|t| t.as_str())
                .unwrap_or("token");
            mailgun::parse(&v, token)
        }
        Provider::Mandrill => {
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|_| Reject::Malformed("not a form".into()))?;
            mandrill::parse(&fields)
        }
        Provider::Postmark => postmark::parse(body),
        Provider::Sparkpost => sparkpost::parse(body),
        Provider::Mailjet => mailjet::parse(body),
        Provider::Brevo => brevo::parse(body),
        Provider::Ses => {
            let v = json(body)?;
            let m = v
                .as_object()
                .ok_or_else(|| Reject::Malformed("not an SNS message".into()))?;
            ses::string_to_sign(m)?;
            let message = m
                .get("Message")
                .and_then(|x| x.as_str())
                .unwrap_or_default();
            Ok(ses::normalise("fuzz", message))
        }
    }
}

/// [`verify`] for every provider, SES included.
pub async fn verify_async(
    provider: Provider,
    config: &ProviderConfig,
    req: &Request<'_>,
    sns: &dyn ses::SnsFetcher,
) -> Result<Verified, Reject> {
    match (provider, config) {
        (Provider::Ses, ProviderConfig::Ses { topic_arns }) => {
            ses::verify(topic_arns, req, sns).await
        }
        _ => verify(provider, config, req),
    }
}

/// A JSON body, refused unless it is JSON.
pub(crate) fn json(body: &[u8]) -> Result<serde_json::Value, Reject> {
    if body.is_empty() {
        return Err(Reject::Malformed("empty body".into()));
    }
    serde_json::from_slice(body).map_err(|e| Reject::Malformed(format!("not JSON: {e}")))
}

/// One event object or an array of them (providers batch, or not, as configured).
pub(crate) fn objects(v: &serde_json::Value) -> Result<Vec<&serde_json::Value>, Reject> {
    match v {
        serde_json::Value::Array(a) => Ok(a.iter().collect()),
        serde_json::Value::Object(_) => Ok(vec![v]),
        _ => Err(Reject::Malformed("expected a JSON object or array".into())),
    }
}

/// A recipient address, if the field holds one.
pub(crate) fn recipient(v: Option<&serde_json::Value>) -> Option<EmailAddress> {
    v.and_then(serde_json::Value::as_str)
        .and_then(|s| EmailAddress::parse(s).ok())
}

/// A JSON value as an id fragment, exact for big integers (Mailjet's MessageID exceeds 2^53).
pub(crate) fn id_part(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Adds an event to a delivery, or counts it as ignored when it has no usable recipient.
pub(crate) fn push(
    out: &mut Verified,
    kind: Option<Kind>,
    email: Option<EmailAddress>,
    id: Option<String>,
) {
    match (kind, email) {
        (Some(kind), Some(email)) => out.events.push(Normalized { kind, email, id }),
        _ => out.ignored += 1,
    }
}
