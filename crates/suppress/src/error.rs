//! The one error type: what a caller needs to decide between "wait and try again", "try again
//! later" and "stop and tell someone".

use std::time::Duration;

use crate::Provider;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The settings cannot work (a plain-http URL off loopback, an empty scope, …).
    #[error("invalid settings: {0}")]
    Config(String),
    /// The provider answered 429; `retry_after` when it said how long to wait.
    #[error("{provider}: rate limited (retry after {retry_after:?})")]
    RateLimited {
        provider: Provider,
        retry_after: Option<Duration>,
    },
    /// A 5xx, a timeout or a broken connection: the write may or may not have happened, and
    /// every write here is idempotent, so send it again.
    #[error("{provider}: temporary failure: {detail}")]
    Transient { provider: Provider, detail: String },
    /// The credential was refused (401/403, Mandrill's `Invalid_Key`).
    #[error("{provider}: credential refused: {detail}")]
    Auth { provider: Provider, detail: String },
    /// Any other refusal: sending it again will not help.
    #[error("{provider}: refused: {detail}")]
    Permanent { provider: Provider, detail: String },
    /// Written, but the provider's read does not show it yet (Postmark processes suppressions
    /// asynchronously, "can take a minute"): verify again after `retry_after`.
    #[error("{provider}: written, not confirmed yet")]
    NotConfirmedYet {
        provider: Provider,
        retry_after: Duration,
    },
    /// The call succeeded but changed nothing that blocks mail (Mandrill: the address is on
    /// the allowlist).
    #[error("{provider}: the write had no effect: {detail}")]
    NoEffect { provider: Provider, detail: String },
    /// An SES entry with this reason would not block: the account enforces other reasons.
    #[error(
        "SES in {region} enforces {enforced:?}, not {reason}: an entry with that reason would not stop mail"
    )]
    ReasonNotEnforced {
        region: String,
        reason: &'static str,
        enforced: Vec<String>,
    },
}

impl Error {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Transient { .. } | Self::NotConfirmedYet { .. }
        )
    }
}
