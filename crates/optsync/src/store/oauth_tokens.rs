//! OAuth token pairs of connected apps (sealed by the caller), their generation, the refresh
//! lease, and the "reconnect needed" mark. Every statement is a single conditional write, so
//! instances sharing the database agree without holding a transaction across a Keap call.

use super::TenantId;
use crate::clock::Millis;
use sqlx::Row;

use super::Store;
use crate::error::Result;

/// An app's stored pair.
#[derive(Debug, Clone)]
pub struct OAuthTokenRow {
    pub tenant_id: TenantId,
    pub pair_sealed: String,
    pub generation: i64,
    pub reconnect_reason: Option<String>,
    pub reconnect_since: Option<Millis>,
}

/// An app Keap refused for good.
#[derive(Debug, Clone)]
pub struct ReconnectNeeded {
    pub tenant_id: TenantId,
    pub reason: String,
    pub since: Millis,
}

impl Store {
    pub async fn oauth_tokens(&self, tenant_id: TenantId) -> Result<Option<OAuthTokenRow>> {
        let r = sqlx::query(
            "SELECT tenant_id, pair_sealed, generation, reconnect_reason, reconnect_since FROM oauth_tokens WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = r else { return Ok(None) };
        Ok(Some(OAuthTokenRow {
            tenant_id: r.try_get("tenant_id")?,
            pair_sealed: r.try_get("pair_sealed")?,
            generation: r.try_get("generation")?,
            reconnect_reason: r.try_get("reconnect_reason")?,
            reconnect_since: r.try_get("reconnect_since")?,
        }))
    }

    /// Stores an app's first pair (generation 1) unless one is stored already.
    pub async fn seed_oauth_tokens(
        &self,
        tenant_id: TenantId,
        sealed: &str,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_tokens (tenant_id, pair_sealed, generation, updated_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(sealed)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes the refresh lease for `holder` until `until`, unless another's runs past `now`.
    pub async fn lease_oauth_tokens(
        &self,
        tenant_id: TenantId,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE oauth_tokens SET lease_holder = $2, lease_until = $4
             WHERE tenant_id = $1 AND (lease_holder IS NULL OR lease_holder = $2 OR lease_until <= $3)",
        )
        .bind(tenant_id)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a rotated pair in place of generation `replaces` and lets the lease go; the new
    /// generation, or `None` when another pair was stored meanwhile (the lease is let go too).
    pub async fn save_oauth_tokens(
        &self,
        tenant_id: TenantId,
        holder: &str,
        replaces: i64,
        sealed: &str,
        now: Millis,
    ) -> Result<Option<i64>> {
        let r = sqlx::query(
            "UPDATE oauth_tokens SET pair_sealed = $3, generation = generation + 1, lease_holder = NULL,
                    lease_until = NULL, reconnect_reason = NULL, reconnect_since = NULL, updated_at = $4
             WHERE tenant_id = $1 AND generation = $2 RETURNING generation",
        )
        .bind(tenant_id)
        .bind(replaces)
        .bind(sealed)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        match r {
            Some(r) => Ok(Some(r.try_get("generation")?)),
            None => {
                self.release_oauth_lease(tenant_id, holder).await?;
                Ok(None)
            }
        }
    }

    pub async fn release_oauth_lease(&self, tenant_id: TenantId, holder: &str) -> Result<()> {
        sqlx::query(
            "UPDATE oauth_tokens SET lease_holder = NULL, lease_until = NULL WHERE tenant_id = $1 AND lease_holder = $2",
        )
        .bind(tenant_id)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Keap refused generation `generation` for good; lets `holder`'s lease go.
    pub async fn mark_oauth_reconnect(
        &self,
        tenant_id: TenantId,
        holder: &str,
        generation: i64,
        reason: &str,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE oauth_tokens SET reconnect_reason = $3, reconnect_since = COALESCE(reconnect_since, $4)
             WHERE tenant_id = $1 AND generation = $2",
        )
        .bind(tenant_id)
        .bind(generation)
        .bind(reason)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.release_oauth_lease(tenant_id, holder).await
    }

    /// Stores the pair of a new authorization (a newer generation, "reconnect needed"
    /// cleared) and wakes the app's blocked jobs, in one transaction.
    pub async fn connect_oauth_tokens(
        &self,
        tenant_id: TenantId,
        sealed: &str,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        install_pair(&mut tx, tenant_id, sealed, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every app Keap refused for good.
    pub async fn oauth_reconnects_needed(&self) -> Result<Vec<ReconnectNeeded>> {
        let rows = sqlx::query(
            "SELECT tenant_id, reconnect_reason, reconnect_since FROM oauth_tokens WHERE reconnect_reason IS NOT NULL ORDER BY tenant_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReconnectNeeded {
                    tenant_id: r.try_get("tenant_id")?,
                    reason: r.try_get("reconnect_reason")?,
                    since: r.try_get("reconnect_since")?,
                })
            })
            .collect()
    }
}

/// In `tx`: the pair of a new authorization stored as the newest generation (lease and
/// "reconnect needed" cleared), and the app's blocked jobs due now.
pub(super) async fn install_pair(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: TenantId,
    sealed: &str,
    now: Millis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_tokens (tenant_id, pair_sealed, generation, updated_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET pair_sealed = excluded.pair_sealed,
             generation = oauth_tokens.generation + 1, lease_holder = NULL, lease_until = NULL,
             reconnect_reason = NULL, reconnect_since = NULL, updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(sealed)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE jobs SET run_at = $2 WHERE tenant_id = $1 AND state = 'blocked'")
        .bind(tenant_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
