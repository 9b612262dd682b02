//! Reconciliation's durable state: the sweep in progress with its cursor, the local index of
//! each contact's addresses, and the set of not-marketable addresses last seen.
//!
//! A page's results — index rows, seen addresses, the jobs it queues, the new cursor — are
//! committed together, so a sweep stopped at any point resumes from its last committed page
//! and never queues the same page twice.

use super::TenantId;
use crate::clock::Millis;
use keap::ContactId;
use std::collections::HashMap;

use sqlx::Row;

use super::Store;
use super::intake::{NewEvent, insert_event};
use super::model::{SweepKind, SweepState};
use crate::error::Result;
use crate::rules::OwnWrite;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SweepRow {
    pub kind: SweepKind,
    pub state: SweepState,
    pub cursor: Option<String>,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub last_full_at: Option<Millis>,
    pub pages: i64,
    pub contacts_scanned: i64,
    pub calls: i64,
    pub enqueued: i64,
    pub discrepancies: String,
}

/// One contact's address as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedAddress {
    pub contact_id: ContactId,
    pub field: String,
    pub email: String,
}

/// Everything one page of a sweep produced.
#[derive(Debug, Default)]
pub struct PageCommit {
    /// The cursor to resume from after this page (`None`: this was the last page).
    pub cursor: Option<String>,
    pub contacts_scanned: i64,
    pub calls: i64,
    pub index: Vec<IndexedAddress>,
    /// (email key, status) of not-marketable addresses seen.
    pub seen: Vec<(String, String)>,
    pub jobs: Vec<NewEvent>,
    pub discrepancies: String,
}

/// A tenant's sweep jobs not yet ended: how many, and when the first of them may run next
/// (its time, a running one's lease, or the tenant's pacing, whichever is later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepJobsLeft {
    pub left: i64,
    pub next_at: Option<Millis>,
}

/// Pending or running jobs holding a sweep's event (`source = 'reconcile'`).
const SWEEP_JOBS_LEFT: &str = "SELECT COUNT(*) AS left_count,
  MIN(CASE WHEN j.state = 'running' THEN j.lease_until ELSE j.run_at END) AS next_at,
  (SELECT paced_until FROM tenants WHERE id = $1) AS paced_until
 FROM jobs j WHERE j.tenant_id = $1 AND j.state IN ('pending', 'running')
  AND EXISTS (SELECT 1 FROM events e WHERE e.job_id = j.id AND e.source = 'reconcile')";

impl Store {
    /// The tenant's sweep jobs still to run (blocked ones are not: they wait for a working
    /// opt-out path, not for time).
    pub async fn sweep_jobs_left(&self, tenant: TenantId) -> Result<SweepJobsLeft> {
        let r = sqlx::query(SWEEP_JOBS_LEFT)
            .bind(tenant)
            .fetch_one(self.pool())
            .await?;
        let left: i64 = r.try_get("left_count")?;
        let next: Option<Millis> = r.try_get("next_at")?;
        let paced: Option<Millis> = r.try_get("paced_until")?;
        Ok(SweepJobsLeft {
            left,
            next_at: next.map(|at| at.max(paced.unwrap_or(at))),
        })
    }

    /// How many contacts the address index knows for the tenant (the last full sweep's
    /// count; zero before the first).
    pub async fn indexed_contacts(&self, tenant: TenantId) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT contact_id) FROM contact_addresses WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn sweep(&self, tenant_id: TenantId) -> Result<Option<SweepRow>> {
        Ok(sqlx::query_as(
            "SELECT kind, state, cursor, started_at, finished_at, last_full_at, pages, contacts_scanned, calls, enqueued, discrepancies
               FROM sweeps WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Starts a sweep from the beginning. A full sweep forgets the old index and seen set:
    /// it rebuilds both.
    pub async fn begin_sweep(
        &self,
        tenant_id: TenantId,
        kind: SweepKind,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        if kind == SweepKind::Full {
            for sql in [
                "DELETE FROM contact_addresses WHERE tenant_id = $1",
                "DELETE FROM opted_out_seen WHERE tenant_id = $1",
            ] {
                sqlx::query(sql).bind(tenant_id).execute(&mut *tx).await?;
            }
        }
        sqlx::query(
            "INSERT INTO sweeps (tenant_id, kind, state, cursor, started_at, updated_at, pages, contacts_scanned, calls, enqueued, discrepancies)
             VALUES ($1, $2, 'running', NULL, $3, $3, 0, 0, 0, 0, '{}')
             ON CONFLICT (tenant_id) DO UPDATE SET kind = excluded.kind, state = 'running', cursor = NULL,
                 started_at = excluded.started_at, updated_at = excluded.updated_at, finished_at = NULL,
                 pages = 0, contacts_scanned = 0, calls = 0, enqueued = 0, discrepancies = '{}'",
        )
        .bind(tenant_id)
        .bind(kind)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commits one page's results and the cursor after it.
    pub async fn commit_page(
        &self,
        tenant_id: TenantId,
        page: &PageCommit,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for a in &page.index {
            sqlx::query(
                "INSERT INTO contact_addresses (tenant_id, contact_id, field, email, email_key) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant_id, contact_id, field) DO UPDATE SET email = excluded.email, email_key = excluded.email_key",
            )
            .bind(tenant_id)
            .bind(a.contact_id.get())
            .bind(&a.field)
            .bind(&a.email)
            .bind(a.email.to_lowercase())
            .execute(&mut *tx)
            .await?;
        }
        for (key, status) in &page.seen {
            sqlx::query(
                "INSERT INTO opted_out_seen (tenant_id, email_key, status) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, email_key) DO UPDATE SET status = excluded.status",
            )
            .bind(tenant_id)
            .bind(key)
            .bind(status)
            .execute(&mut *tx)
            .await?;
        }
        for ev in &page.jobs {
            insert_event(&mut tx, ev).await?;
        }
        sqlx::query(
            "UPDATE sweeps SET cursor = $1, updated_at = $2, pages = pages + 1, contacts_scanned = contacts_scanned + $3,
                    calls = calls + $4, enqueued = enqueued + $5, discrepancies = $6
              WHERE tenant_id = $7",
        )
        .bind(&page.cursor)
        .bind(now)
        .bind(page.contacts_scanned)
        .bind(page.calls)
        .bind(page.jobs.len() as i64)
        .bind(&page.discrepancies)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn pause_sweep(&self, tenant_id: TenantId, now: Millis) -> Result<()> {
        sqlx::query("UPDATE sweeps SET state = 'paused', updated_at = $1 WHERE tenant_id = $2")
            .bind(now)
            .bind(tenant_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn finish_sweep(&self, tenant_id: TenantId, full: bool, now: Millis) -> Result<()> {
        sqlx::query(
            "UPDATE sweeps SET state = 'finished', cursor = NULL, updated_at = $1, finished_at = $1,
                    last_full_at = CASE WHEN $2 = 1 THEN $1 ELSE last_full_at END
              WHERE tenant_id = $3",
        )
        .bind(now)
        .bind(i64::from(full))
        .bind(tenant_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The ids of the contacts the index says hold an address (one query; the worker's
    /// fan-out needs no more).
    pub async fn indexed_holder_ids(
        &self,
        tenant_id: TenantId,
        email_key: &str,
    ) -> Result<Vec<ContactId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT contact_id FROM contact_addresses WHERE tenant_id = $1 AND email_key = $2 ORDER BY contact_id",
        )
        .bind(tenant_id)
        .bind(email_key)
        .fetch_all(self.pool())
        .await?;
        // The index holds only what Keap listed, and Keap's ids are positive.
        Ok(ids.into_iter().filter_map(ContactId::new).collect())
    }

    /// The contacts the index says hold an address, each with all its indexed addresses.
    pub async fn indexed_holders(
        &self,
        tenant_id: TenantId,
        email_key: &str,
    ) -> Result<Vec<(ContactId, Vec<IndexedAddress>)>> {
        let ids = self.indexed_holder_ids(tenant_id, email_key).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let rows = sqlx::query(
                "SELECT field, email FROM contact_addresses WHERE tenant_id = $1 AND contact_id = $2 ORDER BY field",
            )
            .bind(tenant_id)
            .bind(id.get())
            .fetch_all(self.pool())
            .await?;
            let addrs = rows
                .iter()
                .map(|r| {
                    Ok(IndexedAddress {
                        contact_id: id,
                        field: r.try_get("field")?,
                        email: r.try_get("email")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            out.push((id, addrs));
        }
        Ok(out)
    }

    /// The address keys the index holds for one contact.
    pub async fn indexed_keys(
        &self,
        tenant_id: TenantId,
        contact: ContactId,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT email_key FROM contact_addresses WHERE tenant_id = $1 AND contact_id = $2 ORDER BY field",
        )
        .bind(tenant_id)
        .bind(contact.get())
        .fetch_all(self.pool())
        .await?)
    }

    /// Replaces one contact's indexed addresses with what a fresh read showed.
    pub async fn index_contact(&self, tenant_id: TenantId, c: &keap::Contact) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM contact_addresses WHERE tenant_id = $1 AND contact_id = $2")
            .bind(tenant_id)
            .bind(c.id.get())
            .execute(&mut *tx)
            .await?;
        for a in &c.addresses {
            sqlx::query(
                "INSERT INTO contact_addresses (tenant_id, contact_id, field, email, email_key) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant_id)
            .bind(c.id.get())
            .bind(a.field.rest_name())
            .bind(a.email.as_str())
            .bind(a.email.key())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The not-marketable addresses the last sweep saw: email key → status.
    pub async fn opted_out_seen(&self, tenant_id: TenantId) -> Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT email_key, status FROM opted_out_seen WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("email_key")?, r.try_get("status")?)))
            .collect()
    }

    /// Replaces the seen set (an incremental sweep's result), in one transaction.
    pub async fn replace_opted_out_seen(
        &self,
        tenant_id: TenantId,
        seen: &HashMap<String, String>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM opted_out_seen WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        for (k, s) in seen {
            sqlx::query(
                "INSERT INTO opted_out_seen (tenant_id, email_key, status) VALUES ($1, $2, $3)",
            )
            .bind(tenant_id)
            .bind(k)
            .bind(s)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// optsync's writes to a tenant's addresses recorded after ledger row `after` (0: all):
    /// the last one per address, and the highest row id seen.
    pub async fn own_writes_since(
        &self,
        tenant_id: TenantId,
        after: i64,
    ) -> Result<(HashMap<String, OwnWrite>, i64)> {
        let rows = sqlx::query(
            "SELECT id, email_key, status_written FROM ledger WHERE tenant_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(tenant_id)
        .bind(after)
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::new();
        let mut max = after;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let key: String = r.try_get("email_key")?;
            out.insert(key, super::records::own_write(r.try_get("status_written")?));
            max = max.max(id);
        }
        Ok((out, max))
    }
}
