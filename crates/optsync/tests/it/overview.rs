//! Watching many apps: the console's overview reads every app's time to honour in one query
//! and must give the numbers the compliance report gives for each app and period; the
//! live address lookup asks Keap only in the apps where the address has been seen.

use std::time::Duration;

use keap::{EmailAddress, OptOutMethod};
use optsync::clock::{Clock, Millis};
use optsync::console::format::dur;
use optsync::providers::Provider;
use optsync::report::{Period, build};
use optsync::store::{
    EventKind, EventPayload, IndexedAddress, NewEvent, PageCommit, ProviderEvent, TenantId,
};
use optsync::tenant::{StoredCredential, TenantSpec};

use crate::{Db, KEY, Options, TestApp, on_both_backends};

/// Tuesday 2026-12-01 00:00 UTC.
const T0: u64 = 1_796_083_200_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn add_app(t: &TestApp, app: &str) -> TenantId {
    t.state
        .tenants
        .add(TenantSpec {
            app: app.into(),
            keap_base_url: t.sim.crm_url(),
            credential: StoredCredential::ApiKey { key: KEY.into() },
            legacy_auth: false,
            opt_out_method: OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    t.state.tenants.get(app).await.unwrap().id
}

/// Stores a provider event received at `received` and, if `latency` is given, marks it
/// honoured that long after (negative: an instance whose clock ran behind). The overview
/// and the report both read what is stored; the test sets what the worker would have.
async fn event(
    t: &TestApp,
    tenant: TenantId,
    n: usize,
    kind: EventKind,
    received: i64,
    latency: Option<i64>,
) {
    let address = EmailAddress::parse(&format!("p{tenant}.{n}@example.com")).unwrap();
    let payload = EventPayload::Provider(ProviderEvent {
        provider: Provider::Postmark,
        kind,
        address,
        id: Some(format!("{tenant}-{n}")),
    });
    let accepted = t
        .state
        .store
        .accept(&NewEvent::new(tenant, payload, Millis(received)))
        .await
        .unwrap();
    if let Some(ms) = latency {
        sqlx::query("UPDATE events SET honoured_at = $1 WHERE id = $2")
            .bind(received + ms)
            .bind(accepted.event_id.get())
            .execute(t.state.store.pool())
            .await
            .unwrap();
    }
}

/// A spread of opt-outs for one app: `count` of them over the last 35 days (some on the
/// periods' edges), latencies with ties, zeros and a negative one, every seventh not
/// honoured, and events of kinds that are not opt-outs.
async fn opt_outs(t: &TestApp, tenant: TenantId, count: usize, now: i64) {
    let kinds = [
        EventKind::Unsubscribe,
        EventKind::Complaint,
        EventKind::HardBounce,
        EventKind::Suppressed,
        EventKind::SoftBounce,
        EventKind::Resubscribe,
    ];
    let edges = [
        now - DAY,
        now - DAY - 1,
        now - 30 * DAY,
        now - 30 * DAY - 1,
        now,
    ];
    for n in 0..count {
        let received = match edges.get(n) {
            Some(&at) => at,
            None => now - (n as i64 * 7_919 * 60_000) % (35 * DAY),
        };
        let latency = match n % 7 {
            0 => None,
            1 => Some(-5_000),
            2 => Some(0),
            _ => Some(((n * n * 37) % 500) as i64 * 60_000 + (n % 3) as i64),
        };
        event(t, tenant, n, kinds[n % kinds.len()], received, latency).await;
    }
}

async fn the_overview_gives_each_apps_report_numbers(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let acme = t.state.tenants.get(&t.app).await.unwrap().id;
    let apps = [
        (acme, 2),
        (add_app(&t, "beta").await, 101),
        (add_app(&t, "gamma").await, 240),
        (add_app(&t, "quiet").await, 0),
    ];
    clock.advance(Duration::from_millis(40 * DAY as u64));
    let now = clock.epoch_ms();
    for &(tenant, count) in &apps {
        opt_outs(&t, tenant, count, now).await;
    }
    let (rows, _) = optsync::console::overview::rows(&t.state).await.unwrap();
    assert_eq!(rows.len(), apps.len());
    let store = &t.state.store;
    let kinds = &optsync::report::OPT_OUT_KINDS;
    let period = |days: i64| [(Millis(now - days * DAY), Millis(now + 1))];
    let day = store.honour_times(kinds, &period(1)).await.unwrap();
    let month = store.honour_times(kinds, &period(30)).await.unwrap();
    for row in &rows {
        let tenant = t.state.tenants.get(&row.app).await.unwrap().id;
        for (days, shown, times) in [(1, &row.day, &day), (30, &row.month, &month)] {
            let period = Period {
                app: Some(row.app.clone()),
                since: Millis(now - days * DAY),
                until: Millis(now + 1),
            };
            let s = build(&t.state.store, &period).await.unwrap().summary;
            let got = times.iter().find(|h| h.tenant_id == tenant);
            assert_eq!(
                (
                    got.map_or(0, |h| h.honoured as usize),
                    got.and_then(|h| h.p50_ms),
                    got.and_then(|h| h.p99_ms)
                ),
                (s.honoured, s.p50_ms, s.p99_ms),
                "{} over {days} day(s)",
                row.app
            );
            let expected = format!(
                "{} / {} ({} honoured)",
                dur(s.p50_ms),
                dur(s.p99_ms),
                s.honoured
            );
            assert_eq!(shown, &expected, "{} over {days} day(s)", row.app);
        }
    }
    // The spread reaches the ranks that matter: an app with one honoured opt-out in the
    // month, and one with more than a hundred.
    let honoured = |app: &str| rows.iter().find(|r| r.app == app).unwrap().month.clone();
    assert!(honoured("gamma").contains("honoured"));
    assert!(month.iter().any(|h| h.honoured > 100), "{month:?}");
    assert_eq!(honoured("quiet"), "— / — (0 honoured)");
}
on_both_backends!(the_overview_gives_each_apps_report_numbers);

async fn the_live_lookup_asks_keap_only_where_the_address_was_seen(db: Db) {
    let t = TestApp::spawn(db).await;
    let acme = t.state.tenants.get(&t.app).await.unwrap().id;
    let beta = add_app(&t, "beta").await;
    add_app(&t, "gamma").await;
    // Every app is the same emulated Keap: each one asked would read it.
    let (ann, ann_emails) = t.contact("ann", 1);
    let (bob, bob_emails) = t.contact("bob", 1);
    let (_, never) = t.contact("cy", 1);
    // Ann's address came in an event to acme; Bob's was indexed by a sweep of beta.
    event_for(&t, acme, &ann_emails[0].to_uppercase()).await;
    let page = PageCommit {
        index: vec![IndexedAddress {
            contact_id: keap::ContactId::new(bob).unwrap(),
            field: "EMAIL1".into(),
            email: bob_emails[0].to_uppercase(),
        }],
        ..PageCommit::default()
    };
    t.state
        .store
        .commit_page(beta, &page, Millis(0))
        .await
        .unwrap();
    // One search and one contact read, in the one app that saw the address.
    let (seen, calls) = live(&t, &ann_emails[0]).await;
    assert_eq!(apps(&seen), ["acme"]);
    assert!(seen[0].1.contains(&ann.to_string()), "{seen:?}");
    assert_eq!(calls, 2);
    let (seen, calls) = live(&t, &bob_emails[0]).await;
    assert_eq!(apps(&seen), ["beta"]);
    assert!(seen[0].1.contains(&bob.to_string()), "{seen:?}");
    assert_eq!(calls, 2);
    let (seen, calls) = live(&t, &never[0]).await;
    assert_eq!(
        (seen, calls),
        (vec![], 0),
        "no app saw it: Keap is not asked"
    );
}
on_both_backends!(the_live_lookup_asks_keap_only_where_the_address_was_seen);

/// The apps of the live lookup's rows.
fn apps(rows: &[(String, String)]) -> Vec<&str> {
    rows.iter().map(|(app, _)| app.as_str()).collect()
}

/// The live lookup's rows (app, contact) and how many calls Keap saw for it.
async fn live(t: &TestApp, email: &str) -> (Vec<(String, String)>, u64) {
    let before = t.sim.stats().total_calls();
    let rows = optsync::console::address::live(&t.state, email, |_| true)
        .await
        .unwrap();
    let seen = rows.into_iter().map(|r| (r.app, r.contact)).collect();
    (seen, t.sim.stats().total_calls() - before)
}

/// An unsubscribe naming `email`, received by `tenant`.
async fn event_for(t: &TestApp, tenant: TenantId, email: &str) {
    let payload = EventPayload::Provider(ProviderEvent {
        provider: Provider::Postmark,
        kind: EventKind::Unsubscribe,
        address: EmailAddress::parse(email).unwrap(),
        id: None,
    });
    t.state
        .store
        .accept(&NewEvent::new(tenant, payload, Millis(0)))
        .await
        .unwrap();
}
