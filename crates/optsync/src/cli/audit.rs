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
        "audit", "tenant", "contact", "email", "events", "before", "after", "action", "path",
        "calls", "received", "honoured",
    ]);
    for e in rows {
        let r = e.row;
        t.row(vec![
            e.id.to_string(),
            e.app.unwrap_or_else(|| format!("#{}", r.tenant_id)),
            r.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            r.email,
            r.event_ids,
            r.status_before.unwrap_or_default(),
            r.status_after.unwrap_or_default(),
            r.action.to_string(),
            r.path.map(|p| p.to_string()).unwrap_or_default(),
            r.keap_calls.to_string(),
            rfc3339(r.received_at),
            rfc3339(r.honoured_at),
        ]);
    }
    t.print();
    Ok(())
}
