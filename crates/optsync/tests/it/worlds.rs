//! optsync in each world Keap may present: REST v2's undocumented opt-out may work, be
//! ignored or be refused, and XML-RPC may be on, off (after 2026-12-31) or browned out. The
//! promise holds where any path works, and where none does the job is blocked — visible,
//! never counted towards dead, never recorded as honoured — and completes by itself when a
//! path returns.

use std::time::Duration;

use keap::EmailStatus;
use keap_sim::{RestOptOut, SimEvent};
use optsync::clock::Clock;
use optsync::store::{AuditAction, JobState, OptOutApi, WritePath};
use optsync::worker::JobOutcome;

use crate::{Db, Options, TestApp, on_both_backends};

const T0: u64 = 1_800_000_000_000;

fn is_settled(s: Option<EmailStatus>) -> bool {
    s.is_some_and(|s| s.is_stop() || s.is_terminal())
}

/// A contact with `n` addresses whose first one the person opted out in Keap, and its job
/// (queued by Keap's post).
async fn opted_out_contact(t: &TestApp, tag: &str, n: usize) -> (i64, Vec<String>) {
    let (id, emails) = t.contact(tag, n);
    t.sim
        .event(&emails[0], SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    let (status, _) = t.post(&[("contactId", &id.to_string())]).await;
    assert_eq!(status, 200);
    (id, emails)
}

async fn learned(t: &TestApp) -> Option<OptOutApi> {
    t.state.tenants.get(&t.app).await.unwrap().opt_out_path
}

fn calls(t: &TestApp, key: &str) -> u64 {
    t.sim.stats().calls.get(key).copied().unwrap_or(0)
}

const PATCH: &str = "PATCH /crm/rest/v2/emailAddresses/{email}/status";
const XML_OPT_OUT: &str = "APIEmailService.optOut";

async fn spawn(db: Db, rest: RestOptOut, xmlrpc: bool, clock: Clock) -> TestApp {
    let t = TestApp::spawn_with(
        db,
        Options {
            clock,
            ..Options::default()
        },
    )
    .await;
    t.sim.configure(|c| c.rest_opt_out = rest);
    t.sim.set_xmlrpc_available(xmlrpc);
    t
}

async fn rest_works_and_xmlrpc_is_on(db: Db) {
    let t = spawn(
        db,
        RestOptOut::Set(EmailStatus::Admin),
        true,
        Clock::system(),
    )
    .await;
    let (_, emails) = opted_out_contact(&t, "ann", 3).await;
    let out = t.worker.drain().await.unwrap();
    assert!(
        matches!(out[..], [JobOutcome::Done { writes: 2, .. }]),
        "{out:?}"
    );
    assert!(t.statuses(&emails).into_iter().all(is_settled));
    assert_eq!(calls(&t, XML_OPT_OUT), 0, "REST did it");
    assert_eq!(learned(&t).await, Some(OptOutApi::Rest));
}
on_both_backends!(rest_works_and_xmlrpc_is_on);

async fn rest_works_and_xmlrpc_is_off(db: Db) {
    let t = spawn(
        db,
        RestOptOut::Set(EmailStatus::Admin),
        false,
        Clock::system(),
    )
    .await;
    let (_, emails) = opted_out_contact(&t, "bea", 3).await;
    t.sim.reset_stats();
    let out = t.worker.drain().await.unwrap();
    assert!(
        matches!(out[..], [JobOutcome::Done { writes: 2, .. }]),
        "{out:?}"
    );
    assert!(t.statuses(&emails).into_iter().all(is_settled));
    // One contact read, then a write and a read-back per written address; the fan-out
    // lookup of the source address (shared with nobody) is the one call beyond.
    let total = t.sim.stats().total_calls();
    assert!(total <= 1 + 2 * 2 + 1, "{:?}", t.sim.stats().calls);
    assert_eq!(
        calls(&t, "XML-RPC (switched off)"),
        0,
        "XML-RPC never tried"
    );
    let audit = t.state.store.audit(None, None, 10).await.unwrap();
    let written: Vec<_> = audit
        .iter()
        .filter(|a| a.decision.action == AuditAction::OptedOut)
        .collect();
    assert_eq!(written.len(), 2);
    assert!(
        written
            .iter()
            .all(|a| a.decision.write.map(|w| w.path) == Some(WritePath::Rest))
    );
    assert_eq!(learned(&t).await, Some(OptOutApi::Rest));
}
on_both_backends!(rest_works_and_xmlrpc_is_off);

async fn rest_ignored_falls_back_to_xmlrpc_then_uses_it_first(db: Db) {
    let t = spawn(db, RestOptOut::SilentNoOp, true, Clock::system()).await;
    let (_, first) = opted_out_contact(&t, "cal", 2).await;
    t.worker.drain().await.unwrap();
    assert!(t.statuses(&first).into_iter().all(is_settled));
    assert_eq!(calls(&t, PATCH), 1, "the PATCH was tried once and ignored");
    assert_eq!(learned(&t).await, Some(OptOutApi::XmlRpc));
    let audit = t.state.store.audit(None, None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.decision.write.map(|w| w.path) == Some(WritePath::XmlRpcFallback))
    );

    // The app is known to ignore the PATCH: the next opt-out goes to XML-RPC straight away.
    let (_, second) = opted_out_contact(&t, "cid", 3).await;
    t.sim.reset_stats();
    t.worker.drain().await.unwrap();
    assert!(t.statuses(&second).into_iter().all(is_settled));
    assert_eq!(
        calls(&t, PATCH),
        0,
        "no PATCH-then-fallback cost once learned"
    );
    assert_eq!(calls(&t, XML_OPT_OUT), 2);
    let total = t.sim.stats().total_calls();
    assert!(total <= 1 + 2 * 2 + 1, "{:?}", t.sim.stats().calls);
}
on_both_backends!(rest_ignored_falls_back_to_xmlrpc_then_uses_it_first);

/// "re-learned when it stops working": an app whose REST PATCH worked (learned) starts
/// refusing it; the next opt-out falls back to XML-RPC, the app's path becomes XML-RPC, and
/// the one after goes to XML-RPC without trying the PATCH.
async fn a_learned_rest_path_that_stops_working_is_re_learned_as_xmlrpc(db: Db) {
    let t = spawn(
        db,
        RestOptOut::Set(EmailStatus::Admin),
        true,
        Clock::system(),
    )
    .await;
    let (_, first) = opted_out_contact(&t, "rex", 2).await;
    t.worker.drain().await.unwrap();
    assert!(t.statuses(&first).into_iter().all(is_settled));
    assert_eq!(learned(&t).await, Some(OptOutApi::Rest));

    t.sim.configure(|c| c.rest_opt_out = RestOptOut::Reject);
    let (_, second) = opted_out_contact(&t, "rey", 2).await;
    t.sim.reset_stats();
    t.worker.drain().await.unwrap();
    assert!(t.statuses(&second).into_iter().all(is_settled));
    assert_eq!((calls(&t, PATCH), calls(&t, XML_OPT_OUT)), (1, 1));
    assert_eq!(learned(&t).await, Some(OptOutApi::XmlRpc));

    let (_, third) = opted_out_contact(&t, "rez", 2).await;
    t.sim.reset_stats();
    t.worker.drain().await.unwrap();
    assert!(t.statuses(&third).into_iter().all(is_settled));
    assert_eq!(
        (calls(&t, PATCH), calls(&t, XML_OPT_OUT)),
        (0, 1),
        "XML-RPC first once re-learned"
    );
}
on_both_backends!(a_learned_rest_path_that_stops_working_is_re_learned_as_xmlrpc);

/// REST ignored (or refused) and XML-RPC off: no path. Blocked, visible, nothing claimed;
/// then XML-RPC returns and the job completes on its own schedule.
async fn no_path_blocks_until_xmlrpc_returns(db: Db, rest: RestOptOut) {
    let clock = Clock::manual(T0);
    let t = spawn(db, rest, false, clock.clone()).await;
    let (id, emails) = opted_out_contact(&t, "dot", 3).await;
    let out = t.worker.run_once().await.unwrap().unwrap();
    let JobOutcome::Blocked { job_id, reason } = out else {
        panic!("{out:?}")
    };
    assert!(reason.contains(&format!("contact {id}")), "{reason}");
    assert!(
        reason.contains(&emails[1]) && reason.contains(&emails[2]),
        "{reason}"
    );
    assert!(
        reason.contains("XML-RPC") && reason.contains("unavailable"),
        "{reason}"
    );
    let blocked = t
        .state
        .store
        .events(None, Some(JobState::Blocked), 10)
        .await
        .unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].contact_id, Some(id));
    assert_eq!(blocked[0].attempts, Some(0), "not an attempt towards dead");
    assert!(blocked[0].honoured_at.is_none());
    assert!(
        !t.state
            .store
            .audit(None, None, 10)
            .await
            .unwrap()
            .iter()
            .any(|a| a.decision.action == AuditAction::OptedOut),
        "nothing recorded as honoured"
    );
    let d = optsync::doctor::examine(&t.state, &t.state.tenants.get(&t.app).await.unwrap(), None)
        .await
        .unwrap();
    assert!(!d.healthy() && d.opt_out_path.is_none(), "{d:?}");

    // Still nothing while XML-RPC is off, however often the schedule comes round.
    clock.advance(Duration::from_secs(300));
    assert!(matches!(
        t.worker.run_once().await.unwrap(),
        Some(JobOutcome::Blocked { .. })
    ));
    // XML-RPC is back: the next scheduled try completes the job, no command needed.
    t.sim.set_xmlrpc_available(true);
    assert!(t.worker.run_once().await.unwrap().is_none(), "not due yet");
    clock.advance(Duration::from_secs(300));
    let out = t.worker.run_once().await.unwrap().unwrap();
    assert!(
        matches!(out, JobOutcome::Done { job_id: j, writes: 2 } if j == job_id),
        "{out:?}"
    );
    assert!(t.statuses(&emails).into_iter().all(is_settled));
    assert_eq!(learned(&t).await, Some(OptOutApi::XmlRpc));
}

async fn rest_ignored_and_xmlrpc_off(db: Db) {
    no_path_blocks_until_xmlrpc_returns(db, RestOptOut::SilentNoOp).await
}
on_both_backends!(rest_ignored_and_xmlrpc_off);

async fn rest_refused_and_xmlrpc_off(db: Db) {
    no_path_blocks_until_xmlrpc_returns(db, RestOptOut::Reject).await
}
on_both_backends!(rest_refused_and_xmlrpc_off);

/// XML-RPC browns out in the middle of a stream of posts: the jobs caught in it are
/// blocked, then all complete once it is back; none is dead.
async fn a_brownout_in_a_stream_of_posts(db: Db) {
    let clock = Clock::manual(T0);
    let t = spawn(db, RestOptOut::SilentNoOp, true, clock.clone()).await;
    let mut all = Vec::new();
    for i in 0..4 {
        all.push(opted_out_contact(&t, &format!("pre{i}"), 2).await);
    }
    t.worker.drain().await.unwrap();
    t.sim.set_xmlrpc_available(false);
    for i in 0..4 {
        all.push(opted_out_contact(&t, &format!("mid{i}"), 2).await);
    }
    let during = t.worker.drain().await.unwrap();
    assert_eq!(during.len(), 4);
    assert!(
        during
            .iter()
            .all(|o| matches!(o, JobOutcome::Blocked { .. })),
        "{during:?}"
    );
    t.sim.set_xmlrpc_available(true);
    for i in 0..4 {
        all.push(opted_out_contact(&t, &format!("post{i}"), 2).await);
    }
    clock.advance(Duration::from_secs(300));
    let after = t.worker.drain().await.unwrap();
    assert!(
        after.iter().all(|o| matches!(o, JobOutcome::Done { .. })),
        "{after:?}"
    );
    for (_, emails) in &all {
        assert!(t.statuses(emails).into_iter().all(is_settled), "{emails:?}");
    }
    let counts = t.state.store.job_counts().await.unwrap();
    assert!(
        counts
            .iter()
            .all(|(s, n)| *n == 0 || matches!(s, JobState::Done)),
        "{counts:?}"
    );
}
on_both_backends!(a_brownout_in_a_stream_of_posts);

/// The operator's view from the shell: `events --state blocked` lists the contact, and
/// `doctor` exits non-zero naming the missing path, then zero once a probe proves one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_and_events_say_it_from_the_command_line() {
    let t = spawn(Db::Sqlite, RestOptOut::SilentNoOp, false, Clock::system()).await;
    std::fs::write(t.dir.path().join("master.key"), crate::MASTER_KEY).unwrap();
    let (id, _) = opted_out_contact(&t, "eve", 2).await;
    assert!(matches!(
        t.worker.run_once().await.unwrap(),
        Some(JobOutcome::Blocked { .. })
    ));
    let run = |args: &[&str]| crate::processes::cli(t.dir.path(), &t.database_url, args, None);
    let (ok, out, err) = run(&["events", "--state", "blocked"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&id.to_string()) && out.contains("still mailable"),
        "{out}"
    );
    let (ok, out, _) = run(&["doctor", &t.app]);
    assert!(!ok, "no working path: non-zero");
    assert!(out.contains("NONE") && out.contains("XML-RPC"), "{out}");
    // The operator proves REST works on an address they own: the app is healthy again.
    t.sim
        .configure(|c| c.rest_opt_out = RestOptOut::Set(EmailStatus::Admin));
    let (_, own) = t.contact("ops", 1);
    let (ok, out, err) = run(&["doctor", &t.app, "--probe-opt-out", &own[0]]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("proven just now"), "{out}");
    assert_eq!(learned(&t).await, Some(OptOutApi::Rest));
}
