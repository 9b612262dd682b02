//! The queue's vocabulary, typed: what a job is about, where an event came from and what it
//! says, the states of jobs and sweeps, and what the worker did to each address.
//!
//! Each is stored as TEXT and parsed when a row is read; a value the code does not know is an
//! error there (a corrupt row, or a database written by a newer version), never a silent
//! mismatch further on. Intake, provider hooks and reconciliation produce these; the worker
//! consumes them.

use crate::clock::Millis;
use std::fmt;
use std::str::FromStr;

use keap::{ContactId, EmailAddress, OptOutPath};
use sqlx::any::{Any, AnyTypeInfo};
use sqlx::decode::Decode;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::types::Type;

use crate::providers::Provider;

/// A stored value this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} in the database")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl UnknownValue {
    pub(crate) fn new(what: &'static str, value: &str) -> Self {
        Self {
            what,
            value: value.chars().take(80).collect(),
        }
    }
}

/// Stores a type as TEXT through its `Display` and reads it back through its `FromStr`.
macro_rules! stored_as_text {
    ($t:ty) => {
        impl Type<Any> for $t {
            fn type_info() -> AnyTypeInfo {
                <str as Type<Any>>::type_info()
            }
        }

        impl Encode<'_, Any> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <Any as sqlx::Database>::ArgumentBuffer,
            ) -> Result<IsNull, BoxDynError> {
                <String as Encode<'_, Any>>::encode(self.to_string(), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: <Any as sqlx::Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Any>>::decode(value)?;
                Ok(text.parse::<$t>()?)
            }
        }
    };
}

/// A closed set of words stored as TEXT.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$var),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$var => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok(Self::$var),)+
                    _ => Err(UnknownValue::new($what, s)),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        stored_as_text!($name);
    };
}

text_enum! {
    /// Where a job stands.
    JobState, "job state" {
        Pending = "pending",
        Running = "running",
        Done = "done",
        /// Done, but Keap has no such contact (or no contact holds the address): nothing to
        /// honour.
        NotFound = "not_found",
        Dead = "dead",
        /// No opt-out path works for the app just now (REST ignored or refused, XML-RPC
        /// unavailable): retried on a schedule, never counted towards dead.
        Blocked = "blocked",
        /// Folded into another pending job for the same subject.
        Merged = "merged",
        /// Keap's post named a contact that Keap showed with no stop status, read again for
        /// a few minutes: not honoured.
        NoOptOut = "no_opt_out",
    }
}

/// The states an operator may re-drive a job from (`optsync retry`, the console): one that
/// failed for good, one no opt-out path could do, or one waiting for its next try.
pub const RETRYABLE: [JobState; 3] = [JobState::Dead, JobState::Blocked, JobState::Pending];

/// [`RETRYABLE`] in words, for messages and `--help`.
pub const RETRYABLE_WORDS: &str = "dead, blocked or pending";

/// How a job that ran ends: the terminal outcomes, the only ones a job completes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its events are honoured.
    Done,
    /// Keap has no such contact (or no contact holds the address): nothing to honour.
    NotFound,
    /// Keap showed no opt-out for the contact its post named: not honoured.
    NoOptOut,
}

impl Outcome {
    pub fn state(self) -> JobState {
        match self {
            Self::Done => JobState::Done,
            Self::NotFound => JobState::NotFound,
            Self::NoOptOut => JobState::NoOptOut,
        }
    }

    /// Why the events stay unhonoured, as the report says it.
    pub fn note(self) -> Option<&'static str> {
        match self {
            Self::NoOptOut => Some("Keap showed no opt-out"),
            Self::Done | Self::NotFound => None,
        }
    }
}

text_enum! {
    /// What an event says.
    EventKind, "event kind" {
        /// Keap's "opted out of all email marketing" post.
        OptOut = "opt_out",
        /// Another contact holds a stop source this contact holds too.
        SharedAddress = "shared_address",
        /// A reconcile sweep found the contact out of line with the rules.
        Discrepancy = "discrepancy",
        Unsubscribe = "unsubscribe",
        Complaint = "complaint",
        HardBounce = "hard_bounce",
        /// The provider refused to send because the address is on its own suppression list:
        /// that address alone is opted out, never a stop source.
        Suppressed = "suppressed",
        SoftBounce = "soft_bounce",
        Resubscribe = "resubscribe",
    }
}

impl EventKind {
    /// A provider's event of this kind asks for a write (the others are recorded only).
    pub fn acts(self) -> bool {
        matches!(
            self,
            Self::Unsubscribe | Self::Complaint | Self::HardBounce | Self::Suppressed
        )
    }
}

text_enum! {
    /// What the worker did (or found) about one address.
    AuditAction, "audit action" {
        OptedOut = "opted_out",
        AlreadyStopped = "already_stopped",
        Terminal = "terminal",
        NotTargeted = "not_targeted",
        Unverified = "unverified",
        ContactNotFound = "contact_not_found",
        NoHolder = "no_holder",
    }
}

text_enum! {
    /// Which write left an address opted out.
    WritePath, "write path" {
        Rest = "rest",
        XmlRpc = "xmlrpc",
        XmlRpcFallback = "xmlrpc_fallback",
    }
}

impl From<OptOutPath> for WritePath {
    fn from(p: OptOutPath) -> Self {
        match p {
            OptOutPath::Rest => Self::Rest,
            OptOutPath::XmlRpc => Self::XmlRpc,
            OptOutPath::XmlRpcFallback => Self::XmlRpcFallback,
        }
    }
}

text_enum! {
    /// What proved a write: a read-back showing the stop, or (for an app whose REST path has
    /// proven itself) the write's own answer, trusted.
    Proof, "write proof" {
        ReadBack = "read_back",
        Trusted = "trusted",
    }
}

/// Why an address was written (stored as `propagation:SOURCE` or `bounce`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Another address of the contact, `source`, is a stop source.
    Propagation { source: EmailAddress },
    /// A provider reported a hard bounce (or suppression) for this address alone.
    Bounce,
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

stored_as_text!(Rule);

text_enum! {
    /// An API that can opt an address out, as learned per app.
    OptOutApi, "opt-out path" {
        Rest = "rest",
        XmlRpc = "xmlrpc",
    }
}

impl From<keap::Api> for OptOutApi {
    fn from(a: keap::Api) -> Self {
        match a {
            keap::Api::Rest => Self::Rest,
            keap::Api::XmlRpc => Self::XmlRpc,
        }
    }
}

impl From<OptOutApi> for keap::Api {
    fn from(a: OptOutApi) -> Self {
        match a {
            OptOutApi::Rest => Self::Rest,
            OptOutApi::XmlRpc => Self::XmlRpc,
        }
    }
}

text_enum! {
    /// Why optsync wrote an address.
    LedgerOrigin, "ledger origin" {
        /// Another address of the contact is a stop source.
        Propagation = "propagation",
        /// A provider reported a hard bounce for this address.
        Bounce = "bounce",
    }
}

text_enum! {
    /// A full sweep pages every contact; an incremental one diffs the opted-out list.
    SweepKind, "sweep kind" {
        Full = "full",
        Incremental = "incremental",
    }
}

text_enum! {
    SweepState, "sweep state" {
        Running = "running",
        Paused = "paused",
        Finished = "finished",
    }
}

text_enum! {
    /// How a tenant authenticates to Keap.
    CredentialKind, "credential kind" {
        ApiKey = "api_key",
        OAuth = "oauth",
    }
}

text_enum! {
    /// What a console account may see: an operator everything, a customer only the apps
    /// granted to it.
    Role, "account role" {
        Operator = "operator",
        Customer = "customer",
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventSource {
    /// Keap's action-set post.
    KeapPost,
    /// A stop source found on another contact that holds the same address.
    Fanout,
    /// A reconcile sweep.
    Reconcile,
    /// A sending provider's webhook.
    Provider(Provider),
}

/// As its stored name (`keap_post`, `esp:sendgrid`, …).
impl serde::Serialize for EventSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeapPost => f.write_str("keap_post"),
            Self::Fanout => f.write_str("fanout"),
            Self::Reconcile => f.write_str("reconcile"),
            Self::Provider(p) => write!(f, "esp:{}", p.name()),
        }
    }
}

impl FromStr for EventSource {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "keap_post" => Ok(Self::KeapPost),
            "fanout" => Ok(Self::Fanout),
            "reconcile" => Ok(Self::Reconcile),
            _ => s
                .strip_prefix("esp:")
                .and_then(Provider::from_name)
                .map(Self::Provider)
                .ok_or_else(|| UnknownValue::new("event source", s)),
        }
    }
}

stored_as_text!(EventSource);

text_enum! {
    /// What a job does: an opt-out in Keap, or a push of one address to one sending
    /// provider's own do-not-send list.
    JobKind, "job kind" {
        OptOut = "opt_out",
        Push = "push",
    }
}

/// What a job is about: one contact, or every contact holding an address (opt-outs in
/// Keap); or one address for one provider's lists (a push).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Contact(ContactId),
    Address(EmailAddress),
    Push {
        provider: Provider,
        address: EmailAddress,
    },
}

impl Subject {
    /// The kind of job that works on this subject.
    pub fn kind(&self) -> JobKind {
        match self {
            Self::Contact(_) | Self::Address(_) => JobKind::OptOut,
            Self::Push { .. } => JobKind::Push,
        }
    }

    /// The job already covers every holder of this address.
    pub fn covers_address(&self, email: &EmailAddress) -> bool {
        matches!(self, Self::Address(a) if a.key() == email.key())
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Contact(id) => write!(f, "contact:{id}"),
            // The key: one pending job per address, however it was spelled.
            Self::Address(e) => write!(f, "email:{}", e.key()),
            Self::Push { provider, address } => {
                write!(f, "push:{}:{}", provider.name(), address.key())
            }
        }
    }
}

impl FromStr for Subject {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        let bad = || UnknownValue::new("job subject", s);
        match s.split_once(':').ok_or_else(bad)? {
            ("contact", id) => id.parse().map(Self::Contact).map_err(|_| bad()),
            ("email", e) => EmailAddress::parse(e).map(Self::Address).map_err(|_| bad()),
            ("push", rest) => {
                let (p, e) = rest.split_once(':').ok_or_else(bad)?;
                Ok(Self::Push {
                    provider: Provider::from_name(p).ok_or_else(bad)?,
                    address: EmailAddress::parse(e).map_err(|_| bad())?,
                })
            }
            _ => Err(bad()),
        }
    }
}

stored_as_text!(Subject);

/// What becomes of a job that did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Not tried for want of room in Keap's limits: run again at this time (epoch ms), the
    /// attempt the claim took given back.
    Defer(Millis),
    /// Failed: run again at this time (epoch ms); the attempt counts.
    Retry(Millis),
    /// No opt-out path works: blocked until this time (epoch ms), the attempt given back.
    Block(Millis),
    /// Failed too often: dead until an operator re-drives it.
    Bury,
    /// Keap showed no stop for the contact its post named: read it again at this time (epoch
    /// ms), the attempt given back.
    Recheck(Millis),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_are_errors() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(*s));
        }
        for k in EventKind::ALL {
            assert_eq!(k.to_string().parse::<EventKind>(), Ok(*k));
        }
        assert!("Pending".parse::<JobState>().is_err());
        assert!("esp:nope".parse::<EventSource>().is_err());
        for src in [
            EventSource::KeapPost,
            EventSource::Fanout,
            EventSource::Reconcile,
        ]
        .into_iter()
        .chain(Provider::ALL.into_iter().map(EventSource::Provider))
        {
            assert_eq!(src.to_string().parse::<EventSource>(), Ok(src));
        }
    }

    #[test]
    fn subjects_round_trip_by_key() {
        let c = Subject::Contact(ContactId::new(42).unwrap());
        assert_eq!(c.to_string(), "contact:42");
        assert_eq!("contact:42".parse::<Subject>(), Ok(c));
        let a: Subject = "email:Ann@Example.COM".parse().unwrap();
        assert_eq!(a.to_string(), "email:ann@example.com");
        assert!(a.covers_address(&EmailAddress::parse("Ann@example.com").unwrap()));
        let p: Subject = "push:sendgrid:Ann@Example.com".parse().unwrap();
        assert_eq!(p.to_string(), "push:sendgrid:ann@example.com");
        assert_eq!(p.kind(), JobKind::Push);
        assert_eq!(a.kind(), JobKind::OptOut);
        assert!(!p.covers_address(&EmailAddress::parse("ann@example.com").unwrap()));
        for bad in [
            "contact:x",
            "contact:-1",
            "email:nope",
            "person:1",
            "push:nope:a@example.com",
            "push:sendgrid",
            "contact",
        ] {
            assert!(bad.parse::<Subject>().is_err(), "{bad}");
        }
    }
}
