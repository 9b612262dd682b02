//! The compliance report as a page: the same numbers as `optsync report`.

use super::auth::Session;
use super::format::{dur, when};
use super::views::{ReportPage, ReportRow};
use crate::clock::rfc3339;
use crate::report::{Period, Report, summary_lines};

pub fn page(s: Session, p: &Period, r: &Report, query: String) -> ReportPage {
    let rows = r
        .opt_outs
        .iter()
        .map(|l| ReportRow {
            received: rfc3339(l.received_at),
            honoured: when(l.honoured_at),
            latency: dur(l.latency_ms),
            app: l.app.clone(),
            source: l.source.to_string(),
            kind: l.kind.to_string(),
            contact: l.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            addresses: l.addresses_text(),
            why: l.why_not.clone().unwrap_or_default(),
        })
        .collect();
    ReportPage {
        csrf: s.csrf,
        user: s.user,
        since: rfc3339(p.since),
        until: rfc3339(p.until),
        app: p.app.clone().unwrap_or_default(),
        query,
        summary: summary_lines(&r.summary),
        rows,
    }
}
