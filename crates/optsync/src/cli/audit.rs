//! `optsync audit`.

use super::table::Table;
use super::tenant_id;
use crate::app::App;
use crate::clock::rfc3339;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[arg(long)]
    tenant: Option<String>,
    /// Only this address.
    #[arg(long)]
    email: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

pub async fn run(app: &App, a: AuditArgs) -> anyhow::Result<()> {
    let tid = tenant_id(app, a.tenant.as_deref()).await?;
    let rows = app
        .store()
        .audit(tid, a.email.as_deref(), a.limit.clamp(1, 10_000))
        .await?;
    let mut t = Table::new(&[
        "audit", "tenant", "contact", "email", "events", "before", "after", "action", "rule",
        "path", "proof", "calls", "received", "honoured",
    ]);
    for e in rows {
        let d = e.decision;
        let status = |s: Option<keap::EmailStatus>| s.map(|s| s.type_name()).unwrap_or_default();
        let events: Vec<String> = e.event_ids.iter().map(|i| i.to_string()).collect();
        t.row(vec![
            e.id.to_string(),
            e.app.unwrap_or_else(|| format!("#{}", e.tenant_id)),
            d.contact.map(|c| c.to_string()).unwrap_or_default(),
            d.email.map(|m| m.to_string()).unwrap_or_default(),
            events.join(","),
            status(d.before).into(),
            status(d.after).into(),
            d.action.to_string(),
            d.rule.map(|r| r.to_string()).unwrap_or_default(),
            d.write.map(|w| w.path.to_string()).unwrap_or_default(),
            d.write.map(|w| w.proof.to_string()).unwrap_or_default(),
            d.keap_calls.to_string(),
            rfc3339(e.received_at),
            rfc3339(e.honoured_at),
        ]);
    }
    t.print();
    suppressions(app, tid, a.email.as_deref(), a.limit.clamp(1, 10_000)).await
}

/// Where the same addresses were put on the sending providers' own lists, and when: time to
/// suppressed beside the audit's time to honoured.
async fn suppressions(
    app: &App,
    tenant: Option<crate::store::TenantId>,
    email: Option<&str>,
    limit: i64,
) -> anyhow::Result<()> {
    let rows = app.store().suppressions(tenant, email, limit).await?;
    if rows.is_empty() {
        return Ok(());
    }
    println!();
    let mut t = Table::new(&[
        "suppressed",
        "tenant",
        "email",
        "provider",
        "scope",
        "verified",
        "requested",
        "after",
    ]);
    for (name, s) in rows {
        t.row(vec![
            rfc3339(s.suppressed_at),
            name,
            s.email,
            s.provider.title().into(),
            s.scope,
            if s.verified {
                "read back"
            } else {
                "no read call"
            }
            .into(),
            rfc3339(s.requested_at),
            format!(
                "{:.1} s",
                (s.suppressed_at - s.requested_at) as f64 / 1000.0
            ),
        ]);
    }
    t.print();
    Ok(())
}
