//! How many REST requests per second keap-sim serves with throttling off, measured against
//! the 5,000/s it must sustain so that it is never the bottleneck of a benchmark.
//!
//! `cargo bench -p keap-sim --bench sim_throughput` (client and server share this machine's
//! cores, so the figure is a floor for the server alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keap_sim::{KeapSim, Throttle};

const KEY: &str = "KeapAK-bench";
const TARGET_PER_SEC: f64 = 5_000.0;
const CONTACTS: usize = 10_000;
const CONCURRENCY: usize = 32;
const RUN: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .throttle(Throttle::Off)
        .seed(CONTACTS, 1)
        .start()
        .await
        .expect("sim starts");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (client, done, failed, base) =
            (client.clone(), done.clone(), failed.clone(), sim.base_url());
        tasks.push(tokio::spawn(async move {
            let mut id = worker as u64 * 311 + 1;
            while Instant::now() < deadline {
                id = id * 7 % CONTACTS as u64 + 1;
                let r = client
                    .get(format!(
                        "{base}/crm/rest/v2/contacts/{id}?fields=email_addresses"
                    ))
                    .header("X-Keap-API-Key", KEY)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let per_sec = n as f64 / secs;
    println!(
        "keap-sim REST throughput, throttling off, {CONTACTS} contacts, {CONCURRENCY} concurrent clients"
    );
    println!(
        "  requests: {n} ok, {} failed, in {secs:.2} s",
        failed.load(Ordering::Relaxed)
    );
    println!("  rate: {per_sec:.0} requests/s");
    println!(
        "  ratio to the 5,000/s target: {:.2}",
        per_sec / TARGET_PER_SEC
    );
    sim.shutdown().await;
}
