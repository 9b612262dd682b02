//! The typed job report: what the worker decided about each address of a job, and why. The
//! store records it as audit rows through [`insert`] and reads it back through [`AuditEntry`];
//! the audit listing, the console and the compliance report render from these fields, never
//! from text.

use super::TenantId;
use crate::clock::Millis;
use std::fmt;
use std::str::FromStr;

use keap::{ContactId, EmailAddress, EmailStatus};
use sqlx::Row;

use super::ids::{EventId, JobId};
use super::model::{AuditAction, Proof, Rule, UnknownValue, WritePath};
use crate::error::Result;

/// A write that left an address opted out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    pub path: WritePath,
    /// Whether a read-back showed the stop, or the write's own answer was trusted.
    pub proof: Proof,
}

/// What the worker decided (or found) about one address, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressDecision {
    /// The contact looked at (none: no contact holds the address).
    pub contact: Option<ContactId>,
    /// The address (none: Keap has no such contact).
    pub email: Option<EmailAddress>,
    pub action: AuditAction,
    /// Why the address was written, for writes.
    pub rule: Option<Rule>,
    pub before: Option<EmailStatus>,
    pub after: Option<EmailStatus>,
    pub write: Option<Write>,
    /// Keap calls spent on this address (the contact's read is charged to its first).
    pub keap_calls: i64,
}

impl AddressDecision {
    /// A finding about an address or contact, before anything is written.
    pub fn found(
        contact: Option<ContactId>,
        email: Option<EmailAddress>,
        action: AuditAction,
    ) -> Self {
        Self {
            contact,
            email,
            action,
            rule: None,
            before: None,
            after: None,
            write: None,
            keap_calls: 0,
        }
    }
}

/// Every decision of one job, recorded when it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    pub tenant_id: TenantId,
    pub job_id: JobId,
    /// The events the job served.
    pub event_ids: Vec<EventId>,
    /// When the first of them arrived (epoch ms).
    pub received_at: Millis,
    pub addresses: Vec<AddressDecision>,
    /// The addresses a person's opt-out covers (never an address-only outcome such as a
    /// bounce or a provider's suppression echo): each is pushed to the app's sending
    /// providers' lists, queued when the job completes.
    pub push: Vec<EmailAddress>,
}

/// A recorded decision, for `optsync audit` and the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub app: Option<String>,
    pub tenant_id: TenantId,
    pub job_id: Option<JobId>,
    pub event_ids: Vec<EventId>,
    pub decision: AddressDecision,
    pub received_at: Millis,
    /// When the job that made the decision completed.
    pub honoured_at: Millis,
}

/// The event ids as stored: a JSON array.
fn encode_ids(ids: &[EventId]) -> String {
    let raw: Vec<i64> = ids.iter().map(|i| i.get()).collect();
    serde_json::to_string(&raw).unwrap_or_else(|_| "[]".into())
}

fn decode_ids(text: &str) -> std::result::Result<Vec<EventId>, UnknownValue> {
    let raw: Vec<i64> =
        serde_json::from_str(text).map_err(|_| UnknownValue::new("audit event ids", text))?;
    Ok(raw.into_iter().map(EventId).collect())
}

fn status(text: Option<String>) -> std::result::Result<Option<EmailStatus>, UnknownValue> {
    text.map(|t| {
        t.parse::<EmailStatus>()
            .map_err(|_| UnknownValue::new("email status", &t))
    })
    .transpose()
}

/// Records a job's report, one audit row per address, inside the caller's transaction.
pub(super) async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &JobReport,
    honoured_at: Millis,
) -> Result<()> {
    let event_ids = encode_ids(&r.event_ids);
    for a in &r.addresses {
        sqlx::query(
            "INSERT INTO audit (tenant_id, job_id, event_ids, contact_id, email, status_before, status_after, action, rule, path, proof, keap_calls, received_at, honoured_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(r.tenant_id)
        .bind(r.job_id)
        .bind(&event_ids)
        .bind(a.contact.map(ContactId::get))
        .bind(a.email.as_ref().map_or("", EmailAddress::as_str))
        .bind(a.before.map(EmailStatus::type_name))
        .bind(a.after.map(EmailStatus::type_name))
        .bind(a.action)
        .bind(&a.rule)
        .bind(a.write.map(|w| w.path))
        .bind(a.write.map(|w| w.proof))
        .bind(a.keap_calls)
        .bind(r.received_at)
        .bind(honoured_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The select [`AuditEntry::from_row`] reads.
pub(super) const AUDIT_SELECT: &str =
    "SELECT a.id, t.app, a.tenant_id, a.job_id, a.event_ids, a.contact_id, a.email,
        a.status_before, a.status_after, a.action, a.rule, a.path, a.proof, a.keap_calls,
        a.received_at, a.honoured_at
   FROM audit a LEFT JOIN tenants t ON t.id = a.tenant_id";

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for AuditEntry {
    fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        let decode = |e: UnknownValue| sqlx::Error::Decode(Box::new(e));
        let path: Option<WritePath> = row.try_get("path")?;
        let proof: Option<Proof> = row.try_get("proof")?;
        let email: String = row.try_get("email")?;
        let contact: Option<i64> = row.try_get("contact_id")?;
        Ok(Self {
            id: row.try_get("id")?,
            app: row.try_get("app")?,
            tenant_id: row.try_get("tenant_id")?,
            job_id: row.try_get("job_id")?,
            event_ids: decode_ids(&row.try_get::<String, _>("event_ids")?).map_err(decode)?,
            decision: AddressDecision {
                contact: contact.and_then(ContactId::new),
                email: (!email.is_empty()).then(|| EmailAddress::from_stored(&email)),
                action: row.try_get("action")?,
                rule: row.try_get("rule")?,
                before: status(row.try_get("status_before")?).map_err(decode)?,
                after: status(row.try_get("status_after")?).map_err(decode)?,
                // A write recorded before proofs were (path without proof) was read back.
                write: path.map(|path| Write {
                    path,
                    proof: proof.unwrap_or(Proof::ReadBack),
                }),
                keap_calls: row.try_get("keap_calls")?,
            },
            received_at: row.try_get("received_at")?,
            honoured_at: row.try_get("honoured_at")?,
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Propagation { source } => write!(f, "propagation:{source}"),
            Self::Bounce => f.write_str("bounce"),
        }
    }
}

impl FromStr for Rule {
    type Err = UnknownValue;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownValue> {
        match s.split_once(':') {
            _ if s == "bounce" => Ok(Self::Bounce),
            Some(("propagation", source)) => Ok(Self::Propagation {
                source: EmailAddress::from_stored(source),
            }),
            _ => Err(UnknownValue::new("rule", s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_ids_round_trip() {
        for r in [
            Rule::Bounce,
            Rule::Propagation {
                source: EmailAddress::parse("a@x.example").unwrap(),
            },
        ] {
            assert_eq!(r.to_string().parse::<Rule>(), Ok(r));
        }
        assert!("source a@x.example".parse::<Rule>().is_err());
        let ids = vec![EventId(3), EventId(5)];
        assert_eq!(decode_ids(&encode_ids(&ids)), Ok(ids));
        assert_eq!(decode_ids("[]"), Ok(vec![]));
        assert!(decode_ids("3,5").is_err());
    }
}
