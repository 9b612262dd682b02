//! The console's "Connect a Keap app": the `state` of each flow in flight (digests only,
//! single use, expiring), and storing a connected app's new OAuth credential with its pair.

use sqlx::Row;

use super::model::CredentialKind;
use super::{Store, TenantId};
use crate::clock::Millis;
use crate::error::Result;

/// A flow's `state` as stored: only digests of the secrets.
#[derive(Debug, Clone)]
pub struct NewConnectState<'a> {
    pub state_hash: &'a str,
    /// Digest of the browser cookie the state is bound to.
    pub binder_hash: &'a str,
    /// The console session that started the flow.
    pub session_hash: &'a str,
    /// A reconnect: the app the grant must name.
    pub app: Option<&'a str>,
    pub expires_at: Millis,
}

/// A flow's `state`, taken (it works once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenConnectState {
    pub session_hash: String,
    pub app: Option<String>,
}

impl Store {
    /// Stores a new flow's state; flows abandoned before `now` are forgotten.
    pub async fn create_connect_state(&self, s: &NewConnectState<'_>, now: Millis) -> Result<()> {
        sqlx::query("DELETE FROM keap_connect_states WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO keap_connect_states (state_hash, binder_hash, session_hash, app, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(s.state_hash)
        .bind(s.binder_hash)
        .bind(s.session_hash)
        .bind(s.app)
        .bind(s.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes the state (deleting it) if it exists, is bound to `binder_hash` and has not
    /// expired; one statement, so two callbacks with one state cannot both have it.
    pub async fn take_connect_state(
        &self,
        state_hash: &str,
        binder_hash: &str,
        now: Millis,
    ) -> Result<Option<TakenConnectState>> {
        let r = sqlx::query(
            "DELETE FROM keap_connect_states WHERE state_hash = $1 AND binder_hash = $2 AND expires_at > $3
             RETURNING session_hash, app",
        )
        .bind(state_hash)
        .bind(binder_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(TakenConnectState {
                session_hash: r.try_get("session_hash")?,
                app: r.try_get("app")?,
            })
        })
        .transpose()
    }

    /// An app connected again through OAuth: its credential replaced (the row's stamp moved
    /// on, so every instance rebuilds its Keap client), the new pair stored as the newest
    /// generation with "reconnect needed" cleared, and its blocked jobs due now, in one
    /// transaction.
    pub async fn reconnect_oauth_tenant(
        &self,
        tenant_id: TenantId,
        credential_sealed: &str,
        pair_sealed: &str,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE tenants SET credential_kind = $2, credential_sealed = $3,
                    updated_at = CASE WHEN updated_at >= $4 THEN updated_at + 1 ELSE $4 END
             WHERE id = $1",
        )
        .bind(tenant_id)
        .bind(CredentialKind::OAuth)
        .bind(credential_sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::oauth_tokens::install_pair(&mut tx, tenant_id, pair_sealed, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
