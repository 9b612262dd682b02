//! A worker wakes for a job stored while it was busy claiming, instead of sleeping through the
//! poll interval: it registers for the wake-up before it claims.

use std::time::{Duration, Instant};

use crate::{Db, TestApp, post_to};

/// The race made deterministic on PostgreSQL: a statement trigger holds the worker's claim
/// for 1.5 s (its snapshot is taken before the trigger runs, so it cannot see what is stored
/// meanwhile), a post is stored and announced during that time, and the claim comes back
/// empty. With a poll interval of ten minutes, only the wake-up can bring the job in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_stored_during_a_claim_is_claimed_without_waiting_for_the_poll() {
    let mut t = TestApp::spawn(Db::Postgres).await;
    sqlx::raw_sql(
        "CREATE FUNCTION slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF current_query() LIKE '%attempts = attempts + 1%' THEN PERFORM pg_sleep(1.5); END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER slow_claim BEFORE UPDATE ON jobs FOR EACH STATEMENT EXECUTE FUNCTION slow_claim();",
    )
    .execute(t.state.store.pool())
    .await
    .unwrap();
    let mut state = t.state.clone();
    let mut settings = (*state.settings).clone();
    settings.poll = Duration::from_secs(600);
    state.settings = std::sync::Arc::new(settings);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(optsync::worker::Worker::new(state).run(stopped));

    // The worker's first claim is under way (and held); the post is stored meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, emails) = t.contact("wes", 2);
    let started = Instant::now();
    let (status, _) = post_to(&t.post_url, &[("Email", emails[0].as_str())]).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "the post itself is not held by the claim"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while t
        .count("SELECT COUNT(*) FROM events WHERE honoured_at IS NOT NULL")
        .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the job waited for the poll interval: the wake-up was missed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    worker.await.unwrap();
    if let Some(r) = t.running.take() {
        r.stop().await;
    }
}
