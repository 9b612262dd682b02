//! Sending providers: per-tenant configuration, and storing verified events — all of one
//! delivery, their jobs and (for Mailgun) its signature token — in one transaction.

use super::Store;
use super::queue::{Accepted, NewEvent, insert_event, is_duplicate_race};
use crate::error::Result;
use crate::providers::Provider;

/// What storing a batch of events did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// Events stored with a job (unsubscribes, complaints, hard bounces).
    pub queued: usize,
    /// Events stored as a record only (soft bounces, resubscribes).
    pub recorded: usize,
    /// Events the provider had delivered before.
    pub duplicates: usize,
    /// The signature token had been used before: nothing was stored.
    pub replayed: bool,
    /// Each event's ids, in order.
    pub accepted: Vec<Accepted>,
}

/// A single-use signature token to remember with a delivery.
#[derive(Debug, Clone, Copy)]
pub struct SignatureToken<'a> {
    pub tenant_id: i64,
    pub provider: Provider,
    pub token: &'a str,
}

impl Store {
    pub async fn upsert_provider(
        &self,
        tenant_id: i64,
        provider: Provider,
        sealed: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO providers (tenant_id, provider, config_sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (tenant_id, provider) DO UPDATE SET config_sealed = excluded.config_sealed, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(provider.name())
        .bind(sealed)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn provider_config(
        &self,
        tenant_id: i64,
        provider: Provider,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT config_sealed FROM providers WHERE tenant_id = $1 AND provider = $2",
        )
        .bind(tenant_id)
        .bind(provider.name())
        .fetch_optional(self.pool())
        .await?)
    }

    /// (provider name, configured at) for a tenant.
    pub async fn providers(&self, tenant_id: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT provider, updated_at FROM providers WHERE tenant_id = $1 ORDER BY provider",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores events in one transaction: events with a subject get a job, the others are
    /// recorded as honoured on arrival. A provider event id seen before is skipped. A
    /// signature token seen before makes the whole batch a replay, and nothing is stored.
    pub async fn store_events(
        &self,
        events: &[NewEvent],
        token: Option<SignatureToken<'_>>,
        now: i64,
    ) -> Result<DeliveryOutcome> {
        match self.store_events_once(events, token, now).await {
            // The same provider event raced in through another connection: a second try
            // finds it and skips it.
            Err(crate::Error::Db(e)) if is_duplicate_race(&e) => {
                self.store_events_once(events, token, now).await
            }
            other => other,
        }
    }

    async fn store_events_once(
        &self,
        events: &[NewEvent],
        token: Option<SignatureToken<'_>>,
        now: i64,
    ) -> Result<DeliveryOutcome> {
        let mut out = DeliveryOutcome::default();
        let mut tx = self.pool().begin().await?;
        if let Some(t) = token {
            let fresh = sqlx::query(
                "INSERT INTO seen_tokens (tenant_id, provider, token, seen_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(t.tenant_id)
            .bind(t.provider.name())
            .bind(t.token)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                out.replayed = true;
                return Ok(out);
            }
        }
        for ev in events {
            let acc = insert_event(&mut tx, ev).await?;
            match (acc.duplicate, ev.subject.is_some()) {
                (true, _) => out.duplicates += 1,
                (false, true) => out.queued += 1,
                (false, false) => out.recorded += 1,
            }
            out.accepted.push(acc);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Forgets signature tokens older than `before` (they are outside the freshness window,
    /// so a replay of them is refused as stale anyway).
    pub async fn prune_seen_tokens(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM seen_tokens WHERE seen_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
