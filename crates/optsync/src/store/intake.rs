//! The write path: events and their jobs, in the same database and the same transaction: an
//! event is accepted only when its job is committed with it. At most one pending job per
//! subject: a new event joins it.

use super::TenantId;
use crate::clock::Millis;
use sqlx::Row;

use super::ids::{EventId, JobId};
use super::model::{EventKind, Subject};
use super::payload::{self, Columns, EventPayload};
use super::{Store, is_unique_violation};
use crate::error::Result;

/// An event as intake, provider hooks, fan-out and reconciliation hand it to the store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: TenantId,
    pub payload: EventPayload,
    /// SHA-256 (hex) of the raw body the event came in, for events that came in one.
    pub digest: Option<String>,
    pub received_at: Millis,
}

impl NewEvent {
    /// An event produced here (no body it came in).
    pub fn new(tenant_id: TenantId, payload: EventPayload, received_at: Millis) -> Self {
        Self {
            tenant_id,
            payload,
            digest: None,
            received_at,
        }
    }

    /// An event that came in a request with this raw body.
    pub fn received(
        tenant_id: TenantId,
        payload: EventPayload,
        body: &[u8],
        received_at: Millis,
    ) -> Self {
        use sha2::Digest as _;
        Self {
            tenant_id,
            payload,
            digest: Some(hex::encode(sha2::Sha256::digest(body))),
            received_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: EventId,
    /// None for an event recorded without a job.
    pub job_id: Option<JobId>,
    /// The provider had sent this event before; nothing new was stored.
    pub duplicate: bool,
}

/// Inserts one event inside the caller's transaction, with (or joining) its subject's
/// pending job. An event whose (source, provider id, kind) was stored before is not stored
/// again: the earlier ids come back, marked duplicate. This is the one de-duplication path.
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ev: &NewEvent,
) -> Result<Accepted, sqlx::Error> {
    let cols = Columns::of(&ev.payload);
    if let Some(pid) = cols.provider_event_id {
        let prev = sqlx::query(
            "SELECT id, job_id FROM events WHERE tenant_id = $1 AND source = $2 AND provider_event_id = $3 AND kind = $4",
        )
        .bind(ev.tenant_id)
        .bind(cols.source)
        .bind(pid)
        .bind(cols.kind)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = prev {
            return Ok(Accepted {
                event_id: r.try_get("id")?,
                job_id: r.try_get("job_id")?,
                duplicate: true,
            });
        }
    }
    let job_id = match ev.payload.subject() {
        Some(_) if is_push_echo(tx, ev).await? => None,
        Some(subject) => Some(join_pending_job(tx, ev.tenant_id, &subject, ev.received_at).await?),
        None => None,
    };
    let event_id: EventId = sqlx::query(
        "INSERT INTO events (tenant_id, source, kind, contact_id, email, provider_event_id, payload, digest, received_at, job_id, honoured_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(ev.tenant_id)
    .bind(cols.source)
    .bind(cols.kind)
    .bind(cols.contact_id)
    .bind(cols.email)
    .bind(cols.provider_event_id)
    .bind(payload::encode(&ev.payload))
    .bind(&ev.digest)
    .bind(ev.received_at)
    .bind(job_id)
    // Nothing to do for a recorded-only event: honoured on arrival.
    .bind(job_id.is_none().then_some(ev.received_at))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    Ok(Accepted {
        event_id,
        job_id,
        duplicate: false,
    })
}

/// A provider's report that it did not send because the address is on its own list, for an
/// address optsync pushed to that provider: the echo of our own push. It is recorded (and
/// honoured on arrival) but asks for nothing, so a push can never feed back into a write.
async fn is_push_echo(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ev: &NewEvent,
) -> Result<bool, sqlx::Error> {
    match &ev.payload {
        EventPayload::Provider(p) if p.kind == EventKind::Suppressed => {
            super::push_jobs::suppressed_with(tx, ev.tenant_id, p.provider, &p.address, None).await
        }
        _ => Ok(false),
    }
}

/// The subject's pending job, created if there is none.
async fn join_pending_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: TenantId,
    subject: &Subject,
    at: Millis,
) -> Result<JobId, sqlx::Error> {
    sqlx::query(
        "INSERT INTO jobs (tenant_id, subject, state, attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3)
         ON CONFLICT (tenant_id, subject) WHERE state = 'pending'
         DO UPDATE SET updated_at = excluded.updated_at
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(subject)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")
}

impl Store {
    /// Stores an event and its job in one transaction. A provider event id seen before is a
    /// duplicate: nothing is stored and the earlier ids are returned.
    pub async fn accept(&self, ev: &NewEvent) -> Result<Accepted> {
        let out = self
            .store_delivery(&super::Delivery {
                events: vec![ev.clone()],
                token: None,
                at: ev.received_at,
            })
            .await?;
        out.accepted
            .into_iter()
            .next()
            .ok_or_else(|| crate::Error::Config("the store took no event".into()))
    }
}

/// A unique violation on the provider-id index: the same provider event raced in through
/// another connection. Storing again finds it as a duplicate.
pub(super) fn is_duplicate_race(e: &sqlx::Error) -> bool {
    is_unique_violation(e)
}
