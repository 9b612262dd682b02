//! Reconciliation against a seeded emulator: every contact ends as the rules require, with
//! exactly the writes that takes; incremental sweeps cost little; a stopped sweep resumes;
//! a dry run writes nothing; a sweep keeps within its budget share.

use std::collections::{BTreeMap, BTreeSet};

use keap::{EmailStatus, Limits, PacingConfig};
use keap_sim::{KeapSim, SimEvent};
use optsync::reconcile::{SweepKind, SweepOptions, sweep};

use crate::{Db, KEY, Options, TestApp, on_both_backends};

async fn app_with(db: Db, contacts: usize, seed: u64) -> TestApp {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .seed(contacts, seed)
        .start()
        .await
        .unwrap();
    TestApp::spawn_with(
        db,
        Options {
            sim: Some(sim),
            ..Options::default()
        },
    )
    .await
}

/// Asserts two status maps are equal, naming only the addresses that differ.
fn assert_same(got: &BTreeMap<String, EmailStatus>, want: &BTreeMap<String, EmailStatus>) {
    let diff: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(k)))
        .take(10)
        .collect();
    assert!(diff.is_empty() && got.len() == want.len(), "{diff:?}");
}

/// Every address's status, by address (case-folded).
fn statuses(t: &TestApp) -> BTreeMap<String, EmailStatus> {
    t.sim
        .with_store(|s| s.rows.iter().map(|(k, r)| (k.clone(), r.status)).collect())
}

/// What the rules require, computed from the emulator's state alone: every address of a
/// contact holding an address in a stop status ends opted out unless already stopped or dead.
fn expected(t: &TestApp) -> (BTreeMap<String, EmailStatus>, usize) {
    let mut want = statuses(t);
    let targets: BTreeSet<String> = t.sim.with_store(|s| {
        s.contacts
            .values()
            .filter(|c| {
                c.emails
                    .iter()
                    .flatten()
                    .any(|e| s.status(e).is_some_and(EmailStatus::is_stop))
            })
            .flat_map(|c| {
                c.emails
                    .iter()
                    .flatten()
                    .map(|e| e.to_lowercase())
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    let mut writes = 0;
    for k in targets {
        let st = want[&k];
        if !(st.is_stop() || st.is_terminal()) {
            want.insert(k, EmailStatus::Admin);
            writes += 1;
        }
    }
    (want, writes)
}

/// Contacts with every address marketable, EMAIL2 present, nothing shared.
fn plain_contacts(t: &TestApp) -> Vec<(i64, Vec<String>)> {
    t.sim.with_store(|s| {
        s.contacts
            .values()
            .filter(|c| c.emails[1].is_some())
            .filter(|c| {
                c.emails.iter().flatten().all(|e| {
                    s.holders(e).len() == 1 && s.status(e).is_some_and(EmailStatus::is_marketable)
                })
            })
            .map(|c| (c.id, c.emails.iter().flatten().cloned().collect()))
            .collect()
    })
}

async fn run(t: &TestApp, opts: &SweepOptions) -> optsync::reconcile::SweepReport {
    let tenant = t.state.tenants.get(&t.app).await.unwrap();
    let r = sweep(&t.state, &tenant, opts).await.unwrap();
    t.worker.drain().await.unwrap();
    r
}

fn contact_list_calls(t: &TestApp) -> u64 {
    t.sim
        .stats()
        .calls
        .get("GET /crm/rest/v2/contacts")
        .copied()
        .unwrap_or(0)
}

async fn one_full_sweep_leaves_every_contact_as_the_rules_require(db: Db) {
    let t = app_with(db, 10_000, 42).await;
    let plain = plain_contacts(&t);
    assert!(plain.len() > 450, "{} plain contacts", plain.len());
    let mut it = plain.iter();
    for (_, e) in it.by_ref().take(100) {
        t.sim.event(&e[0], SimEvent::ManualOptOut).unwrap();
    }
    for (_, e) in it.by_ref().take(50) {
        t.sim.event(&e[1], SimEvent::ListUnsubscribe).unwrap();
    }
    for (_, e) in it.by_ref().take(200) {
        t.sim
            .event(&e[0], SimEvent::UnengagedNonMarketable)
            .unwrap();
    }
    for (_, e) in it.by_ref().take(100) {
        t.sim.event(&e[0], SimEvent::HardBounce).unwrap();
    }
    let (want, writes) = expected(&t);
    t.sim.reset_stats();

    let r = run(&t, &SweepOptions::default()).await;
    assert_eq!(r.kind, Some(SweepKind::Full));
    assert!(r.finished);
    assert_eq!(r.contacts_scanned, 10_000);
    assert_eq!(contact_list_calls(&t), 10, "one read per 1,000 contacts");
    let reads: u64 = t
        .sim
        .stats()
        .calls
        .iter()
        .filter(|(k, _)| k.starts_with("GET"))
        .map(|(_, n)| n)
        .sum();
    let verifications = t
        .sim
        .stats()
        .calls
        .get("PATCH /crm/rest/v2/emailAddresses/{email}/status")
        .copied()
        .unwrap_or(0);
    assert!(
        reads <= 10 + verifications + 2,
        "reads {reads}: pages plus one read-back per write"
    );
    assert_eq!(
        t.sim.stats().writes as usize,
        writes,
        "exactly the writes the rules need"
    );
    assert_same(&statuses(&t), &want);
    assert!(r.discrepancies.get("Admin").copied().unwrap_or(0) >= 100);
    assert!(r.discrepancies.get("ListUnsubscribe").copied().unwrap_or(0) >= 50);

    t.sim.reset_stats();
    let again = run(
        &t,
        &SweepOptions {
            full: true,
            ..SweepOptions::default()
        },
    )
    .await;
    assert_eq!(again.contacts_queued, 0);
    assert_eq!(t.sim.stats().writes, 0, "a second run writes nothing");
}
on_both_backends!(one_full_sweep_leaves_every_contact_as_the_rules_require);

async fn an_incremental_sweep_reads_the_opted_out_list_and_little_else(db: Db) {
    let t = app_with(db, 2_000, 7).await;
    run(&t, &SweepOptions::default()).await;
    let plain = plain_contacts(&t);
    let five: Vec<_> = plain.iter().take(5).collect();
    for (_, e) in &five {
        t.sim.event(&e[0], SimEvent::ManualOptOut).unwrap();
    }
    // Only these five people asked anything new: their other addresses are what must change
    // (what optsync wrote last time is its own doing, not anyone's wish).
    let mut want = statuses(&t);
    let mut writes = 0;
    for (_, e) in &five {
        for a in e.iter().skip(1) {
            want.insert(a.to_lowercase(), EmailStatus::Admin);
            writes += 1;
        }
    }
    let opted_out = t.sim.with_store(|s| {
        s.rows
            .values()
            .filter(|r| !r.status.is_marketable())
            .count()
    });
    t.sim.reset_stats();
    let r = run(&t, &SweepOptions::default()).await;
    assert_eq!(r.kind, Some(SweepKind::Incremental));
    assert!(r.finished);
    assert_eq!(r.lookups, 0, "the index knew every address");
    assert_same(&statuses(&t), &want);
    let stats = t.sim.stats();
    assert_eq!(stats.writes as usize, writes);
    let pages = opted_out.div_ceil(1000) as u64;
    // Each write is a PATCH and its read-back.
    assert!(
        stats.total_calls() <= pages + 5 + 2 * writes as u64,
        "{} calls: {:?}",
        stats.total_calls(),
        stats.calls
    );
    assert_eq!(contact_list_calls(&t), 0, "no contact paging");

    // An address the index never saw is looked up once.
    let id = t.sim.add_contact(
        "late@example.com",
        Some("late@relay.wedeliver.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    t.sim
        .event("late@example.com", SimEvent::ManualOptOut)
        .unwrap();
    let r = run(&t, &SweepOptions::default()).await;
    assert_eq!(r.lookups, 1);
    assert_eq!(
        t.sim.status("late@relay.wedeliver.example"),
        Some(EmailStatus::Admin),
        "contact {id}"
    );
}
on_both_backends!(an_incremental_sweep_reads_the_opted_out_list_and_little_else);

async fn a_stopped_sweep_resumes_from_its_cursor_without_duplicate_writes(db: Db) {
    let t = app_with(db, 3_000, 11).await;
    let plain = plain_contacts(&t);
    // Opt-outs spread over all three pages.
    for (_, e) in plain.iter().step_by(plain.len() / 30).take(30) {
        t.sim.event(&e[0], SimEvent::ManualOptOut).unwrap();
    }
    let (want, writes) = expected(&t);
    t.sim.reset_stats();
    let first = run(
        &t,
        &SweepOptions {
            stop_after_pages: Some(1),
            ..SweepOptions::default()
        },
    )
    .await;
    assert!(!first.finished && first.pages == 1);
    let written_first = t.sim.stats().writes;
    assert!(
        written_first > 0 && (written_first as usize) < writes,
        "page 1 fixed only its own contacts"
    );
    let second = run(&t, &SweepOptions::default()).await;
    assert!(second.resumed && second.finished);
    assert_eq!(second.pages, 2, "resumed at page 2");
    assert_eq!(contact_list_calls(&t), 3, "no page read twice");
    assert_eq!(t.sim.stats().writes as usize, writes, "no duplicate writes");
    assert_same(&statuses(&t), &want);
}
on_both_backends!(a_stopped_sweep_resumes_from_its_cursor_without_duplicate_writes);

async fn a_dry_run_writes_nothing_and_keeps_no_state(db: Db) {
    let t = app_with(db, 1_500, 3).await;
    let (_, writes) = expected(&t);
    assert!(writes > 0, "the seed holds opt-outs to propagate");
    let r = run(
        &t,
        &SweepOptions {
            dry_run: true,
            ..SweepOptions::default()
        },
    )
    .await;
    assert!(r.finished && r.dry_run);
    assert_eq!(r.addresses_to_write as usize, writes);
    assert_eq!(t.sim.stats().writes, 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM jobs").await, 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM contact_addresses").await, 0);
    assert!(
        t.state
            .store
            .sweep(t.state.tenants.get(&t.app).await.unwrap().id)
            .await
            .unwrap()
            .is_none()
    );
}
on_both_backends!(a_dry_run_writes_nothing_and_keeps_no_state);

async fn a_sweep_keeps_within_its_share_of_the_daily_budget(db: Db) {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .seed(5_000, 5)
        .start()
        .await
        .unwrap();
    let t = TestApp::spawn_with(
        db,
        Options {
            sim: Some(sim),
            ..Options::default()
        },
    )
    .await;
    // A key with 8 calls left today: a sweep may spend half of that.
    let clients = t.state.clients.with_pacing(PacingConfig::new(Limits {
        windows: vec![],
        daily: Some(8),
    }));
    let state = optsync::state::AppState {
        clients,
        ..t.state.clone()
    };
    let tenant = state.tenants.get(&t.app).await.unwrap();
    let r = sweep(
        &state,
        &tenant,
        &SweepOptions {
            dry_run: false,
            page_size: 1000,
            ..SweepOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(!r.finished);
    assert_eq!(r.pages, 4, "half of 8 calls");
    assert!(r.paused.as_deref().unwrap_or("").contains("budget"));
    assert_eq!(t.sim.stats().throttled, 0);
    let row = t.state.store.sweep(tenant.id).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.pages),
        (optsync::store::SweepState::Paused, 4)
    );
    assert!(
        row.cursor.is_some(),
        "resumes from here when the budget returns"
    );
}
on_both_backends!(a_sweep_keeps_within_its_share_of_the_daily_budget);

/// `optsync reconcile APP`'s run (`reconcile_run`) on a 3,000-contact app at a service
/// account key's real limits (10/s, 240/min: the emulator's and the client's pacing, on a
/// manual clock that the run moves forward when it waits): every write its sweep queued is
/// made before it returns, another app's job due meanwhile is not run, and a second run
/// writes nothing.
async fn a_reconcile_run_makes_every_write_at_the_keys_real_limits(db: Db) {
    use keap_sim::Throttle;
    use optsync::clock::Clock;
    use optsync::reconcile_run::{self, Phase};
    use optsync::store::{EventPayload, NewEvent, Subject};
    use optsync::tenant::{StoredCredential, TenantSpec};
    const OTHER_KEY: &str = "KeapAK-0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e";
    let clock = Clock::manual(1_800_000_000_000);
    let sim = KeapSim::builder()
        .clock(clock.clone())
        .api_key(KEY)
        .api_key(OTHER_KEY)
        .throttle(Throttle::Real)
        .seed(3_000, 19)
        .start()
        .await
        .unwrap();
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            sim: Some(sim),
            ..Options::default()
        },
    )
    .await;
    let (want, writes) = expected(&t);
    assert!(writes > 300, "a seed with work to do: {writes}");
    let (other, _) = t
        .service
        .tenants()
        .add(TenantSpec {
            app: "other".into(),
            keap_base_url: t.sim.crm_url(),
            credential: StoredCredential::ApiKey {
                key: OTHER_KEY.into(),
            },
            legacy_auth: false,
            opt_out_method: keap::OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    let subject = Subject::Contact(keap::ContactId::new(1).unwrap());
    let ev = NewEvent::new(
        other.id,
        EventPayload::KeapPost {
            subject,
            addresses: Default::default(),
        },
        optsync::clock::Millis(clock.epoch_ms()),
    );
    t.state.store.accept(&ev).await.unwrap();
    let state = optsync::state::AppState {
        clients: t.state.clients.with_pacing(PacingConfig::service_account()),
        ..t.state.clone()
    };
    let tenant = state.tenants.get(&t.app).await.unwrap();
    let opts = SweepOptions {
        full: true,
        ..SweepOptions::default()
    };
    let mut waits = 0;
    let run = reconcile_run::run(&state, &tenant, &opts, &mut |p| {
        waits += usize::from(matches!(p.phase, Phase::Waiting { .. }));
    })
    .await
    .unwrap();
    assert!(run.sweep.finished);
    assert_eq!(run.writes, run.sweep.addresses_to_write);
    assert_eq!(run.writes as usize, writes);
    assert!(waits > 0, "the key's limits made the run wait");
    assert_same(&statuses(&t), &want);
    let left = state.store.sweep_jobs_left(tenant.id).await.unwrap();
    assert_eq!(left.left, 0);
    let other_pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE tenant_id = $1 AND state = 'pending'")
            .bind(other.id)
            .fetch_one(state.store.pool())
            .await
            .unwrap();
    assert_eq!(other_pending, 1, "another app's job is not this run's");
    // Later (the key's minute window has passed), a second run has nothing to write.
    clock.advance(std::time::Duration::from_secs(60));
    let again = reconcile_run::run(&state, &tenant, &opts, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((again.writes, again.sweep.contacts_queued), (0, 0));
}
on_both_backends!(a_reconcile_run_makes_every_write_at_the_keys_real_limits);
