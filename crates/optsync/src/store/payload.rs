//! What an event is, typed, and the one codec that stores it.
//!
//! An event is a Keap post about its subject, a provider's event about an address, a fan-out
//! from a job, or a discrepancy a sweep found (with what it saw of the contact). The payload
//! is stored as JSON in `events.payload` through [`encode`] and read back through [`decode`];
//! the columns listings filter on (`source`, `kind`, `contact_id`, `email`,
//! `provider_event_id`) are derived from it in [`Columns`], never written by hand.

use crate::clock::Millis;
use keap::{Address, Contact, ContactId, EmailAddress, EmailField, EmailStatus};
use serde::{Deserialize, Serialize};

use super::ids::JobId;
use super::model::{EventKind, EventSource, Subject, UnknownValue};
use crate::providers::Provider;

/// What an event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPayload {
    /// Keap's "opted out of all email marketing" post, about a contact or an address.
    KeapPost { subject: Subject },
    /// A sending provider's event about one address.
    Provider(ProviderEvent),
    /// A stop source found on another contact that holds the same address.
    Fanout {
        /// The job that found it.
        from_job: JobId,
        contact: ContactId,
        source: EmailAddress,
    },
    /// A sweep found the contact out of line with the rules.
    Discrepancy {
        contact: ContactId,
        /// What the sweep saw; none when it only knew the contact holds a fresh stop.
        snapshot: Option<ContactSnapshot>,
    },
}

/// A provider's event, as its webhook reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    pub provider: Provider,
    pub kind: EventKind,
    pub address: EmailAddress,
    /// The provider's id for the event, for de-duplication.
    pub id: Option<String>,
}

/// A contact as a sweep saw it, so the worker need not read it again while it is fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSnapshot {
    /// When the sweep read it (epoch ms).
    pub taken_at: Millis,
    pub addresses: Vec<Address>,
}

impl ContactSnapshot {
    pub fn of(c: &Contact, taken_at: Millis) -> Self {
        Self {
            taken_at,
            addresses: c.addresses.clone(),
        }
    }

    pub fn contact(&self, id: ContactId) -> Contact {
        Contact {
            id,
            addresses: self.addresses.clone(),
        }
    }
}

impl EventPayload {
    pub fn source(&self) -> EventSource {
        match self {
            Self::KeapPost { .. } => EventSource::KeapPost,
            Self::Provider(p) => EventSource::Provider(p.provider),
            Self::Fanout { .. } => EventSource::Fanout,
            Self::Discrepancy { .. } => EventSource::Reconcile,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Self::KeapPost { .. } => EventKind::OptOut,
            Self::Provider(p) => p.kind,
            Self::Fanout { .. } => EventKind::SharedAddress,
            Self::Discrepancy { .. } => EventKind::Discrepancy,
        }
    }

    /// The job that honours it; `None`: recorded only (soft bounces, resubscribes), honoured
    /// on arrival since there is nothing to do.
    pub fn subject(&self) -> Option<Subject> {
        match self {
            Self::KeapPost { subject } => Some(subject.clone()),
            Self::Provider(p) => p.kind.acts().then(|| Subject::Address(p.address.clone())),
            Self::Fanout { contact, .. } | Self::Discrepancy { contact, .. } => {
                Some(Subject::Contact(*contact))
            }
        }
    }

    /// The contact the event names, if it names one.
    pub fn contact(&self) -> Option<ContactId> {
        match self {
            Self::KeapPost {
                subject: Subject::Contact(c),
            }
            | Self::Fanout { contact: c, .. }
            | Self::Discrepancy { contact: c, .. } => Some(*c),
            _ => None,
        }
    }

    /// The address the event names, if it names one.
    pub fn address(&self) -> Option<&EmailAddress> {
        match self {
            Self::KeapPost {
                subject: Subject::Address(e),
            } => Some(e),
            Self::Provider(p) => Some(&p.address),
            Self::Fanout { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The columns derived from a payload, for listings and de-duplication.
pub(super) struct Columns<'a> {
    pub source: EventSource,
    pub kind: EventKind,
    pub contact_id: Option<i64>,
    pub email: Option<&'a str>,
    pub provider_event_id: Option<&'a str>,
}

impl<'a> Columns<'a> {
    pub fn of(p: &'a EventPayload) -> Self {
        Self {
            source: p.source(),
            kind: p.kind(),
            contact_id: p.contact().map(ContactId::get),
            email: p.address().map(EmailAddress::as_str),
            provider_event_id: match p {
                EventPayload::Provider(e) => e.id.as_deref(),
                _ => None,
            },
        }
    }
}

// ---------------------------------------------------------------- the stored form

/// The payload as stored: plain words and numbers, tagged by `type`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Stored {
    KeapPost {
        subject: String,
    },
    Provider {
        provider: String,
        kind: String,
        address: String,
        id: Option<String>,
    },
    Fanout {
        from_job: i64,
        contact: i64,
        source: String,
    },
    Discrepancy {
        contact: i64,
        snapshot: Option<StoredSnapshot>,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    taken_at: Millis,
    addresses: Vec<StoredAddress>,
}

#[derive(Serialize, Deserialize)]
struct StoredAddress {
    field: String,
    email: String,
    status: String,
}

/// The payload as its stored JSON.
pub fn encode(p: &EventPayload) -> String {
    let stored = match p {
        EventPayload::KeapPost { subject } => Stored::KeapPost {
            subject: subject.to_string(),
        },
        EventPayload::Provider(e) => Stored::Provider {
            provider: e.provider.name().into(),
            kind: e.kind.as_str().into(),
            address: e.address.as_str().into(),
            id: e.id.clone(),
        },
        EventPayload::Fanout {
            from_job,
            contact,
            source,
        } => Stored::Fanout {
            from_job: from_job.get(),
            contact: contact.get(),
            source: source.as_str().into(),
        },
        EventPayload::Discrepancy { contact, snapshot } => Stored::Discrepancy {
            contact: contact.get(),
            snapshot: snapshot.as_ref().map(|s| StoredSnapshot {
                taken_at: s.taken_at,
                addresses: s
                    .addresses
                    .iter()
                    .map(|a| StoredAddress {
                        field: a.field.rest_name().into(),
                        email: a.email.as_str().into(),
                        status: a.status.type_name().into(),
                    })
                    .collect(),
            }),
        },
    };
    // Strings and numbers only: serialising cannot fail.
    serde_json::to_string(&stored).unwrap_or_default()
}

/// The payload from its stored JSON; anything this version cannot read is an error.
pub fn decode(json: &str) -> Result<EventPayload, UnknownValue> {
    let bad = || UnknownValue::new("event payload", json);
    let stored: Stored = serde_json::from_str(json).map_err(|_| bad())?;
    let contact = |id: i64| ContactId::new(id).ok_or_else(bad);
    Ok(match stored {
        Stored::KeapPost { subject } => EventPayload::KeapPost {
            subject: subject.parse()?,
        },
        Stored::Provider {
            provider,
            kind,
            address,
            id,
        } => EventPayload::Provider(ProviderEvent {
            provider: Provider::from_name(&provider).ok_or_else(bad)?,
            kind: kind.parse()?,
            address: EmailAddress::from_stored(&address),
            id,
        }),
        Stored::Fanout {
            from_job,
            contact: c,
            source,
        } => EventPayload::Fanout {
            from_job: JobId(from_job),
            contact: contact(c)?,
            source: EmailAddress::from_stored(&source),
        },
        Stored::Discrepancy {
            contact: c,
            snapshot,
        } => EventPayload::Discrepancy {
            contact: contact(c)?,
            snapshot: snapshot
                .map(|s| decode_snapshot(s).ok_or_else(bad))
                .transpose()?,
        },
    })
}

fn decode_snapshot(s: StoredSnapshot) -> Option<ContactSnapshot> {
    let addresses = s
        .addresses
        .into_iter()
        .map(|a| {
            Some(Address {
                field: a.field.parse::<EmailField>().ok()?,
                email: EmailAddress::from_stored(&a.email),
                status: a.status.parse::<EmailStatus>().ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ContactSnapshot {
        taken_at: s.taken_at,
        addresses,
    })
}

impl sqlx::Type<sqlx::Any> for EventPayload {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <str as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for EventPayload {
    fn decode(
        value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
        Ok(decode(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn every_payload_round_trips() {
        let id = ContactId::new(5).unwrap();
        let snapshot = ContactSnapshot {
            taken_at: Millis(7),
            addresses: vec![Address {
                field: EmailField::Email2,
                email: email("a@x.example"),
                status: EmailStatus::Admin,
            }],
        };
        for p in [
            EventPayload::KeapPost {
                subject: Subject::Contact(id),
            },
            EventPayload::KeapPost {
                subject: Subject::Address(email("b@x.example")),
            },
            EventPayload::Provider(ProviderEvent {
                provider: Provider::Mailgun,
                kind: EventKind::HardBounce,
                address: email("c@x.example"),
                id: Some("m-1".into()),
            }),
            EventPayload::Fanout {
                from_job: JobId(3),
                contact: id,
                source: email("d@x.example"),
            },
            EventPayload::Discrepancy {
                contact: id,
                snapshot: Some(snapshot),
            },
            EventPayload::Discrepancy {
                contact: id,
                snapshot: None,
            },
        ] {
            assert_eq!(decode(&encode(&p)), Ok(p));
        }
    }

    #[test]
    fn unreadable_payloads_are_errors() {
        for bad in [
            "{",
            r#"{"type":"nope"}"#,
            r#"{"type":"keap_post","subject":"person:1"}"#,
            r#"{"type":"provider","provider":"nope","kind":"unsubscribe","address":"a@x.example","id":null}"#,
            r#"{"type":"discrepancy","contact":0,"snapshot":null}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn columns_follow_the_payload() {
        let p = EventPayload::Provider(ProviderEvent {
            provider: Provider::Sendgrid,
            kind: EventKind::SoftBounce,
            address: email("e@x.example"),
            id: Some("s-1".into()),
        });
        let c = Columns::of(&p);
        assert_eq!(c.source, EventSource::Provider(Provider::Sendgrid));
        assert_eq!(c.email, Some("e@x.example"));
        assert_eq!(c.provider_event_id, Some("s-1"));
        assert_eq!(p.subject(), None, "a soft bounce is recorded only");
    }
}
