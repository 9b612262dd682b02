//! The claim's cost follows the due jobs, not the tenants: SQLite's plan for it reads
//! `jobs_ready` and looks each due job's tenant up by key, and the claimed tenant's next turn
//! is one probe of `tenants_claim_turn`. Nothing in either scans a table.

use super::claim::{NEXT_TURN, claim_next_sql};
use super::{Backend, Store};

/// SQLite's plan for `sql`, its `binds` parameters bound to zero: one line per step.
async fn plan(store: &Store, sql: &str, binds: usize) -> Vec<String> {
    use sqlx::Row as _;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
    for _ in 0..binds {
        q = q.bind(0_i64);
    }
    q.fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>("detail").unwrap())
        .collect()
}

#[tokio::test]
async fn the_claim_reads_the_due_jobs_and_never_scans() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let claim = plan(&store, claim_next_sql(Backend::Sqlite), 3).await;
    assert!(
        claim.iter().any(|l| l.contains("USING INDEX jobs_ready")),
        "{claim:#?}"
    );
    let turn = plan(&store, NEXT_TURN, 1).await;
    assert!(
        turn.iter().any(|l| l.contains("tenants_claim_turn")),
        "{turn:#?}"
    );
    for line in claim.iter().chain(&turn) {
        assert!(!line.starts_with("SCAN"), "a scan in the claim: {line}");
    }
}
