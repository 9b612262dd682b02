//! The one error type of the Keap client: what happened, and whether trying again can help.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Keap's limits refused the call (429, or the daily quota is spent). Retry after
    /// `retry_after`; this is not a failure of the work itself.
    #[error("throttled by Keap; retry in {retry_after:?} ({detail})")]
    Throttled {
        retry_after: Duration,
        detail: String,
    },
    /// The credential was refused (401/403), or an OAuth refresh failed for good.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Keap said the request itself is wrong (400, 409, 422): retrying the same call won't help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Network trouble, a timeout, a dropped connection or a 5xx: worth retrying.
    #[error("transient failure: {0}")]
    Transient(String),
    /// XML-RPC is not there: an HTTP error or a page that is not XML-RPC where an answer was
    /// expected (switched off, or browned out before Keap's sunset of 2026-12-31).
    #[error("XML-RPC is unavailable: {0}")]
    XmlRpcUnavailable(String),
    /// An XML-RPC fault (`faultCode`, `[Category]message`).
    #[error("XML-RPC fault {code} [{category}] {message}")]
    Fault {
        code: i32,
        category: String,
        message: String,
    },
    /// The answer could not be understood (malformed JSON or XML, unexpected shape).
    #[error("unexpected answer from Keap: {0}")]
    Protocol(String),
    /// The OAuth token store failed: a rotated pair could not be stored (the client keeps it
    /// in memory and will not use the new access token until it is stored), or the stored
    /// pair could not be read or leased.
    #[error("OAuth token store: {0}")]
    TokenPersist(String),
    /// Keap refused the app's OAuth grant for good (`invalid_grant`: revoked, expired or
    /// spent): no retry helps until a person authorises the app again.
    #[error("Keap app must be connected again: {0}")]
    ReconnectNeeded(String),
    /// The client was configured wrongly (bad base URL, bad argument).
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. }
            | Self::Transient(_)
            | Self::TokenPersist(_)
            | Self::XmlRpcUnavailable(_) => true,
            // Keap's Database (4) and Loading (6) faults and the legacy throttle (500) are
            // server-side trouble; the others describe the request.
            Self::Fault { code, .. } => matches!(code, 3 | 4 | 6 | 500),
            Self::Unauthorized(_)
            | Self::NotFound(_)
            | Self::InvalidRequest(_)
            | Self::Protocol(_)
            | Self::ReconnectNeeded(_)
            | Self::Config(_) => false,
        }
    }

    /// For a throttle, how long to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
