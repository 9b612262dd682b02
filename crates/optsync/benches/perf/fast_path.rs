//! Section `fast`: Keap calls per opt-out once the app's REST path is proven and a full sweep
//! has indexed its addresses: a burst of Keap posts for contacts with two addresses, each
//! honoured by writing the post's other address without reading the contact (one write in
//! twenty read back). First the people click unsubscribe on `Email`, then (the app now
//! mailing through a relay) on `EmailAddress2`: the first of those falls back to reading the
//! contact and teaches the fast path the field.

use super::*;

/// Waits until `n` more Keap posts than `before` are honoured.
async fn honoured(app: &App, before: usize, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ev = app.store().honoured_events().await.unwrap();
        let posts = ev[before..]
            .iter()
            .filter(|e| e.source == EventSource::KeapPost)
            .count();
        if posts >= n || Instant::now() > deadline {
            return posts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each contact's person clicks unsubscribe on address `which`; Keap calls per honoured post.
async fn burst(sim: &KeapSim, app: &App, contacts: &[[String; 2]], which: usize) -> (usize, f64) {
    let before = app.store().honoured_events().await.unwrap().len();
    sim.reset_stats();
    for c in contacts {
        sim.event(&c[which], SimEvent::UnsubscribeLink).unwrap();
    }
    let n = honoured(app, before, contacts.len()).await;
    (n, sim.stats().total_calls() as f64 / n.max(1) as f64)
}

pub async fn run(latency: Duration) {
    println!(
        "## fast. Keap calls per opt-out once the path is proven (Keap answering in {} ms)\n",
        latency.as_millis()
    );
    let dir = TempDir::new("fast");
    let sim = KeapSim::builder()
        .api_key(KEY)
        .throttle(Throttle::from_name("pat").expect("pat profile"))
        .start()
        .await
        .unwrap();
    let contacts: Vec<[String; 2]> = (0..121)
        .map(|i| {
            let e = [
                format!("f{i}@bench.example"),
                format!("f{i}@relay.bench.example"),
            ];
            sim.add_contact(&e[0], Some(&e[1]), None, EmailStatus::SingleOptIn);
            e
        })
        .collect();
    let db = database(&dir, None).await;
    let (app, serving, url) = service(&dir, &db, &sim, 4).await;
    sim.set_action_set_url(Some(&url));
    full_sweep(&app).await;
    sim.configure(|c| c.latency = latency);
    // One post read first proves the REST path.
    burst(&sim, &app, &contacts[..1], 0).await;
    println!("| burst | honoured | Keap calls per opt-out | before the fast path |");
    println!("|---|---|---|---|");
    for (label, slice, which) in [
        ("60 clicks on Email", &contacts[1..61], 0),
        ("60 clicks on Email 2", &contacts[61..], 1),
    ] {
        let (n, per) = burst(&sim, &app, slice, which).await;
        println!("| {label} | {n}/{} | {per:.2} | 2 |", slice.len());
    }
    println!();
    serving.stop().await;
    sim.shutdown().await;
}
