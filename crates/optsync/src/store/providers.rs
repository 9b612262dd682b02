//! Sending providers: per-tenant configuration, and storing verified events — all of one
//! delivery, their jobs and (for Mailgun) its signature token — in one transaction.

use super::Store;
use super::TenantId;
use super::intake::{Accepted, NewEvent, insert_event, is_duplicate_race};
use crate::clock::Millis;
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

/// A single-use signature token to remember with a delivery, per signing key: apps sharing
/// one provider account share its key, and a token used at one app is spent at all of them.
#[derive(Debug, Clone)]
pub struct SignatureToken {
    /// SHA-256 (hex) of the provider and the signing key ([`ProviderConfig::token_scope`]).
    pub key_id: String,
    pub token: String,
}

/// What one request brought: its events, and the signature token to remember with them.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub events: Vec<NewEvent>,
    pub token: Option<SignatureToken>,
    /// When it arrived (epoch ms): the token's time.
    pub at: Millis,
}

impl Store {
    pub async fn upsert_provider(
        &self,
        tenant_id: TenantId,
        provider: Provider,
        sealed: &str,
        now: Millis,
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
        tenant_id: TenantId,
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
    pub async fn providers(&self, tenant_id: TenantId) -> Result<Vec<(String, Millis)>> {
        Ok(sqlx::query_as(
            "SELECT provider, updated_at FROM providers WHERE tenant_id = $1 ORDER BY provider",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores one delivery in a transaction of its own: events with a subject get a job, the
    /// others are recorded as honoured on arrival. A provider event id seen before is skipped.
    /// A signature token seen before makes the whole delivery a replay, and nothing of it is
    /// stored.
    pub async fn store_delivery(&self, d: &Delivery) -> Result<DeliveryOutcome> {
        let mut out = self.store_deliveries(std::slice::from_ref(d)).await?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Stores several deliveries in one transaction (one fsync: group commit), each with the
    /// outcome it would have had alone. The same provider event racing in through another
    /// connection fails the transaction; a second try finds it and skips it.
    pub async fn store_deliveries(&self, ds: &[Delivery]) -> Result<Vec<DeliveryOutcome>> {
        match self.store_deliveries_once(ds).await {
            Err(crate::Error::Db(e)) if is_duplicate_race(&e) => {
                self.store_deliveries_once(ds).await
            }
            other => other,
        }
    }

    async fn store_deliveries_once(&self, ds: &[Delivery]) -> Result<Vec<DeliveryOutcome>> {
        let mut tx = self.pool().begin().await?;
        let mut outs = Vec::with_capacity(ds.len());
        for d in ds {
            outs.push(insert_delivery(&mut tx, d).await?);
        }
        tx.commit().await?;
        Ok(outs)
    }

    /// Forgets signature tokens older than `before` (they are outside the freshness window,
    /// so a replay of them is refused as stale anyway).
    pub async fn prune_seen_tokens(&self, before: Millis) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM seen_tokens WHERE seen_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}

/// One delivery inside the caller's transaction.
async fn insert_delivery(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: &Delivery,
) -> Result<DeliveryOutcome> {
    let mut out = DeliveryOutcome::default();
    if let Some(t) = &d.token {
        let fresh = sqlx::query(
            "INSERT INTO seen_tokens (key_id, token, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&t.key_id)
        .bind(&t.token)
        .bind(d.at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if fresh == 0 {
            out.replayed = true;
            return Ok(out);
        }
    }
    for ev in &d.events {
        let acc = insert_event(tx, ev).await?;
        match (acc.duplicate, acc.job_id.is_some()) {
            (true, _) => out.duplicates += 1,
            (false, true) => out.queued += 1,
            (false, false) => out.recorded += 1,
        }
        out.accepted.push(acc);
    }
    Ok(out)
}
