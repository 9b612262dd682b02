//! The console's accounts, sessions and action record, and the events about one address.

use super::Store;
use super::listings::{EVENT_SUMMARY, EventSummary};
use crate::clock::Millis;
use crate::error::Result;

/// A console session as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_name: String,
    pub csrf: String,
    pub expires_at: Millis,
}

/// One action taken in the console.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminAction {
    pub id: i64,
    pub at: Millis,
    pub user_name: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
}

impl Store {
    pub async fn set_admin_password(&self, name: &str, hash: &str, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_users (name, password_hash, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(hash)
        .bind(now)
        .execute(self.pool())
        .await?;
        // A new password ends every session of the account.
        sqlx::query("DELETE FROM admin_sessions WHERE user_name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn admin_password_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM admin_users WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session, if it exists and has not expired.
    pub async fn session(&self, token_hash: &str, now: Millis) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT user_name, csrf, expires_at FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The session, if it has not expired, and, being used, its expiry moved to
    /// `now + idle_ms` (never past `created_at + ttl_ms`): an idle session ends early.
    pub async fn touch_session(
        &self,
        token_hash: &str,
        now: Millis,
        idle_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<SessionRow>> {
        let Some(row) = self.session(token_hash, now).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE admin_sessions SET expires_at = CASE WHEN created_at + $1 < $2 THEN created_at + $1 ELSE $2 END WHERE token_hash = $3",
        )
        .bind(ttl_ms)
        .bind(now + idle_ms)
        .bind(token_hash)
        .execute(self.pool())
        .await?;
        Ok(Some(row))
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets sessions that expired before `now`.
    pub async fn prune_sessions(&self, now: Millis) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    pub async fn record_admin_action(
        &self,
        at: Millis,
        user: &str,
        action: &str,
        target: &str,
        detail: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_actions (at, user_name, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(at)
        .bind(user)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn admin_actions(&self, limit: i64) -> Result<Vec<AdminAction>> {
        Ok(sqlx::query_as(
            "SELECT id, at, user_name, action, target, detail FROM admin_actions ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every event naming an address (any letter case), across tenants, newest first.
    pub async fn events_for_email(&self, email: &str, limit: i64) -> Result<Vec<EventSummary>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{EVENT_SUMMARY} WHERE LOWER(e.email) = LOWER($1) ORDER BY e.id DESC LIMIT $2"
        )))
        .bind(email)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
