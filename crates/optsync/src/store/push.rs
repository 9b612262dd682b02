//! Push settings: per tenant and provider, the sealed configuration for writing opted-out
//! addresses to the provider's own suppression list, and its scope in clear for listing.

use super::Store;
use super::TenantId;
use crate::clock::Millis;
use crate::error::Result;

/// One stored push, as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PushRow {
    pub provider: String,
    pub scope: String,
    pub config_sealed: String,
    pub updated_at: Millis,
}

impl Store {
    pub async fn upsert_push(
        &self,
        tenant_id: TenantId,
        provider: &str,
        scope: &str,
        sealed: &str,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO push_settings (tenant_id, provider, scope, config_sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (tenant_id, provider) DO UPDATE SET scope = excluded.scope, config_sealed = excluded.config_sealed, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(provider)
        .bind(scope)
        .bind(sealed)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A tenant's pushes, by provider name.
    pub async fn pushes(&self, tenant_id: TenantId) -> Result<Vec<PushRow>> {
        Ok(sqlx::query_as(
            "SELECT provider, scope, config_sealed, updated_at FROM push_settings WHERE tenant_id = $1 ORDER BY provider",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Removes a push; whether there was one.
    pub async fn delete_push(&self, tenant_id: TenantId, provider: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM push_settings WHERE tenant_id = $1 AND provider = $2")
                .bind(tenant_id)
                .bind(provider)
                .execute(self.pool())
                .await?
                .rows_affected()
                > 0,
        )
    }
}
