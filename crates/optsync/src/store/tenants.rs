//! Tenants: one Keap app each.

use super::TenantId;
use crate::clock::Millis;
use keap::OptOutMethod;
use sqlx::Row;

use super::model::{CredentialKind, OptOutApi};
use super::{Store, is_unique_violation};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: TenantId,
    pub app: String,
    pub keap_base_url: String,
    pub credential_kind: CredentialKind,
    pub credential_sealed: String,
    pub token_hash: String,
    pub token_sealed: String,
    pub legacy_prefix_hash: Option<String>,
    pub opt_out_method: OptOutMethod,
    /// The opt-out path that last worked for this app, and when.
    pub opt_out_path: Option<OptOutApi>,
    pub opt_out_path_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub app: String,
    pub keap_base_url: String,
    pub credential_kind: CredentialKind,
    pub credential_sealed: String,
    pub token_hash: String,
    pub token_sealed: String,
    pub legacy_prefix_hash: Option<String>,
    pub opt_out_method: OptOutMethod,
}

/// The columns [`row`] reads, for queries elsewhere in the store that read whole tenants.
pub(super) const TENANT_COLUMNS: &str = "id, app, keap_base_url, credential_kind, credential_sealed, token_hash, token_sealed, legacy_prefix_hash, opt_out_method, opt_out_path, opt_out_path_at, created_at, updated_at";

pub(super) fn row(r: &sqlx::any::AnyRow) -> Result<TenantRow> {
    Ok(TenantRow {
        id: r.try_get("id")?,
        app: r.try_get("app")?,
        keap_base_url: r.try_get("keap_base_url")?,
        credential_kind: r.try_get("credential_kind")?,
        credential_sealed: r.try_get("credential_sealed")?,
        token_hash: r.try_get("token_hash")?,
        token_sealed: r.try_get("token_sealed")?,
        legacy_prefix_hash: r.try_get("legacy_prefix_hash")?,
        opt_out_method: r
            .try_get::<String, _>("opt_out_method")?
            .parse()
            .map_err(Error::CorruptState)?,
        opt_out_path: r.try_get("opt_out_path")?,
        opt_out_path_at: r.try_get("opt_out_path_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Adds a tenant; its id. The app name is unique: a second add is refused.
    pub async fn insert_tenant(&self, t: &NewTenant, now: Millis) -> Result<TenantId> {
        let res = sqlx::query(
            "INSERT INTO tenants (app, keap_base_url, credential_kind, credential_sealed, token_hash, token_sealed, legacy_prefix_hash, opt_out_method, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
        )
        .bind(&t.app)
        .bind(&t.keap_base_url)
        .bind(t.credential_kind)
        .bind(&t.credential_sealed)
        .bind(&t.token_hash)
        .bind(&t.token_sealed)
        .bind(&t.legacy_prefix_hash)
        .bind(t.opt_out_method.as_str())
        .bind(now)
        .fetch_one(self.pool())
        .await;
        match res {
            Ok(r) => Ok(r.try_get("id")?),
            Err(e) if is_unique_violation(&e) => Err(Error::BadInput(format!(
                "tenant {:?} already exists",
                t.app
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn tenant_by_app(&self, app: &str) -> Result<Option<TenantRow>> {
        let r = sqlx::query(
            "SELECT id, app, keap_base_url, credential_kind, credential_sealed, token_hash, token_sealed, legacy_prefix_hash, opt_out_method, opt_out_path, opt_out_path_at, created_at, updated_at FROM tenants WHERE app = $1",
        )
        .bind(app).fetch_optional(self.pool()).await?;
        r.as_ref().map(row).transpose()
    }

    pub async fn tenant(&self, id: TenantId) -> Result<Option<TenantRow>> {
        let r = sqlx::query(
            "SELECT id, app, keap_base_url, credential_kind, credential_sealed, token_hash, token_sealed, legacy_prefix_hash, opt_out_method, opt_out_path, opt_out_path_at, created_at, updated_at FROM tenants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(row).transpose()
    }

    pub async fn tenants(&self) -> Result<Vec<TenantRow>> {
        let rows = sqlx::query(
            "SELECT id, app, keap_base_url, credential_kind, credential_sealed, token_hash, token_sealed, legacy_prefix_hash, opt_out_method, opt_out_path, opt_out_path_at, created_at, updated_at FROM tenants ORDER BY app",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row).collect()
    }

    /// A new hook token; the legacy six-character credential goes with the old one.
    /// Switches a tenant's legacy 6-character token off.
    pub async fn clear_legacy(&self, id: TenantId, now: Millis) -> Result<()> {
        sqlx::query("UPDATE tenants SET legacy_prefix_hash = NULL, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_tenant_token(
        &self,
        id: TenantId,
        hash: &str,
        sealed: &str,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE tenants SET token_hash = $1, token_sealed = $2, legacy_prefix_hash = NULL, updated_at = $3 WHERE id = $4",
        )
        .bind(hash)
        .bind(sealed)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the opt-out path that just worked for a tenant. `updated_at` is left alone:
    /// it stamps the tenant's settings, and the cached Keap client depends on it.
    pub async fn record_opt_out_path(
        &self,
        id: TenantId,
        api: OptOutApi,
        now: Millis,
    ) -> Result<()> {
        sqlx::query("UPDATE tenants SET opt_out_path = $1, opt_out_path_at = $2 WHERE id = $3")
            .bind(api)
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_tenant_credential(
        &self,
        id: TenantId,
        sealed: &str,
        now: Millis,
    ) -> Result<()> {
        sqlx::query("UPDATE tenants SET credential_sealed = $1, updated_at = $2 WHERE id = $3")
            .bind(sealed)
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes a tenant with everything it left but the audit log: its queue, events,
    /// ledger, sealed provider secrets and OAuth tokens, the console accounts' grants of it and invites to it, remembered signature tokens, sweep state and address
    /// index. The audit stays: it is the record of what was done while the tenant existed.
    pub async fn remove_tenant(&self, id: TenantId) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for sql in [
            "DELETE FROM events WHERE tenant_id = $1",
            "DELETE FROM jobs WHERE tenant_id = $1",
            "DELETE FROM ledger WHERE tenant_id = $1",
            "DELETE FROM fanned_out WHERE tenant_id = $1",
            "DELETE FROM providers WHERE tenant_id = $1",
            "DELETE FROM sweeps WHERE tenant_id = $1",
            "DELETE FROM contact_addresses WHERE tenant_id = $1",
            "DELETE FROM opted_out_seen WHERE tenant_id = $1",
            "DELETE FROM oauth_tokens WHERE tenant_id = $1",
            "DELETE FROM console_grants WHERE tenant_id = $1",
            "DELETE FROM console_invites WHERE tenant_id = $1",
            "DELETE FROM tenants WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
