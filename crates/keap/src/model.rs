//! What the client's operations return.

use crate::ids::{ContactId, EmailAddress, EmailField};
use crate::status::EmailStatus;

/// One of a contact's addresses with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub field: EmailField,
    pub email: EmailAddress,
    pub status: EmailStatus,
}

/// A contact with its addresses (EMAIL1 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub addresses: Vec<Address>,
}

/// One page of contacts and the cursor for the next (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactsPage {
    pub contacts: Vec<Contact>,
    pub next: Option<String>,
}

/// An address and its status, without the contacts holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressStatus {
    pub email: EmailAddress,
    pub status: EmailStatus,
}

/// One page of opted-out (not marketable) addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptedOutPage {
    pub addresses: Vec<AddressStatus>,
    pub next: Option<String>,
}

/// Which API a read or write goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Rest,
    XmlRpc,
}

/// How addresses are opted out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptOutMethod {
    /// REST v2 only; reads over REST.
    Rest,
    /// XML-RPC only (`APIEmailService.optOut`); reads over XML-RPC.
    XmlRpc,
    /// REST v2, falling back to XML-RPC when the address is not opted out afterwards; reads
    /// over REST.
    #[default]
    Auto,
}

impl OptOutMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::XmlRpc => "xmlrpc",
            Self::Auto => "auto",
        }
    }
}

impl std::fmt::Display for OptOutMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OptOutMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rest" => Ok(Self::Rest),
            "xmlrpc" => Ok(Self::XmlRpc),
            "auto" => Ok(Self::Auto),
            _ => Err(format!(
                "unknown opt-out method {s:?} (expected rest, xmlrpc or auto)"
            )),
        }
    }
}

/// Which write left the address opted out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutPath {
    /// REST v2 `PATCH …/status` did it.
    Rest,
    /// REST v2 left the address marketable; XML-RPC `APIEmailService.optOut` did it.
    XmlRpcFallback,
    /// XML-RPC was the configured method.
    XmlRpc,
}

/// What one write path did to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Read back in a stop or terminal status.
    Took(Option<EmailStatus>),
    /// Accepted, but the address read back outside a stop or terminal status.
    Ignored(Option<EmailStatus>),
    /// Refused (a 4xx, or an XML-RPC fault).
    Refused(String),
    /// The path is not there (XML-RPC switched off or browned out).
    Unavailable(String),
}

/// One write path tried on an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAttempt {
    pub api: Api,
    pub outcome: AttemptOutcome,
}

impl std::fmt::Display for PathAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api = match self.api {
            Api::Rest => "REST PATCH",
            Api::XmlRpc => "XML-RPC APIEmailService.optOut",
        };
        let status = |s: &Option<EmailStatus>| {
            s.map_or("unknown to Keap".to_string(), |s| s.type_name().to_string())
        };
        match &self.outcome {
            AttemptOutcome::Took(s) => write!(f, "{api} took ({})", status(s)),
            AttemptOutcome::Ignored(s) => write!(f, "{api} was ignored (still {})", status(s)),
            AttemptOutcome::Refused(why) => write!(f, "{api} was refused ({why})"),
            AttemptOutcome::Unavailable(why) => write!(f, "{api} is unavailable ({why})"),
        }
    }
}

/// What an opt-out did, verified by reading the status back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutReport {
    pub email: EmailAddress,
    /// The status read back after the last write (`None`: Keap has no record of it).
    pub status_after: Option<EmailStatus>,
    /// The address ended in a stop or terminal status.
    pub verified: bool,
    /// The write that was last tried.
    pub path: OptOutPath,
    /// Keap calls this opt-out made.
    pub calls: u32,
    /// Each path tried, in order.
    pub attempts: Vec<PathAttempt>,
}
