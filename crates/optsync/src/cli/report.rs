//! `optsync report`: the compliance report for a period, as a table, CSV or JSON.

use anyhow::{Context, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::table::Table;
use crate::app::App;
use crate::clock::rfc3339;
use crate::report::{OptOutLine, Period, Report, Summary, build};

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

/// Epoch ms of a day (00:00 UTC) or an RFC 3339 instant.
fn parse_date(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let t = match time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        Ok(d) => d.midnight().assume_utc(),
        Err(_) => OffsetDateTime::parse(s, &Rfc3339)
            .with_context(|| format!("{s:?} is neither YYYY-MM-DD nor an RFC 3339 instant"))?,
    };
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub async fn run(app: &App, a: ReportArgs) -> anyhow::Result<()> {
    if let Some(name) = &a.app {
        app.tenants().get(name).await?;
    }
    let since = parse_date(&a.since)?;
    let until = match &a.until {
        Some(u) => parse_date(u)?,
        None => app.state().clock.epoch_ms(),
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
        "csv" => print_csv(&report)?,
        _ => print_table(&report),
    }
    Ok(())
}

fn seconds(ms: Option<i64>) -> String {
    ms.map(|m| format!("{:.3}", m as f64 / 1000.0))
        .unwrap_or_default()
}

fn print_csv(r: &Report) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record([
        "app",
        "event",
        "source",
        "kind",
        "contact",
        "event_email",
        "address",
        "action",
        "received",
        "honoured",
        "latency_s",
        "why_not",
    ])?;
    for l in &r.opt_outs {
        let base = |address: &str, action: &str| {
            vec![
                l.app.clone(),
                l.event_id.to_string(),
                l.source.to_string(),
                l.kind.to_string(),
                l.contact_id.map(|c| c.to_string()).unwrap_or_default(),
                l.email.clone().unwrap_or_default(),
                address.to_string(),
                action.to_string(),
                rfc3339(l.received_at),
                l.honoured_at.map(rfc3339).unwrap_or_default(),
                seconds(l.latency_ms),
                l.why_not.clone().unwrap_or_default(),
            ]
        };
        if l.addresses.is_empty() {
            w.write_record(base("", ""))?;
        }
        for a in &l.addresses {
            w.write_record(base(&a.email, a.action.as_str()))?;
        }
    }
    w.flush()?;
    Ok(())
}

fn summary_lines(s: &Summary) -> Vec<String> {
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    vec![
        format!(
            "opt-outs: {} ({} honoured, {} not)",
            s.count, s.honoured, s.not_honoured
        ),
        format!(
            "time to honour: p50 {} s, p99 {} s",
            seconds(s.p50_ms),
            seconds(s.p99_ms)
        ),
        format!(
            "honoured within 48 h: {} ({}); within 10 business days: {} ({})",
            s.within_48h,
            pct(s.share_within_48h),
            s.within_10_business_days,
            pct(s.share_within_10_business_days)
        ),
    ]
}

fn addresses(l: &OptOutLine) -> String {
    l.addresses
        .iter()
        .map(|a| format!("{} {}", a.email, a.action))
        .collect::<Vec<_>>()
        .join("; ")
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
            addresses(l),
            l.why_not.clone().unwrap_or_default(),
        ]);
    }
    t.print();
}
