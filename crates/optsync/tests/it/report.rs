//! `optsync report` on a known set of opt-outs, on a fixed clock: its counts and percentiles
//! are the ones this test computes on its own, and the CLI's JSON, CSV and table say the
//! same as the library.

use optsync::clock::{Millis, Now as _};
use std::time::Duration;

use keap::EmailStatus;
use optsync::clock::Clock;
use optsync::report::{Period, build};

use crate::processes::cli_with;
use crate::{Db, MASTER_KEY, Options, TestApp, on_both_backends};

/// Tuesday 2026-12-01 00:00 UTC.
const T0: u64 = 1_796_083_200_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// Posts an opt-out for a new contact; the worker honours it `after` later (never: left
/// pending). Returns the latency in ms, if honoured.
async fn opt_out(t: &TestApp, clock: &Clock, tag: &str, after: Option<Duration>) -> Option<i64> {
    // Keap posts for a contact that opted out: its stop status is there to honour.
    let (id, emails) = t.contact(tag, 2);
    t.sim
        .event(&emails[0], keap_sim::SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    let (s, _) = t.post(&[("contactId", &id.to_string())]).await;
    assert_eq!(s, 200);
    let after = after?;
    clock.advance(after);
    t.worker.drain().await.unwrap();
    Some(after.as_millis() as i64)
}

/// This test's own percentile: sort, take the ⌈p·n⌉-th.
fn percentile(mut v: Vec<i64>, p: f64) -> i64 {
    v.sort();
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.max(1) - 1]
}

async fn the_report_counts_what_happened(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let mut honoured = Vec::new();
    for i in 0..12u64 {
        let after = Duration::from_secs(5 + i * i * 13);
        honoured.extend(opt_out(&t, &clock, &format!("p{i}"), Some(after)).await);
        clock.advance(Duration::from_secs(60));
    }
    // Honoured after 50 hours: past the 48-hour mark, within 10 business days.
    honoured.extend(opt_out(&t, &clock, "late", Some(Duration::from_millis(50 * HOUR))).await);
    // Left waiting: not honoured.
    opt_out(&t, &clock, "waiting", None).await;
    let until = clock.now() + 1;

    let period = Period {
        app: Some(t.app.clone()),
        since: Millis(T0 as i64),
        until,
    };
    let r = build(&t.state.store, &period).await.unwrap();
    let s = &r.summary;
    assert_eq!((s.count, s.honoured, s.not_honoured), (14, 13, 1));
    assert_eq!(s.p50_ms, Some(percentile(honoured.clone(), 0.50)));
    assert_eq!(s.p99_ms, Some(percentile(honoured.clone(), 0.99)));
    let within_48h = honoured.iter().filter(|&&l| l <= 48 * HOUR as i64).count();
    assert_eq!(s.within_48h, within_48h);
    assert_eq!(within_48h, 12);
    assert_eq!(s.within_10_business_days, 13);
    assert!((s.share_within_48h - 12.0 / 14.0).abs() < 1e-9);
    let waiting = r.opt_outs.iter().find(|l| l.honoured_at.is_none()).unwrap();
    assert!(
        waiting.why_not.as_deref().unwrap().starts_with("pending"),
        "{waiting:?}"
    );
    let first = &r.opt_outs[0];
    assert_eq!(
        first.addresses.len(),
        2,
        "each address of the contact: {first:?}"
    );

    // The CLI says the same.
    let args = |fmt: &'static str| -> Vec<String> {
        vec![
            "report".into(),
            t.app.clone(),
            "--since".into(),
            "2026-11-30".into(),
            "--until".into(),
            optsync::clock::rfc3339(until),
            "--format".into(),
            fmt.into(),
        ]
    };
    let run = |fmt: &'static str| {
        let a = args(fmt);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let env = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
        let (ok, out, err) = cli_with(t.dir.path(), &t.database_url, &refs, &env);
        assert!(ok, "{err}");
        out
    };
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json["summary"]["count"], 14);
    assert_eq!(json["summary"]["p99_ms"], s.p99_ms.unwrap());
    let csv = run("csv");
    let rows = csv.lines().count() - 1;
    assert_eq!(
        rows,
        13 * 2 + 1,
        "a row per address, one for the one not honoured yet"
    );
    let table = run("table");
    assert!(
        table.contains("opt-outs: 14 (13 honoured, 1 not)"),
        "{table}"
    );
}
on_both_backends!(the_report_counts_what_happened);

/// An address is outside data: in the CSV a cell a spreadsheet would run as a formula is
/// neutralised with a leading `'`; the JSON keeps the data as it is.
async fn csv_cells_are_neutralised_against_formulas(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let evil = "=HYPERLINK(\"x\")@relay.example";
    let (s, body) = t.post(&[("EmailAddress2", evil)]).await;
    assert_eq!(s, 200, "{body}");
    let period = Period {
        app: Some(t.app.clone()),
        since: Millis(T0 as i64),
        until: clock.now() + 1,
    };
    let r = build(&t.state.store, &period).await.unwrap();
    assert_eq!(
        r.opt_outs[0].email.as_deref(),
        Some(evil),
        "the data is kept"
    );
    let csv = optsync::report::to_csv(&r).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[5], format!("'{evil}"), "{csv}");
    assert!(
        row.iter().all(|c| !c.starts_with(['=', '+', '-', '@'])),
        "{csv}"
    );
}
on_both_backends!(csv_cells_are_neutralised_against_formulas);

/// CAN-SPAM's ten business days, counted across weekends end to end (store, report, CLI): an
/// opt-out received on Friday at noon and honoured fourteen days later less an hour is in
/// time (more than ten calendar days), one received on Saturday at noon and honoured
/// thirteen days and an hour later is not (fewer than fourteen calendar days: its ten
/// business days ended on the second Friday at noon).
async fn ten_business_days_are_counted_across_weekends(db: Db) {
    let friday_noon = T0 + 3 * DAY + 12 * HOUR;
    let clock = Clock::manual(friday_noon);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let (fri, fri_emails) = t.contact("fri", 2);
    t.sim
        .event(&fri_emails[0], keap_sim::SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    assert_eq!(t.post(&[("contactId", &fri.to_string())]).await.0, 200);
    clock.advance(Duration::from_millis(DAY));
    let (sat, sat_emails) = t.contact("sat", 2);
    t.sim
        .event(&sat_emails[0], keap_sim::SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    assert_eq!(t.post(&[("contactId", &sat.to_string())]).await.0, 200);
    // Friday two weeks on, 11:00: the first job (Friday's) only.
    clock.advance(Duration::from_millis(13 * DAY - HOUR));
    assert!(t.worker.run_once().await.unwrap().is_some());
    assert_eq!(honoured(&t).await, vec![fri]);
    // 13:00: Saturday's.
    clock.advance(Duration::from_millis(2 * HOUR));
    t.worker.drain().await.unwrap();
    assert_eq!(honoured(&t).await, vec![fri, sat]);

    let until = clock.now() + 1;
    let period = Period {
        app: Some(t.app.clone()),
        since: Millis(T0 as i64),
        until,
    };
    let s = build(&t.state.store, &period).await.unwrap().summary;
    assert_eq!((s.count, s.honoured), (2, 2));
    assert_eq!(s.within_48h, 0);
    assert_eq!(s.within_10_business_days, 1, "Friday's only");
    let until = optsync::clock::rfc3339(until);
    let args = [
        "report",
        "acme",
        "--since",
        "2026-12-01",
        "--until",
        until.as_str(),
        "--format",
        "json",
    ];
    let env = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    let (ok, out, err) = cli_with(t.dir.path(), &t.database_url, &args, &env);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["within_10_business_days"], 1, "{json}");
    let late: Vec<_> = json["opt_outs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["contact_id"] == sat)
        .collect();
    assert!(!late.is_empty(), "{json}");
}
on_both_backends!(ten_business_days_are_counted_across_weekends);

/// The contacts whose opt-out has been honoured, in the order they were received.
async fn honoured(t: &TestApp) -> Vec<i64> {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT contact_id FROM events WHERE honoured_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(t.state.store.pool())
    .await
    .unwrap()
    .into_iter()
    .flatten()
    .collect()
}
