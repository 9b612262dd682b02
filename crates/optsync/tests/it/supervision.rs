//! A worker that panics on a job is logged with that job, counted and replaced, the service
//! keeps serving, and the job is taken over by another worker once its lease runs out.

use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keap::EmailStatus;
use optsync::clock::Clock;

use crate::{Db, Options, TestApp};

/// Log lines written on this thread, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn panics_counted() -> u64 {
    optsync::telemetry::handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("optsync_worker_panics_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_panicking_worker_is_replaced_and_its_job_taken_over(db: Db) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // This test's runtime has one thread: every task's log line lands here.
    let _logs = tracing::subscriber::set_default(subscriber);
    let clock = Clock::manual(1_800_000_000_000);
    let mut t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
    .await;
    let before = panics_counted();
    // The first job claimed panics its worker; later claims run normally.
    let doomed = Arc::new(AtomicI64::new(0));
    let mut state = t.state.clone();
    let first = doomed.clone();
    state.before_job = Some(Arc::new(move |job| {
        if first
            .compare_exchange(0, job, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            panic!("injected fault");
        }
    }));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // One worker: only its replacement can run the jobs after the panic.
    let workers = tokio::spawn(optsync::supervise::workers(state, 1, stopped));

    // A post is honoured only when Keap shows a stop on the contact.
    let (ann, ann_emails) = t.contact("ann", 2);
    t.sim
        .event(&ann_emails[0], keap_sim::SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    assert_eq!(t.post(&[("contactId", &ann.to_string())]).await.0, 200);
    until("the worker panicked", async || panics_counted() > before).await;
    let job = doomed.load(Ordering::SeqCst);
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("panicked") && l.contains("injected fault"))
        .unwrap_or_else(|| panic!("the panic is not logged:\n{text}"));
    assert!(
        line.contains(&format!("job={job}")),
        "not logged with its job: {line}"
    );

    // The service keeps serving: another post is taken and honoured by the new worker,
    // while the doomed job stays claimed under its lease.
    let (bob, bob_emails) = t.contact("bob", 1);
    t.sim
        .event(&bob_emails[0], keap_sim::SimEvent::Set(EmailStatus::Manual))
        .unwrap();
    assert_eq!(t.post(&[("contactId", &bob.to_string())]).await.0, 200);
    until(
        "the replacement worker honoured the next post",
        async || {
            t.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
                .await
                == 1
        },
    )
    .await;
    assert_eq!(
        t.count("SELECT COUNT(*) FROM jobs WHERE state = 'running'")
            .await,
        1,
        "the doomed job waits for its lease"
    );

    // Past the lease another worker takes the job over and completes it.
    // A lease running out wakes nobody (only the queue service does, on new work), so the
    // workers' poll finds it, as in service.
    clock.advance(t.state.settings.lease + Duration::from_secs(1));
    until("the doomed job was taken over", async || {
        t.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
            .await
            == 2
    })
    .await;
    assert!(panics_counted() > before);

    let _ = stop.send(true);
    workers.await.unwrap();
    if let Some(r) = t.running.take() {
        r.stop().await;
    }
}

#[tokio::test]
async fn sqlite() {
    a_panicking_worker_is_replaced_and_its_job_taken_over(Db::Sqlite).await
}

#[tokio::test]
async fn postgres() {
    a_panicking_worker_is_replaced_and_its_job_taken_over(Db::Postgres).await
}
