//! The queue: retries with backoff, dead jobs and re-driving them, rate-limit waits that are
//! not attempts, coalescing, and leases that expire — on a fixed clock, driven by the test.

use keap::ContactId;
use keap::EmailStatus;
use keap_sim::{FaultKind, SimEvent};
use optsync::clock::Clock;
use optsync::clock::{Millis, Now as _};
use optsync::store::{EventPayload, JobId, JobReport, JobState, NewEvent, Outcome, Subject};
use optsync::worker::JobOutcome;
use sqlx::Row;

use crate::{Db, Options, TestApp, on_both_backends};

const T0: u64 = 1_800_000_000_000;

async fn enqueue(t: &TestApp, contact: i64) -> JobId {
    let tenant = t.state.tenants.get(&t.app).await.unwrap();
    let subject = Subject::Contact(ContactId::new(contact).unwrap());
    let ev = NewEvent::new(
        tenant.id,
        EventPayload::KeapPost {
            subject,
            addresses: Default::default(),
        },
        t.state.clock.now(),
    );
    t.state.store.accept(&ev).await.unwrap().job_id.unwrap()
}

/// A report with no decisions, for a job completed by the test itself.
fn no_report(job_id: JobId) -> JobReport {
    JobReport {
        tenant_id: optsync::store::TenantId(1),
        job_id,
        event_ids: vec![],
        received_at: Millis(T0 as i64),
        addresses: vec![],
        push: vec![],
    }
}

async fn job(t: &TestApp, id: JobId) -> (JobState, i64, i64) {
    let r = sqlx::query("SELECT state, attempts, run_at FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(t.state.store.pool())
        .await
        .unwrap();
    (
        r.try_get("state").unwrap(),
        r.try_get("attempts").unwrap(),
        r.try_get("run_at").unwrap(),
    )
}

async fn failures_back_off_then_die_and_can_be_re_driven(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            max_attempts: 2,
            ..Options::default()
        },
    )
    .await;
    let (id, emails) = t.contact("gus", 2);
    t.sim
        .event(&emails[0], SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    let job_id = enqueue(&t, id).await;

    t.sim.inject_fault(FaultKind::ServerError, 3);
    let first = t.worker.run_once().await.unwrap().unwrap();
    assert!(matches!(first, JobOutcome::Retrying { .. }), "{first:?}");
    let (state, attempts, run_at) = job(&t, job_id).await;
    assert_eq!((state, attempts), (JobState::Pending, 1));
    assert!(
        run_at >= T0 as i64 + 800 && run_at <= T0 as i64 + 1_200,
        "about 1 s of backoff: {}",
        run_at - T0 as i64
    );
    assert!(t.worker.run_once().await.unwrap().is_none(), "not due yet");

    clock.advance(std::time::Duration::from_millis(5_000));
    let second = t.worker.run_once().await.unwrap().unwrap();
    assert!(matches!(second, JobOutcome::Dead { .. }), "{second:?}");
    assert_eq!(job(&t, job_id).await.0, JobState::Dead);
    let dead = t
        .state
        .store
        .events(None, Some(JobState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].last_error.as_deref().unwrap_or("").contains("500"),
        "{:?}",
        dead[0].last_error
    );

    assert!(t.state.store.retry_job(job_id, clock.now()).await.unwrap());
    assert_eq!(job(&t, job_id).await.0, JobState::Pending);
    assert!(
        matches!(
            t.worker.run_once().await.unwrap(),
            Some(JobOutcome::Retrying { .. })
        ),
        "the third fault"
    );
    clock.advance(std::time::Duration::from_millis(5_000));
    assert!(matches!(
        t.worker.run_once().await.unwrap(),
        Some(JobOutcome::Done { writes: 1, .. })
    ));
    assert_eq!(t.sim.status(&emails[1]), Some(EmailStatus::Admin));
    assert_eq!(t.state.store.retry_dead(clock.now()).await.unwrap(), 0);
}
on_both_backends!(failures_back_off_then_die_and_can_be_re_driven);

async fn waiting_for_keaps_rate_limit_is_not_an_attempt(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            max_attempts: 1,
            ..Options::default()
        },
    )
    .await;
    let (id, emails) = t.contact("hal", 2);
    t.sim
        .event(&emails[0], SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    let job_id = enqueue(&t, id).await;
    t.sim.inject_fault(FaultKind::TooManyRequests, 50);
    let out = t.worker.run_once().await.unwrap().unwrap();
    assert!(matches!(out, JobOutcome::Deferred { .. }), "{out:?}");
    let (state, attempts, _) = job(&t, job_id).await;
    assert_eq!(
        (state, attempts),
        (JobState::Pending, 0),
        "even with max_attempts 1 the job is not dead"
    );
    t.sim.shared().lock().faults.clear();
    clock.advance(std::time::Duration::from_millis(120_000));
    assert!(matches!(
        t.worker.run_once().await.unwrap(),
        Some(JobOutcome::Done { .. })
    ));
}
on_both_backends!(waiting_for_keaps_rate_limit_is_not_an_attempt);

async fn events_for_one_contact_coalesce_and_one_job_runs_at_a_time(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let (id, emails) = t.contact("ida", 2);
    t.sim
        .event(&emails[0], SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    let a = enqueue(&t, id).await;
    let b = enqueue(&t, id).await;
    assert_eq!(a, b, "a second event joins the pending job");
    let lease = t.state.settings.lease.as_millis() as i64;
    let claimed = t
        .state
        .store
        .claim(clock.now(), lease, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, a);
    // While it runs, a new event makes a new pending job, which waits for the running one.
    let c = enqueue(&t, id).await;
    assert_ne!(c, a);
    assert!(
        t.state
            .store
            .claim(clock.now(), lease, i64::MAX)
            .await
            .unwrap()
            .is_none(),
        "same contact is busy"
    );
    // The first worker dies; its lease runs out; the work is taken over.
    clock.advance(std::time::Duration::from_millis(lease as u64 + 1));
    let again = t
        .state
        .store
        .claim(clock.now(), lease, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, a, "the expired job first");
    assert_eq!(again.attempts, 2);
    // The dead worker waking up cannot complete a job that is no longer its own.
    assert!(
        !t.state
            .store
            .complete(
                a,
                Some(Millis(T0 as i64) + lease),
                clock.now(),
                Outcome::Done,
                &no_report(a)
            )
            .await
            .unwrap()
    );
    assert!(
        t.state
            .store
            .complete(
                a,
                Some(clock.now() + lease),
                clock.now(),
                Outcome::Done,
                &no_report(a)
            )
            .await
            .unwrap()
    );
    let next = t
        .state
        .store
        .claim(clock.now(), lease, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, c);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events WHERE honoured_at IS NOT NULL")
            .await,
        2
    );
}
on_both_backends!(events_for_one_contact_coalesce_and_one_job_runs_at_a_time);

/// "Honoured" means something was true in Keap. A post for a contact that shows no stop
/// status is read again, on the clock, for a few minutes: a stop that appears meanwhile is
/// honoured; one that never does ends the job as "Keap showed no opt-out", listed among the
/// report's not honoured with that reason, and never as honoured.
async fn a_post_is_honoured_only_when_keap_shows_a_stop(db: Db) {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let minute = std::time::Duration::from_secs(60);
    let (late, late_emails) = t.contact("late", 2);
    let (never, never_emails) = t.contact("never", 2);
    let late_job = enqueue(&t, late).await;
    let never_job = enqueue(&t, never).await;

    let first = t.worker.drain().await.unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first
            .iter()
            .all(|o| matches!(o, JobOutcome::Rechecking { .. })),
        "no stop in Keap yet: read again later, not done: {first:?}"
    );
    assert_eq!(job(&t, late_job).await.0, JobState::Pending);
    assert_eq!(job(&t, late_job).await.1, 0, "a re-read is not an attempt");

    // Keap's state catches up with its post for one contact.
    t.sim
        .event(&late_emails[0], SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    clock.advance(minute);
    let second = t.worker.drain().await.unwrap();
    assert!(
        second
            .iter()
            .any(|o| matches!(o, JobOutcome::Done { job_id, writes: 1 } if *job_id == late_job)),
        "{second:?}"
    );
    assert_eq!(
        t.sim.status(&late_emails[1]),
        Some(EmailStatus::Admin),
        "the late stop is honoured"
    );

    for _ in 0..5 {
        clock.advance(minute);
        t.worker.drain().await.unwrap();
    }
    assert_eq!(job(&t, never_job).await.0, JobState::NoOptOut);
    assert_eq!(
        t.statuses(&never_emails),
        vec![Some(EmailStatus::SingleOptIn); 2],
        "nothing was written"
    );
    let rows = t
        .state
        .store
        .events(None, Some(JobState::NoOptOut), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].honoured_at.is_none(), "never honoured");

    let period = optsync::report::Period {
        app: None,
        since: Millis(0),
        until: clock.now() + 1,
    };
    let report = optsync::report::build(&t.state.store, &period)
        .await
        .unwrap();
    assert_eq!(report.summary.honoured, 1);
    assert_eq!(report.summary.not_honoured, 1);
    let line = report
        .opt_outs
        .iter()
        .find(|l| l.contact_id == Some(never))
        .unwrap();
    assert_eq!(line.honoured_at, None);
    assert_eq!(
        line.why_not.as_deref(),
        Some("no_opt_out: Keap showed no opt-out")
    );
    assert!(
        line.addresses
            .iter()
            .all(|a| a.action == optsync::store::AuditAction::NotTargeted),
        "{:?}",
        line.addresses
    );
}
on_both_backends!(a_post_is_honoured_only_when_keap_shows_a_stop);
