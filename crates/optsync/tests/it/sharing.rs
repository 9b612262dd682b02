//! Shared addresses: one person's opt-out reaches every contact holding the address they
//! opted out, and optsync's own writes never carry it further.

use std::time::Duration;

use keap::EmailStatus;
use keap_sim::SimEvent;

use crate::{Db, TestApp, on_both_backends};

async fn a_shared_stop_source_reaches_every_holder_but_our_writes_do_not_cascade(db: Db) {
    let t = TestApp::spawn(db).await;
    t.sim.set_action_set_url(Some(&t.post_url));
    let a = t.sim.add_contact(
        "ann@acme.example",
        Some("office@acme.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    let b = t.sim.add_contact(
        "bob@acme.example",
        Some("office@acme.example"),
        Some("bob@home.example"),
        EmailStatus::SingleOptIn,
    );

    // Ann unsubscribes her own address: office@ is opted out on her behalf, and Bob, who
    // shares office@, is left alone.
    t.sim
        .event("ann@acme.example", SimEvent::UnsubscribeLink)
        .unwrap();
    t.sim
        .wait_action_posts(1, Duration::from_secs(10))
        .await
        .unwrap();
    t.worker.drain().await.unwrap();
    assert_eq!(
        t.sim.status("office@acme.example"),
        Some(EmailStatus::Admin)
    );
    assert_eq!(
        t.sim.status("bob@acme.example"),
        Some(EmailStatus::SingleOptIn),
        "no cascade through our own write"
    );
    assert_eq!(
        t.sim.status("bob@home.example"),
        Some(EmailStatus::SingleOptIn)
    );
    let decided = contacts(&t, "SELECT contact_id FROM audit").await;
    assert!(
        !decided.is_empty() && decided.iter().all(|&c| c == a),
        "only Ann's addresses were decided about: {decided:?}"
    );

    // Someone unsubscribes office@ itself, and Keap posts only for Ann's record: Bob's
    // addresses are targets too, found by looking the address up.
    let c = t.sim.add_contact(
        "cy@acme.example",
        Some("desk@acme.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    let d = t.sim.add_contact(
        "dee@acme.example",
        None,
        Some("desk@acme.example"),
        EmailStatus::SingleOptIn,
    );
    t.sim
        .shared()
        .apply_event("desk@acme.example", SimEvent::UnsubscribeLink, Some(c))
        .unwrap();
    t.sim
        .wait_action_posts(2, Duration::from_secs(10))
        .await
        .unwrap();
    t.worker.drain().await.unwrap();
    for e in ["cy@acme.example", "dee@acme.example"] {
        assert_eq!(t.sim.status(e), Some(EmailStatus::Admin), "{e}");
    }
    let fanout = t
        .count("SELECT COUNT(*) FROM events WHERE source = 'fanout'")
        .await;
    assert_eq!(fanout, 1, "one job queued for the other holder");
    assert_eq!(
        contacts(&t, "SELECT contact_id FROM events WHERE source = 'fanout'").await,
        vec![d],
        "the other holder, found by the address"
    );
    assert!(
        !contacts(&t, "SELECT contact_id FROM audit")
            .await
            .contains(&b),
        "Bob was never decided about"
    );
}
on_both_backends!(a_shared_stop_source_reaches_every_holder_but_our_writes_do_not_cascade);

/// The contact ids a query returns.
async fn contacts(t: &TestApp, sql: &'static str) -> Vec<i64> {
    sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_all(t.state.store.pool())
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect()
}

async fn hard_bounces_and_unengaged_statuses_are_never_sources(db: Db) {
    let t = TestApp::spawn(db).await;
    let (id, emails) = t.contact("gil", 3);
    t.sim.event(&emails[0], SimEvent::HardBounce).unwrap();
    t.sim
        .event(&emails[1], SimEvent::UnengagedNonMarketable)
        .unwrap();
    // A post arrives anyway (say, from another of the app's action sets).
    assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 200);
    t.worker.drain().await.unwrap();
    assert_eq!(t.sim.stats().writes, 0);
    assert_eq!(t.sim.status(&emails[2]), Some(EmailStatus::SingleOptIn));
}
on_both_backends!(hard_bounces_and_unengaged_statuses_are_never_sources);
