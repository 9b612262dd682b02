//! `optsync report`: the compliance report for a period, as a table, CSV or JSON.

use crate::clock::Now as _;
use anyhow::bail;

use super::table::Table;
use crate::app::App;
use crate::clock::rfc3339;
use crate::report::{Period, Report, build, parse_date, seconds, summary_lines, to_csv};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The app (every app when omitted).
    app: Option<String>,
    /// Start of the period: a day (YYYY-MM-DD, from 00:00 UTC) or an RFC 3339 instant.
    #[arg(long, value_name = "DATE")]
    since: String,
    /// End of the period, exclusive, in the same forms (default: now).
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// table: the summary and one line per opt-out; csv: one row per address of each
    /// opt-out (times RFC 3339, latency in seconds); json: the report (times in epoch ms).
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    format: String,
}

pub async fn run(app: &App, a: ReportArgs) -> anyhow::Result<()> {
    if let Some(name) = &a.app {
        app.tenants().get(name).await?;
    }
    let since = parse_date(&a.since)?;
    let until = match &a.until {
        Some(u) => parse_date(u)?,
        None => app.state().clock.now(),
    };
    if until <= since {
        bail!("--until must be after --since");
    }
    let period = Period {
        app: a.app.clone(),
        since,
        until,
    };
    let report = build(app.store(), &period).await?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        "csv" => print!("{}", to_csv(&report)?),
        _ => print_table(&report),
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "compliance report {} — {}, {}",
        rfc3339(r.since),
        rfc3339(r.until),
        r.app.as_deref().unwrap_or("every app")
    );
    for line in summary_lines(&r.summary) {
        println!("{line}");
    }
    println!();
    let mut t = Table::new(&[
        "received",
        "honoured",
        "latency s",
        "app",
        "source",
        "kind",
        "contact",
        "addresses",
        "not honoured because",
    ]);
    for l in &r.opt_outs {
        t.row(vec![
            rfc3339(l.received_at),
            l.honoured_at.map(rfc3339).unwrap_or_default(),
            seconds(l.latency_ms),
            l.app.clone(),
            l.source.to_string(),
            l.kind.to_string(),
            l.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            l.addresses_text(),
            l.why_not.clone().unwrap_or_default(),
        ]);
    }
    t.print();
}
