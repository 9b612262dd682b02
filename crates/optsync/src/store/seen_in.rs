//! Which tenants have seen an address: an event or a decision naming it, the sweep's index
//! of contacts' addresses, or the ledger of optsync's own writes. The console's live lookup
//! asks Keap only in these apps, so looking one address up costs a few Keap calls, not a
//! read in every app an instance serves.

use super::Store;
use super::tenants::{TENANT_COLUMNS, TenantRow, row as tenant_row};
use crate::error::Result;

impl Store {
    /// The tenants where `email` (any letter case; `key` is its case-folded form) has been
    /// seen, ordered by app. Events and decisions are found through their `LOWER(email)`
    /// indexes; the sweep's index and the ledger, keyed by tenant first, by one probe of
    /// each tenant's part (a thousand probes, not a scan of every app's contacts).
    pub async fn tenants_that_saw(&self, email: &str, key: &str) -> Result<Vec<TenantRow>> {
        let sql = format!(
            "SELECT {TENANT_COLUMNS} FROM tenants t
              WHERE t.id IN (SELECT tenant_id FROM events WHERE LOWER(email) = LOWER($1)
                             UNION SELECT tenant_id FROM audit WHERE LOWER(email) = LOWER($1))
                 OR EXISTS (SELECT 1 FROM contact_addresses c
                             WHERE c.tenant_id = t.id AND c.email_key = $2)
                 OR EXISTS (SELECT 1 FROM ledger l WHERE l.tenant_id = t.id AND l.email_key = $2)
              ORDER BY t.app"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .bind(key)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(tenant_row).collect()
    }
}
