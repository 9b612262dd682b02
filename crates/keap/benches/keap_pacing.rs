//! What the Keap client costs and how close it runs to Keap's limits, against keap-sim.
//!
//! `cargo bench -p keap --bench keap_pacing` prints, in one run:
//! 1. Keap calls used per operation, over REST and over XML-RPC;
//! 2. the share of the allowance a sustained run uses, with the number of 429s it caused.
//!    The run uses the service-account profile's shape (a short spike window and a long
//!    window 24 times its limit) with time scaled down twenty-fold — 10 per 50 ms and 240 per
//!    3 s — so that several long windows pass in seconds. Target: ≥ 90 % with zero 429s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keap::{
    ContactId, Credential, EmailAddress, KeapClient, Limits, OptOutMethod, Pacer, PacingConfig,
    WindowLimit,
};
use keap_sim::{KeapSim, RestOptOut, Throttle};

const KEY: &str = "KeapAK-bench";

fn unlimited() -> Arc<Pacer> {
    Arc::new(Pacer::new(PacingConfig::new(Limits {
        windows: vec![],
        daily: None,
    })))
}

async fn calls_per_operation() {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .seed(2_000, 5)
        .start()
        .await
        .expect("sim");
    let (id, email, shared) = sim.with_store(|s| {
        let c = s
            .contacts
            .values()
            .find(|c| c.emails.iter().all(Option::is_some))
            .expect("a contact with three addresses");
        let shared = s
            .rows
            .keys()
            .find(|k| s.holders(k).len() > 1)
            .cloned()
            .expect("a shared address");
        (c.id, c.emails[0].clone().unwrap_or_default(), shared)
    });
    let id = ContactId::new(id).expect("id");
    let email = EmailAddress::from_stored(&email);
    let shared = EmailAddress::from_stored(&shared);
    println!("Keap calls per operation (contact with 3 addresses; page of 1,000 contacts)");
    println!("  {:<34} {:>6} {:>8}", "operation", "REST", "XML-RPC");
    let mut rows: Vec<(String, [u64; 2])> = Vec::new();
    for (col, method) in [OptOutMethod::Rest, OptOutMethod::XmlRpc]
        .into_iter()
        .enumerate()
    {
        let c = KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
            .pacer(unlimited())
            .opt_out_method(method)
            .build()
            .expect("client");
        let mut measure = async |name: &str, n: u64| match rows.iter_mut().find(|(k, _)| k == name)
        {
            Some((_, v)) => v[col] = n,
            None => {
                let mut v = [0; 2];
                v[col] = n;
                rows.push((name.to_string(), v));
            }
        };
        let before = c.calls_made();
        c.contact(id).await.expect("contact");
        measure("contact with statuses", c.calls_made() - before).await;
        let before = c.calls_made();
        c.contacts_with_address(&shared).await.expect("lookup");
        measure("contacts holding an address", c.calls_made() - before).await;
        let before = c.calls_made();
        c.address_status(&email).await.expect("status");
        measure("status of one address", c.calls_made() - before).await;
        let before = c.calls_made();
        c.contacts_page(None, 1000).await.expect("page");
        measure("page of 1,000 contacts", c.calls_made() - before).await;
        let before = c.calls_made();
        c.opted_out_page(None, 1000).await.expect("page");
        measure("page of opted-out addresses", c.calls_made() - before).await;
        let target = EmailAddress::parse(&format!("bench{col}@example.com")).expect("address");
        sim.add_contact(target.as_str(), None, None, keap::EmailStatus::SingleOptIn);
        let r = c.opt_out(&target, "bench").await.expect("opt-out");
        measure("opt-out, verified", u64::from(r.calls)).await;
    }
    sim.configure(|c| c.rest_opt_out = RestOptOut::SilentNoOp);
    let auto = KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
        .pacer(unlimited())
        .build()
        .expect("client");
    sim.add_contact(
        "fallback@example.com",
        None,
        None,
        keap::EmailStatus::SingleOptIn,
    );
    let r = auto
        .opt_out(
            &EmailAddress::parse("fallback@example.com").expect("a"),
            "bench",
        )
        .await
        .expect("opt-out");
    for (name, v) in &rows {
        println!("  {name:<34} {:>6} {:>8}", v[0], v[1]);
    }
    println!(
        "  {:<34} {:>6} {:>8}",
        "opt-out, REST ignored → fallback", r.calls, "-"
    );
    sim.shutdown().await;
}

async fn sustained_share() {
    let spike = WindowLimit {
        limit: 10,
        length: Duration::from_millis(50),
    };
    let long = WindowLimit {
        limit: 240,
        length: Duration::from_secs(3),
    };
    let limits = Limits {
        windows: vec![spike, long],
        daily: Some(1_000_000),
    };
    let sim = KeapSim::builder()
        .api_key(KEY)
        .throttle(Throttle::Custom {
            product: limits.clone(),
            tenant: None,
        })
        .seed(100, 2)
        .start()
        .await
        .expect("sim");
    let pacer = Arc::new(Pacer::new(PacingConfig {
        margin: Duration::from_millis(20),
        ..PacingConfig::new(limits)
    }));
    let client = KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
        .pacer(pacer.clone())
        .build()
        .expect("client");
    let run = Duration::from_secs(12);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16_i64 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut i = w;
            while started.elapsed() < run {
                i = i * 7 % 100 + 1;
                if c.contact(ContactId::new(i).expect("id")).await.is_ok() {
                    done.push(started.elapsed());
                }
            }
            done
        }));
    }
    let mut stamps = Vec::new();
    for t in tasks {
        stamps.extend(t.await.expect("worker"));
    }
    // Judge the steady state, after the first long window's initial burst.
    let from = long.length;
    let to = run;
    let steady = stamps.iter().filter(|t| **t >= from && **t < to).count() as f64;
    let allowance = f64::from(long.limit) * (to - from).as_secs_f64() / long.length.as_secs_f64();
    let stats = sim.stats();
    println!();
    println!(
        "Sustained run: {} s at 10 per 50 ms and 240 per 3 s (Keap's 10/s, 240/min shape, time ÷ 20), 16 workers",
        run.as_secs()
    );
    println!("  calls completed: {}", stamps.len());
    println!(
        "  429s from the emulator: {}   backoffs in the client: {}",
        stats.throttled,
        pacer.counters().1
    );
    println!(
        "  steady state ({}–{} s): {steady:.0} calls of {allowance:.0} allowed",
        from.as_secs(),
        to.as_secs()
    );
    println!(
        "  share of the allowance used: {:.1} %  (target ≥ 90 % with zero 429s)",
        100.0 * steady / allowance
    );
    sim.shutdown().await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    calls_per_operation().await;
    sustained_share().await;
}
