//! The compliance report: every opt-out received in a period — its source, contact and each
//! address with what was done about it, when it arrived, when it was honoured and how long
//! that took — and a summary: how many, the p50/p99 time to honour, the share honoured
//! within 48 hours (Gmail and Yahoo's bulk-sender rule) and within 10 business days
//! (CAN-SPAM), and those not honoured with the reason. `optsync report` prints it; the
//! console shows the same numbers.
//!
//! An opt-out is an event that asks for a stop: Keap's post, a provider's unsubscribe,
//! complaint, hard bounce or suppression echo, or a discrepancy a sweep found. Fan-out to
//! other contacts sharing an address is part of honouring the first, not a row of its own.
//! Percentiles are nearest-rank over the honoured ones: p = the ⌈p·n⌉-th smallest.

use crate::clock::Millis;
use serde::Serialize;

use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::store::{
    AuditAction, EventId, EventKind, EventSource, EventSummary, JobAddress, JobId, JobState, Store,
    SuppressionRow,
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The event kinds that ask for a stop.
pub const OPT_OUT_KINDS: [EventKind; 6] = [
    EventKind::OptOut,
    EventKind::Unsubscribe,
    EventKind::Complaint,
    EventKind::HardBounce,
    EventKind::Suppressed,
    EventKind::Discrepancy,
];

/// Which opt-outs: one app or all, received in `[since, until)` (epoch ms).
#[derive(Debug, Clone)]
pub struct Period {
    pub app: Option<String>,
    pub since: Millis,
    pub until: Millis,
}

/// One address of an opt-out and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressOutcome {
    pub email: String,
    pub action: AuditAction,
}

/// One address put on a sending provider's own list because of an opt-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressedAt {
    pub email: String,
    /// The provider's name (`sendgrid`, …).
    pub provider: &'static str,
    /// Every list written (regions, domains, streams, …).
    pub scope: String,
    /// When the provider's read showed it.
    pub suppressed_at: Millis,
    /// From the opt-out's arrival to then: time to suppressed, beside time to honoured.
    pub after_ms: i64,
    #[serde(skip)]
    title: &'static str,
}

/// One opt-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptOutLine {
    pub app: String,
    pub event_id: EventId,
    #[serde(skip)]
    job_id: Option<JobId>,
    pub source: EventSource,
    pub kind: EventKind,
    pub contact_id: Option<i64>,
    /// The address the event named, if it named one.
    pub email: Option<String>,
    pub addresses: Vec<AddressOutcome>,
    pub received_at: Millis,
    pub honoured_at: Option<Millis>,
    pub latency_ms: Option<i64>,
    /// For one not honoured: its job's state and last error.
    pub why_not: Option<String>,
    /// Where its addresses were suppressed at the sending providers, and when.
    pub suppressed: Vec<SuppressedAt>,
    #[serde(skip)]
    blocked: bool,
}

impl OptOutLine {
    /// Each address and what was done about it, as one line: `a@x.example opted_out,
    /// suppressed at SendGrid after 1.2 s; …`; an address of a job no Keap path could do
    /// reads `blocked in Keap, suppressed at SendGrid …`.
    pub fn addresses_text(&self) -> String {
        let mut parts: Vec<String> = self
            .addresses
            .iter()
            .map(|a| format!("{} {}{}", a.email, a.action, self.suppressed_text(&a.email)))
            .collect();
        let keap = if self.blocked { "blocked in Keap" } else { "" };
        for s in &self.suppressed {
            let known = |e: &String| e.eq_ignore_ascii_case(&s.email);
            if !self.addresses.iter().any(|a| known(&a.email))
                && !parts
                    .iter()
                    .any(|p| p.starts_with(&format!("{} ", s.email)))
            {
                let said = self.suppressed_text(&s.email);
                parts.push(format!("{} {keap}{said}", s.email).replace(" , ", " "));
            }
        }
        parts.join("; ")
    }

    /// `, suppressed at SendGrid after 1.2 s, at SES after 2.0 s` for one address.
    fn suppressed_text(&self, email: &str) -> String {
        self.suppressed
            .iter()
            .filter(|s| s.email.eq_ignore_ascii_case(email))
            .enumerate()
            .map(|(i, s)| {
                let lead = if i == 0 { ", suppressed at" } else { ", at" };
                format!(
                    "{lead} {} after {:.1} s",
                    s.title,
                    s.after_ms as f64 / 1000.0
                )
            })
            .collect()
    }
}

/// The period's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub honoured: usize,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub within_48h: usize,
    pub within_10_business_days: usize,
    /// Shares of `count` (0 when there is none).
    pub share_within_48h: f64,
    pub share_within_10_business_days: f64,
    pub not_honoured: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: Millis,
    pub until: Millis,
    pub app: Option<String>,
    pub summary: Summary,
    pub opt_outs: Vec<OptOutLine>,
}

/// Builds the report for a period.
pub async fn build(store: &Store, period: &Period) -> Result<Report> {
    let app = period.app.as_deref();
    let rows = store
        .opt_out_rows(app, &OPT_OUT_KINDS, period.since, period.until)
        .await?;
    let addresses = store
        .opt_out_addresses(app, &OPT_OUT_KINDS, period.since, period.until)
        .await?;
    let suppressions = store.suppressions_since(app, period.since).await?;
    let lines: Vec<OptOutLine> = rows
        .into_iter()
        .map(|r| with_suppressions(line(r, &addresses), &suppressions))
        .collect();
    Ok(Report {
        since: period.since,
        until: period.until,
        app: period.app.clone(),
        summary: summarise(&lines),
        opt_outs: lines,
    })
}

fn line(r: EventSummary, addresses: &[JobAddress]) -> OptOutLine {
    let why_not = match (r.honoured_at, r.job_state) {
        (Some(_), _) => None,
        (None, Some(state)) => Some(match r.last_error {
            Some(e) => format!("{state}: {e}"),
            None => state.to_string(),
        }),
        (None, None) => Some("no job".into()),
    };
    OptOutLine {
        addresses: addresses
            .iter()
            .filter(|a| Some(a.job_id) == r.job_id)
            .map(|a| AddressOutcome {
                email: a.email.clone(),
                action: a.action,
            })
            .collect(),
        latency_ms: r.honoured_at.map(|h| (h - r.received_at).max(0)),
        app: r.app,
        event_id: r.id,
        source: r.source,
        kind: r.kind,
        contact_id: r.contact_id,
        email: r.email,
        received_at: r.received_at,
        honoured_at: r.honoured_at,
        blocked: r.job_state == Some(JobState::Blocked),
        job_id: r.job_id,
        why_not,
        suppressed: Vec::new(),
    }
}

/// The line with the suppressions its opt-out asked for (pushed by its job), or of the
/// addresses it names, made after it arrived.
fn with_suppressions(mut l: OptOutLine, all: &[(String, SuppressionRow)]) -> OptOutLine {
    let names = |email: &str| {
        l.email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(email))
            || l.addresses
                .iter()
                .any(|a| a.email.eq_ignore_ascii_case(email))
    };
    l.suppressed = all
        .iter()
        .filter(|(app, s)| {
            let ours = s.origin_job.is_some() && s.origin_job == l.job_id;
            (ours || (*app == l.app && names(&s.email))) && s.suppressed_at >= l.received_at
        })
        .map(|(_, s)| SuppressedAt {
            email: s.email.clone(),
            provider: s.provider.name(),
            title: s.provider.title(),
            scope: s.scope.clone(),
            suppressed_at: s.suppressed_at,
            after_ms: s.suppressed_at - l.received_at,
        })
        .collect();
    l
}

/// The summary of a set of opt-outs.
pub fn summarise(lines: &[OptOutLine]) -> Summary {
    let mut latencies: Vec<i64> = lines.iter().filter_map(|l| l.latency_ms).collect();
    latencies.sort_unstable();
    let within = |ok: &dyn Fn(&OptOutLine, Millis) -> bool| {
        lines
            .iter()
            .filter(|l| l.honoured_at.is_some_and(|h| ok(l, h)))
            .count()
    };
    let within_48h = within(&|l, h| h - l.received_at <= 48 * HOUR_MS);
    let within_10bd = within(&|l, h| h <= business_days_after(l.received_at, 10));
    let share = |n: usize| {
        if lines.is_empty() {
            0.0
        } else {
            n as f64 / lines.len() as f64
        }
    };
    Summary {
        count: lines.len(),
        honoured: latencies.len(),
        p50_ms: nearest_rank(&latencies, 0.50),
        p99_ms: nearest_rank(&latencies, 0.99),
        within_48h,
        within_10_business_days: within_10bd,
        share_within_48h: share(within_48h),
        share_within_10_business_days: share(within_10bd),
        not_honoured: lines.len() - latencies.len(),
    }
}

/// The nearest-rank percentile of sorted values: the ⌈p·n⌉-th smallest.
pub fn nearest_rank(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// `days` business days (Monday to Friday, UTC) after `at`: the same time of day on the
/// day reached by counting only weekdays.
pub fn business_days_after(at: Millis, days: u32) -> Millis {
    let mut t = at.as_i64();
    let mut left = days;
    while left > 0 {
        t += DAY_MS;
        // 1970-01-01 was a Thursday: day 0 → 3 (Mon = 0).
        let weekday = (t.div_euclid(DAY_MS) + 3).rem_euclid(7);
        if weekday < 5 {
            left -= 1;
        }
    }
    Millis(t)
}

/// Epoch ms of a day (`YYYY-MM-DD`, from 00:00 UTC) or an RFC 3339 instant.
pub fn parse_date(s: &str) -> Result<Millis> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let t = match time::Date::parse(s, day) {
        Ok(d) => d.midnight().assume_utc(),
        Err(_) => OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            Error::BadInput(format!(
                "{s:?} is neither YYYY-MM-DD nor an RFC 3339 instant"
            ))
        })?,
    };
    Ok(Millis((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// Milliseconds as seconds with three decimals (empty for none).
pub fn seconds(ms: Option<i64>) -> String {
    ms.map(|m| format!("{:.3}", m as f64 / 1000.0))
        .unwrap_or_default()
}

/// The summary in sentences, as the CLI's table and the console show it.
pub fn summary_lines(s: &Summary) -> Vec<String> {
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

/// A cell as a spreadsheet will take it as text: one starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return would be read as a formula (addresses and provider fields come
/// from outside), so it gets a leading `'`. The JSON report keeps the data as it is.
pub fn csv_cell(value: String) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value
    }
}

/// One CSV row per address of each opt-out (one with the address empty for an opt-out that
/// acted on none yet); times RFC 3339, latency in seconds.
pub fn to_csv(r: &Report) -> Result<String> {
    let csv_err = |e: csv::Error| Error::Config(format!("writing CSV: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
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
    ])
    .map_err(csv_err)?;
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
        let row = |cells: Vec<String>| cells.into_iter().map(csv_cell);
        if l.addresses.is_empty() {
            w.write_record(row(base("", ""))).map_err(csv_err)?;
        }
        for a in &l.addresses {
            w.write_record(row(base(&a.email, a.action.as_str())))
                .map_err(csv_err)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Config(format!("writing CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Config(format!("writing CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_neutralised() {
        for bad in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(bad.into()), format!("'{bad}"));
        }
        assert_eq!(csv_cell("ann@example.com".into()), "ann@example.com");
        assert_eq!(csv_cell(String::new()), "");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50));
        assert_eq!(nearest_rank(&v, 0.99), Some(99));
        assert_eq!(nearest_rank(&[7], 0.99), Some(7));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn business_days_skip_weekends() {
        // 2026-11-27 was a Friday; ten business days later is Friday 2026-12-11.
        let fri = Millis(1_795_737_600_000); // 2026-11-27T00:00:00Z
        assert_eq!(business_days_after(fri, 1), fri + 3 * DAY_MS, "Monday");
        assert_eq!(business_days_after(fri, 10), fri + 14 * DAY_MS);
    }
}
