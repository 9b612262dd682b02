//! The compliance report as a page: the same numbers as `optsync report`, for a period
//! picked with two date pickers (first and last day, both included, in UTC).

use time::Date;
use time::macros::format_description;

use super::auth::Session;
use super::format::{
    contact_in_words, day, decision_in_words, dur, event_in_words, moment, why_not_in_words,
};
use super::forms::ReportQuery;
use super::views::{ReportPage, ReportRow};
use crate::clock::Millis;
use crate::report::{Period, Report, summary_lines};

const DAY_MS: i64 = 86_400_000;
/// The period shown when the form leaves a day empty: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

/// Epoch ms of the start of a day as a date picker sends it (`2026-11-30`), or, for a link
/// written by hand, an RFC 3339 instant taken as it is. `None`: the field was left empty.
fn parse_day(field: &str, v: &str) -> Result<Option<(Millis, bool)>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = Date::parse(v, format_description!("[year]-[month]-[day]")) {
        let ms = (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        return Ok(Some((Millis(ms), true)));
    }
    crate::report::parse_date(v)
        .map(|ms| Some((ms, false)))
        .map_err(|_| format!("The {field} date “{v}” is not a date: pick one from the calendar."))
}

/// The period a report form asks for, or what is wrong with it, in a sentence. The last
/// day is included: its end is the next day's start.
pub fn period(now: Millis, q: &ReportQuery) -> Result<Period, String> {
    let since = parse_day("first", &q.since)?.map_or(now - DEFAULT_DAYS * DAY_MS, |(ms, _)| ms);
    let until = match parse_day("last", &q.until)? {
        Some((ms, true)) => ms + DAY_MS,
        Some((ms, false)) => ms,
        None => now + 1,
    };
    if until <= since {
        return Err("The period must end on or after the day it starts.".into());
    }
    let app = Some(q.app.trim().to_string()).filter(|a| !a.is_empty());
    Ok(Period { app, since, until })
}

pub fn page(s: Session, p: &Period, r: &Report, query: String) -> ReportPage {
    let rows = r
        .opt_outs
        .iter()
        .map(|l| ReportRow {
            received: moment(Some(l.received_at)),
            honoured: moment(l.honoured_at),
            latency: dur(l.latency_ms),
            app: l.app.clone(),
            what: event_in_words(l.source, l.kind),
            contact: contact_in_words(l.contact_id),
            addresses: l
                .addresses
                .iter()
                .map(|a| (a.email.clone(), decision_in_words(a.action)))
                .collect(),
            why: l
                .why_not
                .as_deref()
                .map(why_not_in_words)
                .unwrap_or_default(),
        })
        .collect();
    ReportPage {
        csrf: s.csrf,
        user: s.user,
        since: day(p.since),
        // The last day shown is the one the period's end closes.
        until: day(p.until - 1),
        app: p.app.clone().unwrap_or_default(),
        error: None,
        query,
        summary: summary_lines(&r.summary),
        rows,
    }
}

/// The form as it was sent, with why its period was refused, and no report.
pub fn refused(s: Session, q: &ReportQuery, why: String) -> ReportPage {
    ReportPage {
        csrf: s.csrf,
        user: s.user,
        since: q.since.trim().to_string(),
        until: q.until.trim().to_string(),
        app: q.app.trim().to_string(),
        error: Some(why),
        query: String::new(),
        summary: Vec::new(),
        rows: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T12:17:07.514Z
    const NOW: Millis = Millis(1_796_041_027_514);

    fn q(since: &str, until: &str) -> ReportQuery {
        ReportQuery {
            since: since.into(),
            until: until.into(),
            app: String::new(),
        }
    }

    #[test]
    fn both_days_are_included() {
        let p = period(NOW, &q("2026-11-30", "2026-11-30")).unwrap();
        assert_eq!(day(p.since), "2026-11-30");
        assert_eq!(p.until - p.since, DAY_MS);
    }

    #[test]
    fn empty_fields_are_the_last_30_days() {
        let p = period(NOW, &q("", "")).unwrap();
        assert_eq!((p.since, p.until), (NOW - 30 * DAY_MS, NOW + 1));
    }

    #[test]
    fn bad_dates_are_refused_in_a_sentence() {
        let e = period(NOW, &q("2026-02-30", "")).unwrap_err();
        assert!(e.contains("“2026-02-30” is not a date"), "{e}");
        let e = period(NOW, &q("2026-11-30", "2026-11-29")).unwrap_err();
        assert!(e.starts_with("The period must end"), "{e}");
    }
}
