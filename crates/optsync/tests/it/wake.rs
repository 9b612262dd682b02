//! A worker wakes for a job stored while it was busy claiming, instead of sleeping through the
//! poll interval: it registers for the wake-up before it claims.

use std::time::{Duration, Instant};

use sqlx::Connection as _;

use crate::{Db, TestApp, post_to};

/// The race made certain on PostgreSQL with the database's own signals. A job is due whose
/// contact another worker holds, so the worker's claim runs and comes back empty. A statement trigger
/// on the claim counts each claim in a sequence (sequences ignore transactions) and waits for
/// an advisory lock the test holds; once `pg_locks` shows the first claim waiting — its
/// snapshot already taken, so it cannot see what is stored meanwhile — the post is stored
/// and announced, and the lock released. A row trigger records which claim took the job:
/// the second, so the first came back empty. With a poll interval of ten minutes, only the
/// wake-up can have started the second claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_stored_during_a_claim_is_claimed_without_waiting_for_the_poll() {
    let mut t = TestApp::spawn(Db::Postgres).await;
    sqlx::raw_sql(
        "CREATE SEQUENCE claims;
         CREATE SEQUENCE claimed_by;
         CREATE FUNCTION held_claim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF current_query() LIKE '%attempts = attempts + 1%' THEN
             PERFORM nextval('claims');
             PERFORM pg_advisory_xact_lock_shared(4242);
           END IF;
           RETURN NULL;
         END $$;
         CREATE FUNCTION record_claim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF current_query() LIKE '%attempts = attempts + 1%' THEN
             PERFORM setval('claimed_by', currval('claims'));
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER held_claim BEFORE UPDATE ON jobs FOR EACH STATEMENT EXECUTE FUNCTION held_claim();
         CREATE TRIGGER record_claim AFTER UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION record_claim();",
    )
    .execute(t.state.store.pool())
    .await
    .unwrap();
    // A claim runs only for an app with a job due: this one has a job due whose contact a
    // worker already holds, so the claim runs and, by its own rule, takes nothing.
    let tenant: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE app = 'acme'")
        .fetch_one(t.state.store.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO jobs (tenant_id, subject, state, attempts, run_at, lease_until, created_at, updated_at)
         VALUES ($1, 'contact:999999', 'running', 1, 0, $2, 0, 0),
                ($1, 'contact:999999', 'pending', 0, 0, NULL, 0, 0)",
    )
    .bind(tenant)
    .bind(i64::MAX / 2)
    .execute(t.state.store.pool())
    .await
    .unwrap();
    // The lock, held on a connection of the test's own.
    let mut gate = sqlx::AnyConnection::connect(&t.database_url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(4242)")
        .execute(&mut gate)
        .await
        .unwrap();

    let mut state = t.state.clone();
    let mut settings = (*state.settings).clone();
    settings.poll = Duration::from_secs(600);
    state.settings = std::sync::Arc::new(settings);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let worker = tokio::spawn(optsync::worker::Worker::new(state).run(stopped, slots));

    // The worker's first claim is under way and held.
    let deadline = Instant::now() + Duration::from_secs(60);
    while t
        .count("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "the worker never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(claims(&t, "claims").await, 1, "the held claim is the first");
    // Keap posts for an address that opted out: its stop status is there to honour.
    let (_, emails) = t.contact("wes", 2);
    t.sim
        .event(
            &emails[0],
            keap_sim::SimEvent::Set(keap::EmailStatus::Manual),
        )
        .unwrap();
    let (status, _) = post_to(&t.post_url, &[("Email", emails[0].as_str())]).await;
    assert_eq!(status, 200, "the post is not held by the claim");
    sqlx::query("SELECT pg_advisory_unlock(4242)")
        .execute(&mut gate)
        .await
        .unwrap();

    // Only a wake-up brings the job in before the ten-minute poll; the deadline is there to
    // fail rather than hang when it is missed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while t
        .count("SELECT COUNT(*) FROM events WHERE honoured_at IS NOT NULL")
        .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the job waited for the poll interval: the wake-up was missed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        claims(&t, "claimed_by").await,
        2,
        "the first claim came back empty and the second took the job"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM jobs WHERE state = 'pending'")
            .await,
        1,
        "the held contact's job is still waiting"
    );
    let _ = stop.send(true);
    worker.await.unwrap();
    if let Some(r) = t.running.take() {
        r.stop().await;
    }
}

/// A sequence's last value (sequences count across transactions and connections).
async fn claims(t: &TestApp, sequence: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"
    )))
    .fetch_one(t.state.store.pool())
    .await
    .unwrap()
}
