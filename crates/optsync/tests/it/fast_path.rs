//! The Keap-post fast path: once an app's REST path is proven and the address index is
//! fresh, Keap's post is honoured by writing the post's other addresses without reading the
//! contact; a surprising answer falls back to reading it, in the same job.

use std::time::Duration;

use keap::EmailStatus;
use keap_sim::{RestOptOut, SimEvent};
use optsync::reconcile::{SweepOptions, sweep};
use optsync::store::AuditAction;

use crate::{Db, TestApp, on_both_backends};

const PATCH: &str = "PATCH /crm/rest/v2/emailAddresses/{email}/status";

fn is_settled(s: Option<EmailStatus>) -> bool {
    s.is_some_and(|s| s.is_stop() || s.is_terminal())
}

/// The service wired to the emulator's action set, `n` contacts with two addresses each,
/// indexed by a full sweep, and the app's REST path proven by one post read first (the
/// person clicked unsubscribe on `Email`).
async fn proven(db: Db, n: usize) -> (TestApp, Vec<Vec<String>>) {
    let t = TestApp::spawn(db).await;
    t.sim.set_action_set_url(Some(&t.post_url));
    let contacts: Vec<Vec<String>> = (0..=n).map(|i| t.contact(&format!("p{i}"), 2).1).collect();
    let tenant = t.state.tenants.get(&t.app).await.unwrap();
    let full = SweepOptions {
        full: true,
        ..SweepOptions::default()
    };
    sweep(&t.state, &tenant, &full).await.unwrap();
    t.worker.drain().await.unwrap();
    clicks(&t, &contacts[..1], 0).await;
    assert!(t.statuses(&contacts[0]).into_iter().all(is_settled));
    (t, contacts[1..].to_vec())
}

/// The person behind each contact clicks unsubscribe on address `which`; Keap posts; the
/// worker honours every post.
async fn clicks(t: &TestApp, contacts: &[Vec<String>], which: usize) {
    t.sim.reset_stats();
    for c in contacts {
        t.sim.event(&c[which], SimEvent::UnsubscribeLink).unwrap();
    }
    let posts = t
        .sim
        .wait_action_posts(contacts.len(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(posts.iter().all(|p| p.status == 200), "{posts:?}");
    t.worker.drain().await.unwrap();
}

async fn a_burst_of_posts_costs_one_call_and_a_sampled_read_back(db: Db) {
    let (t, contacts) = proven(db, 60).await;
    clicks(&t, &contacts, 0).await;
    let calls = t.sim.stats().total_calls();
    let per = calls as f64 / contacts.len() as f64;
    assert!(
        per <= 1.2,
        "{per} calls per opt-out: {:?}",
        t.sim.stats().calls
    );
    for c in &contacts {
        assert!(t.statuses(c).into_iter().all(is_settled), "{c:?}");
    }
    let audit = t.state.store.audit(None, None, 500).await.unwrap();
    let written = audit
        .iter()
        .filter(|a| a.decision.action == AuditAction::OptedOut)
        .count();
    assert_eq!(written, contacts.len() + 1, "one write per contact");
}
on_both_backends!(a_burst_of_posts_costs_one_call_and_a_sampled_read_back);

/// The person clicked on `EmailAddress2` where the app's last post had `Email`: the write
/// to it answers the person's own stop, the job reads the contact, writes `Email`, and the
/// app's next such post is served fast.
async fn a_stop_on_the_written_address_falls_back_and_teaches_the_field(db: Db) {
    let (t, contacts) = proven(db, 3).await;
    clicks(&t, &contacts[..1], 1).await;
    assert!(t.statuses(&contacts[0]).into_iter().all(is_settled));
    assert_eq!(t.sim.status(&contacts[0][1]), Some(EmailStatus::Manual));
    let audit = t
        .state
        .store
        .audit(None, Some(&contacts[0][0]), 10)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.decision.action == AuditAction::OptedOut),
        "Email written after the read: {audit:?}"
    );
    clicks(&t, &contacts[1..], 1).await;
    let calls = t.sim.stats().calls;
    assert_eq!(
        calls.get("GET /crm/rest/v2/contacts/{id}"),
        None,
        "{calls:?}"
    );
    assert_eq!(calls.get(PATCH), Some(&2), "{calls:?}");
    for c in &contacts {
        assert!(t.statuses(c).into_iter().all(is_settled), "{c:?}");
    }
}
on_both_backends!(a_stop_on_the_written_address_falls_back_and_teaches_the_field);

/// The app's Keap starts ignoring the PATCH: the write answers a marketable status, the job
/// reads the contact and the read-first steps opt the address out through XML-RPC.
async fn an_ignored_write_falls_back_to_the_read_first_path(db: Db) {
    let (t, contacts) = proven(db, 1).await;
    t.sim.configure(|c| c.rest_opt_out = RestOptOut::SilentNoOp);
    clicks(&t, &contacts, 0).await;
    assert!(t.statuses(&contacts[0]).into_iter().all(is_settled));
    let calls = &t.sim.stats().calls;
    assert!(
        calls.get("APIEmailService.optOut").copied() == Some(1),
        "XML-RPC did it: {calls:?}"
    );
}
on_both_backends!(an_ignored_write_falls_back_to_the_read_first_path);
