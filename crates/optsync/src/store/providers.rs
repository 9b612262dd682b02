//! Sending providers: per-tenant configuration, and storing a verified webhook delivery — all
//! its events, their jobs and (for Mailgun) its signature token — in one transaction.

use sqlx::Row;

use super::Store;
use super::queue::{NewEvent, insert_event};
use crate::error::Result;

/// What storing a webhook delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// Events stored with a job (unsubscribes, complaints, hard bounces).
    pub queued: usize,
    /// Events stored as a record only (soft bounces, resubscribes).
    pub recorded: usize,
    /// Events the provider had delivered before.
    pub duplicates: usize,
    /// The signature token had been used before: nothing was stored.
    pub replayed: bool,
}

impl Store {
    pub async fn upsert_provider(
        &self,
        tenant_id: i64,
        provider: &str,
        sealed: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO providers (tenant_id, provider, config_sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (tenant_id, provider) DO UPDATE SET config_sealed = excluded.config_sealed, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(provider)
        .bind(sealed)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn provider_config(&self, tenant_id: i64, provider: &str) -> Result<Option<String>> {
        Ok(sqlx::query(
            "SELECT config_sealed FROM providers WHERE tenant_id = $1 AND provider = $2",
        )
        .bind(tenant_id)
        .bind(provider)
        .fetch_optional(self.pool())
        .await?
        .map(|r| r.try_get("config_sealed"))
        .transpose()?)
    }

    /// (provider, configured at) for a tenant.
    pub async fn providers(&self, tenant_id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT provider, updated_at FROM providers WHERE tenant_id = $1 ORDER BY provider",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("provider")?, r.try_get("updated_at")?)))
            .collect()
    }

    /// Stores a verified delivery. Events with a subject get a job; the others are recorded as
    /// honoured on arrival (there is nothing to do for them). A provider event id seen before
    /// is skipped. A signature token seen before makes the whole delivery a replay.
    pub async fn store_delivery(
        &self,
        events: &[(NewEvent, Option<String>)],
        token: Option<(i64, &str, &str)>,
        now: i64,
    ) -> Result<DeliveryOutcome> {
        let mut out = DeliveryOutcome::default();
        let mut tx = self.pool().begin().await?;
        if let Some((tenant_id, provider, token)) = token {
            let fresh = sqlx::query(
                "INSERT INTO seen_tokens (tenant_id, provider, token, seen_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(tenant_id)
            .bind(provider)
            .bind(token)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                out.replayed = true;
                return Ok(out);
            }
        }
        for (ev, subject) in events {
            if let Some(pid) = &ev.provider_event_id {
                let seen = sqlx::query(
                    "SELECT 1 AS one FROM events WHERE tenant_id = $1 AND source = $2 AND provider_event_id = $3",
                )
                .bind(ev.tenant_id)
                .bind(&ev.source)
                .bind(pid)
                .fetch_optional(&mut *tx)
                .await?;
                if seen.is_some() {
                    out.duplicates += 1;
                    continue;
                }
            }
            match subject {
                Some(subject) => {
                    insert_event(&mut tx, ev, subject).await?;
                    out.queued += 1;
                }
                None => {
                    sqlx::query(
                        "INSERT INTO events (tenant_id, source, kind, contact_id, email, provider_event_id, body_digest, received_at, honoured_at)
                         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $7)",
                    )
                    .bind(ev.tenant_id)
                    .bind(&ev.source)
                    .bind(&ev.kind)
                    .bind(&ev.email)
                    .bind(&ev.provider_event_id)
                    .bind(&ev.body_digest)
                    .bind(ev.received_at)
                    .execute(&mut *tx)
                    .await?;
                    out.recorded += 1;
                }
            }
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
