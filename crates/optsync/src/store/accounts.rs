//! Console accounts' roles, the apps granted to customers, and the one-time invites that
//! create customer accounts. Sessions and the action record stay in `console`.

use sqlx::Row;

use super::model::Role;
use super::{Store, TenantId};
use crate::clock::Millis;
use crate::error::{Error, Result};

/// A console account as the accounts page lists it.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub name: String,
    pub role: Role,
    /// The apps granted to it, by name (an operator's list is empty: it sees every app).
    pub apps: Vec<String>,
}

/// An invite to be stored: only the digest of the link's token.
#[derive(Debug, Clone)]
pub struct NewInvite<'a> {
    pub token_hash: &'a str,
    pub email: &'a str,
    /// The app granted on acceptance; `None` makes an onboarding link.
    pub tenant_id: Option<TenantId>,
    pub created_by: &'a str,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// An invite that can still be accepted.
#[derive(Debug, Clone)]
pub struct OpenInvite {
    pub email: String,
    pub tenant_id: Option<TenantId>,
}

impl Store {
    /// The account's role; `None` when there is no such account.
    pub async fn account_role(&self, name: &str) -> Result<Option<Role>> {
        Ok(
            sqlx::query_scalar("SELECT role FROM admin_users WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The names of the apps granted to an account, in order.
    pub async fn granted_apps(&self, name: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT t.app FROM console_grants g JOIN tenants t ON t.id = g.tenant_id
             WHERE g.user_name = $1 ORDER BY t.app",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await?)
    }

    /// Grants an app to an account; granting it again changes nothing.
    pub async fn grant_app(&self, name: &str, tenant_id: TenantId, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_grants (user_name, tenant_id, granted_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_name, tenant_id) DO NOTHING",
        )
        .bind(name)
        .bind(tenant_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every account with its role and granted apps, by name.
    pub async fn accounts(&self) -> Result<Vec<AccountRow>> {
        let mut accounts: Vec<AccountRow> =
            sqlx::query("SELECT name, role FROM admin_users ORDER BY name")
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| -> Result<AccountRow> {
                    Ok(AccountRow {
                        name: r.try_get("name")?,
                        role: r.try_get("role")?,
                        apps: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?;
        let grants = sqlx::query(
            "SELECT g.user_name, t.app FROM console_grants g JOIN tenants t ON t.id = g.tenant_id
             ORDER BY t.app",
        )
        .fetch_all(self.pool())
        .await?;
        for g in grants {
            let user: String = g.try_get("user_name")?;
            if let Some(a) = accounts.iter_mut().find(|a| a.name == user) {
                a.apps.push(g.try_get("app")?);
            }
        }
        Ok(accounts)
    }

    pub async fn create_invite(&self, i: &NewInvite<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_invites (token_hash, email, tenant_id, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(i.token_hash)
        .bind(i.email)
        .bind(i.tenant_id)
        .bind(i.created_by)
        .bind(i.created_at)
        .bind(i.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The invite, if it is neither used nor expired at `now`.
    pub async fn open_invite(&self, token_hash: &str, now: Millis) -> Result<Option<OpenInvite>> {
        let row = sqlx::query(
            "SELECT email, tenant_id FROM console_invites
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| -> Result<OpenInvite> {
            Ok(OpenInvite {
                email: r.try_get("email")?,
                tenant_id: r.try_get("tenant_id")?,
            })
        })
        .transpose()
    }

    /// Forgets invites whose link stopped working before `now` (used or not: the action
    /// record keeps who invited whom).
    pub async fn prune_invites(&self, now: Millis) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM console_invites WHERE expires_at <= $1")
                .bind(now)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Spends the invite and, in the same transaction, sets its customer account's password
    /// (creating the account), grants the invite's app and ends the account's sessions. The
    /// account's name; `None` when the invite is used, expired or unknown. An operator's
    /// account is never turned into a customer's: that is refused and nothing is spent.
    pub async fn accept_invite(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: Millis,
    ) -> Result<Option<String>> {
        let mut tx = self.pool().begin().await?;
        let spent = sqlx::query(
            "UPDATE console_invites SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
             RETURNING email, tenant_id",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            return Ok(None);
        };
        let email: String = spent.try_get("email")?;
        let tenant_id: Option<TenantId> = spent.try_get("tenant_id")?;
        let set = sqlx::query(
            "INSERT INTO admin_users (name, password_hash, updated_at, role) VALUES ($1, $2, $3, 'customer')
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at
             WHERE admin_users.role = 'customer'",
        )
        .bind(&email)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if set.rows_affected() == 0 {
            return Err(Error::BadInput(format!(
                "{email} is an operator's account; an invite cannot set its password"
            )));
        }
        if let Some(t) = tenant_id {
            sqlx::query(
                "INSERT INTO console_grants (user_name, tenant_id, granted_at) VALUES ($1, $2, $3)
                 ON CONFLICT (user_name, tenant_id) DO NOTHING",
            )
            .bind(&email)
            .bind(t)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM admin_sessions WHERE user_name = $1")
            .bind(&email)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(email))
    }
}
