//! Every tenant's time to honour over several periods in one query: how many opt-outs were
//! honoured and the nearest-rank 50th and 99th percentile of the time each took. The
//! compliance report computes the same numbers from its lines for one app and one period;
//! the overview needs them for every app and two periods, and reading every line of every
//! app twice to compute them would cost a report per app per load.

use super::model::EventKind;
use super::{Store, TenantId};
use crate::clock::Millis;
use crate::error::Result;

/// One tenant's honoured opt-outs received in one of the periods asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct HonourTimes {
    pub tenant_id: TenantId,
    /// The period's index in the slice asked for.
    pub period: i64,
    pub honoured: i64,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

/// The honoured events of `kinds` received in each period (`$2k+1 <= received_at <
/// $2k+2`), each with its period's index and its time to honour (never negative, as the
/// report counts it); ranked within its tenant and period. The nearest rank ⌈p·n⌉ is
/// `(p·n + 99) / 100` in integers for a percentage p, the same rank the report takes.
fn sql(kinds: &[EventKind], periods: usize) -> String {
    // The kinds' fixed names, never input.
    let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
    let per_period: Vec<String> = (0..periods)
        .map(|i| {
            format!(
                "SELECT e.tenant_id, {i} AS period,
                        CASE WHEN e.honoured_at > e.received_at
                             THEN e.honoured_at - e.received_at ELSE 0 END AS ms
                   FROM events e
                  WHERE e.honoured_at IS NOT NULL AND e.received_at >= ${} AND e.received_at < ${}
                    AND e.kind IN ({})",
                2 * i + 1,
                2 * i + 2,
                names.join(", ")
            )
        })
        .collect();
    format!(
        "WITH h AS ({}),
         r AS (SELECT tenant_id, period, ms,
                      ROW_NUMBER() OVER (PARTITION BY tenant_id, period ORDER BY ms) AS rn,
                      COUNT(*) OVER (PARTITION BY tenant_id, period) AS n
                 FROM h)
         SELECT tenant_id, period, MAX(n) AS honoured,
                MAX(CASE WHEN rn = (50 * n + 99) / 100 THEN ms END) AS p50_ms,
                MAX(CASE WHEN rn = (99 * n + 99) / 100 THEN ms END) AS p99_ms
           FROM r GROUP BY tenant_id, period ORDER BY tenant_id, period",
        per_period.join(" UNION ALL ")
    )
}

impl Store {
    /// For each tenant and each `[since, until)` period (epoch ms) in which it honoured an
    /// event of `kinds`: how many, p50 and p99. A tenant and period with none is absent.
    pub async fn honour_times(
        &self,
        kinds: &[EventKind],
        periods: &[(Millis, Millis)],
    ) -> Result<Vec<HonourTimes>> {
        if periods.is_empty() || kinds.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql(kinds, periods.len())));
        for &(since, until) in periods {
            q = q.bind(since).bind(until);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }
}
