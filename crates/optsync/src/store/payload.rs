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
    /// Keap's "opted out of all email marketing" post, about a contact or an address, with
    /// the contact's addresses as the post gave them.
    KeapPost {
        subject: Subject,
        addresses: PostedAddresses,
    },
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

/// The addresses Keap's post carried for its contact (`Email`, `EmailAddress2`,
/// `EmailAddress3`), in field order, each field once. Empty for a post that carried none, and
/// for a post stored before they were kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostedAddresses(Vec<(EmailField, EmailAddress)>);

impl PostedAddresses {
    /// The addresses of the fields given, sorted by field; a field given twice keeps its
    /// first address.
    pub fn new(mut fields: Vec<(EmailField, EmailAddress)>) -> Self {
        fields.sort_by_key(|(f, _)| *f);
        fields.dedup_by_key(|(f, _)| *f);
        Self(fields)
    }

    pub fn fields(&self) -> &[(EmailField, EmailAddress)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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
            Self::KeapPost { subject, .. } => Some(subject.clone()),
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
                ..
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
                ..
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
        /// Absent in rows stored before the post's addresses were kept.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        addresses: Vec<StoredPosted>,
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
struct StoredPosted {
    field: String,
    email: String,
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
        EventPayload::KeapPost { subject, addresses } => Stored::KeapPost {
            subject: subject.to_string(),
            addresses: addresses
                .fields()
                .iter()
                .map(|(f, e)| StoredPosted {
                    field: f.rest_name().into(),
                    email: e.as_str().into(),
                })
                .collect(),
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
        Stored::KeapPost { subject, addresses } => EventPayload::KeapPost {
            subject: subject.parse()?,
            addresses: decode_posted(addresses).ok_or_else(bad)?,
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

fn decode_posted(stored: Vec<StoredPosted>) -> Option<PostedAddresses> {
    let fields = stored
        .into_iter()
        .map(|p| {
            Some((
                p.field.parse::<EmailField>().ok()?,
                EmailAddress::from_stored(&p.email),
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(PostedAddresses::new(fields))
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
                addresses: PostedAddresses::default(),
            },
            EventPayload::KeapPost {
                subject: Subject::Contact(id),
                addresses: PostedAddresses::new(vec![
                    (EmailField::Email2, email("r@relay.example")),
                    (EmailField::Email1, email("a@x.example")),
                ]),
            },
            EventPayload::KeapPost {
                subject: Subject::Address(email("b@x.example")),
                addresses: PostedAddresses::default(),
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

    /// A post stored before its addresses were kept still reads, as a post without them;
    /// one stored with them keeps them, in field order.
    #[test]
    fn a_keap_post_stored_without_its_addresses_still_decodes() {
        let id = ContactId::new(42).unwrap();
        assert_eq!(
            decode(r#"{"type":"keap_post","subject":"contact:42"}"#),
            Ok(EventPayload::KeapPost {
                subject: Subject::Contact(id),
                addresses: PostedAddresses::default(),
            })
        );
        let stored = encode(&EventPayload::KeapPost {
            subject: Subject::Contact(id),
            addresses: PostedAddresses::default(),
        });
        assert_eq!(stored, r#"{"type":"keap_post","subject":"contact:42"}"#);
        let with = r#"{"type":"keap_post","subject":"contact:42","addresses":[{"field":"EMAIL2","email":"r@relay.example"},{"field":"EMAIL1","email":"a@x.example"}]}"#;
        let Ok(EventPayload::KeapPost { addresses, .. }) = decode(with) else {
            panic!("{with}")
        };
        let fields: Vec<EmailField> = addresses.fields().iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, vec![EmailField::Email1, EmailField::Email2]);
    }

    #[test]
    fn unreadable_payloads_are_errors() {
        for bad in [
            "{",
            r#"{"type":"nope"}"#,
            r#"{"type":"keap_post","subject":"person:1"}"#,
            r#"{"type":"keap_post","subject":"contact:1","addresses":[{"field":"EMAIL9","email":"a@x.example"}]}"#,
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
