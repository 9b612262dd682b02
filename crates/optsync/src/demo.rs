//! `optsync demo`: the whole system against an in-process Keap emulator.
//!
//! Seeds the emulator, runs the service on a temporary SQLite database with a tenant wired to
//! the emulator's opt-out action set, makes people opt out in the ways Keap knows (unsubscribe
//! links through EMAIL1 and EMAIL2, a user's manual opt-out, a bounce, an unengaged
//! transition), waits for the service, then checks every contact against the rules and prints
//! a report. Exits non-zero if anything is wrong.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use keap::{EmailStatus, OptOutMethod};
use keap_sim::{KeapSim, SimEvent, Throttle};
use sqlx::Row;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::rules::is_settled;
use crate::state::AppState;
use crate::store::Store;
use crate::tenant::{StoredCredential, TenantSpec, Tenants};

const CLIENT_ID: &str = "optsync-demo";
const CLIENT_SECRET: &str = "demo-client-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    UnsubscribeEmail1,
    UnsubscribeEmail2,
    ManualOptOut,
    HardBounce,
    Unengaged,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Self::UnsubscribeEmail1,
        Self::UnsubscribeEmail2,
        Self::ManualOptOut,
        Self::HardBounce,
        Self::Unengaged,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::UnsubscribeEmail1 => "unsubscribe link, EMAIL1",
            Self::UnsubscribeEmail2 => "unsubscribe link, EMAIL2",
            Self::ManualOptOut => "manual opt-out (Admin)",
            Self::HardBounce => "hard bounce in Keap",
            Self::Unengaged => "unengaged non-marketable",
        }
    }

    /// (which address, what happens to it)
    fn event(self) -> (usize, SimEvent) {
        match self {
            Self::UnsubscribeEmail1 => (0, SimEvent::UnsubscribeLink),
            Self::UnsubscribeEmail2 => (1, SimEvent::UnsubscribeLink),
            Self::ManualOptOut => (0, SimEvent::ManualOptOut),
            Self::HardBounce => (0, SimEvent::HardBounce),
            Self::Unengaged => (0, SimEvent::UnengagedNonMarketable),
        }
    }

    fn posts(self) -> bool {
        matches!(self, Self::UnsubscribeEmail1 | Self::UnsubscribeEmail2)
    }

    fn count(self) -> usize {
        match self {
            Self::UnsubscribeEmail1 | Self::UnsubscribeEmail2 => 40,
            _ => 20,
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[idx.min(sorted.len() - 1)])
}

fn now_ms() -> i64 {
    Clock::System.now_ms()
}

async fn oauth_refresh_token(sim: &KeapSim) -> anyhow::Result<String> {
    let code = sim
        .issue_auth_code(CLIENT_ID)
        .context("demo OAuth client")?;
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", sim.base_url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    r["refresh_token"]
        .as_str()
        .map(str::to_string)
        .context("no refresh token from the emulator")
}

/// Waits until no job is pending or running.
async fn wait_idle(store: &Store, deadline: Instant) -> anyhow::Result<()> {
    while store
        .job_counts()
        .await?
        .iter()
        .any(|(s, n)| (s == "pending" || s == "running") && *n > 0)
    {
        anyhow::ensure!(Instant::now() < deadline, "the queue did not drain in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub async fn run(contacts: usize, seed: u64) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let dir =
        std::env::temp_dir().join(format!("optsync-demo-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "optsync demo — {contacts} seeded contacts, data in {}",
        dir.display()
    );

    // Keap, emulated: real OAuth-client limits (1,500/min), the action set posting to us.
    let sim = KeapSim::builder()
        .oauth_client(CLIENT_ID, CLIENT_SECRET)
        .throttle(Throttle::Real)
        .seed(contacts, seed)
        .start()
        .await?;
    let settings = Settings::for_dir(&dir, None);
    let store = Store::open(&settings.database_url).await?;
    let secrets = SecretBox::load(None, &dir)?;
    let listener = crate::server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let public_url = format!("http://{}", listener.local_addr()?);
    let tenants = Tenants::new(store.clone(), secrets, Clock::System, &public_url);
    tenants
        .add(TenantSpec {
            app: "demo".into(),
            keap_base_url: sim.crm_url(),
            credential: StoredCredential::OAuth {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                refresh_token: oauth_refresh_token(&sim).await?,
                access_token: None,
                expires_at_ms: None,
                token_url: Some(format!("{}/token", sim.base_url())),
            },
            legacy_auth: false,
            opt_out_method: OptOutMethod::Auto,
        })
        .await?;
    let post_url = tenants.post_url("demo").await?;
    sim.set_action_set_url(Some(&post_url));
    let workers = 4;
    let app_state = AppState::new(store.clone(), tenants, settings, Clock::System);
    let running = crate::server::start_on(app_state.clone(), listener, workers).await?;
    println!(
        "service on {public_url} with {workers} workers; Keap's action set posts to /process_optout.php?app=demo&auth=…"
    );

    // Contacts whose addresses are all marketable and not shared, so each scenario's
    // expected outcome is plain.
    let (candidates, before_status) = sim.with_store(|s| {
        let candidates: Vec<i64> = s
            .contacts
            .values()
            .filter(|c| c.emails[0].is_some() && c.emails[1].is_some())
            .filter(|c| {
                c.emails.iter().flatten().all(|e| {
                    s.holders(e).len() == 1 && s.status(e).is_some_and(EmailStatus::is_marketable)
                })
            })
            .map(|c| c.id)
            .collect();
        let before: HashMap<String, EmailStatus> =
            s.rows.iter().map(|(k, r)| (k.clone(), r.status)).collect();
        (candidates, before)
    });
    let mut pool = candidates.into_iter();
    let mut plan: Vec<(Scenario, i64)> = Vec::new();
    for sc in Scenario::ALL {
        plan.extend(pool.by_ref().take(sc.count()).map(|id| (sc, id)));
    }
    anyhow::ensure!(
        !plan.is_empty(),
        "the seed has no suitable contacts; use more --contacts"
    );

    let mut clicked_at: HashMap<i64, i64> = HashMap::new();
    for (sc, id) in &plan {
        let (field, event) = sc.event();
        let email = sim
            .contact(*id)
            .and_then(|c| c.emails[field].clone())
            .context("planned contact vanished")?;
        clicked_at.insert(*id, now_ms());
        sim.event(&email, event)?;
    }
    let expected_posts = plan.iter().filter(|(sc, _)| sc.posts()).count();
    println!(
        "{} people acted: {expected_posts} through unsubscribe links (Keap posts), {} in ways Keap announces to nobody",
        plan.len(),
        plan.len() - expected_posts
    );

    // Wait for every post to be honoured, showing progress.
    let deadline = Instant::now() + Duration::from_secs(300);
    let honoured = loop {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM events WHERE source = 'keap_post' AND honoured_at IS NOT NULL",
        )
        .fetch_one(store.pool())
        .await?
        .try_get("n")?;
        let stats = sim.stats();
        eprint!(
            "\r  honoured {n}/{expected_posts} posts · Keap calls {} · 429s {}   ",
            stats.total_calls(),
            stats.throttled
        );
        let _ = std::io::stderr().flush();
        if n as usize >= expected_posts || Instant::now() > deadline {
            eprintln!();
            break n as usize;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    wait_idle(&store, deadline).await?;

    let post_calls = sim.stats().total_calls();
    // Reconciliation: what Keap announced to nobody (the manual opt-outs) is found by a sweep.
    let tenant = app_state.tenants.get("demo").await?;
    let sweep_started = Instant::now();
    let report = crate::reconcile::sweep(
        &app_state,
        &tenant,
        &crate::reconcile::SweepOptions::default(),
    )
    .await?;
    wait_idle(&store, deadline).await?;
    println!(
        "reconciliation: {} sweep of {} contacts in {} Keap calls found {} contacts to fix ({:.1} s)",
        if report.kind == Some(crate::reconcile::SweepKind::Full) {
            "full"
        } else {
            "incremental"
        },
        report.contacts_scanned,
        report.calls,
        report.contacts_queued,
        sweep_started.elapsed().as_secs_f64()
    );
    running.stop().await;

    // Time to honour: from the person's click to the job's completion, whatever brought it.
    let rows = sqlx::query("SELECT contact_id, honoured_at FROM events WHERE honoured_at IS NOT NULL AND contact_id IS NOT NULL")
        .fetch_all(store.pool())
        .await?;
    let mut honoured_at: HashMap<i64, i64> = HashMap::new();
    for r in rows {
        let (c, h): (i64, i64) = (r.try_get("contact_id")?, r.try_get("honoured_at")?);
        honoured_at
            .entry(c)
            .and_modify(|x| *x = (*x).min(h))
            .or_insert(h);
    }

    // The rules, applied independently to the state the people left (before the service did
    // anything): a contact holding an address in a stop status must end with every address
    // stopped or dead; any other contact keeps its statuses, except an address it shares with
    // such a contact.
    let (emails_of, after) = sim.with_store(|s| {
        let emails: HashMap<i64, Vec<String>> = s
            .contacts
            .values()
            .map(|c| {
                (
                    c.id,
                    c.emails
                        .iter()
                        .flatten()
                        .map(|e| e.to_lowercase())
                        .collect(),
                )
            })
            .collect();
        let after: HashMap<String, EmailStatus> =
            s.rows.iter().map(|(k, r)| (k.clone(), r.status)).collect();
        (emails, after)
    });
    let mut pre = before_status.clone();
    for (sc, id) in &plan {
        let (field, event) = sc.event();
        if let Some(e) = emails_of.get(id).and_then(|v| v.get(field)) {
            pre.insert(e.clone(), event.status());
        }
    }
    let is_target = |id: &i64| {
        emails_of[id]
            .iter()
            .any(|e| pre.get(e).is_some_and(|s| s.is_stop()))
    };
    let target_addresses: std::collections::HashSet<&String> = emails_of
        .iter()
        .filter(|(id, _)| is_target(id))
        .flat_map(|(_, v)| v.iter())
        .collect();
    let contact_ok = |id: &i64| {
        let v = &emails_of[id];
        if is_target(id) {
            v.iter()
                .all(|e| after.get(e).is_some_and(|s| is_settled(*s)))
        } else {
            v.iter()
                .all(|e| after.get(e) == pre.get(e) || target_addresses.contains(e))
        }
    };
    let mut rows: BTreeMap<Scenario, (usize, usize, Vec<u64>)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (sc, id) in &plan {
        let e = rows.entry(*sc).or_default();
        e.0 += 1;
        if contact_ok(id) {
            e.1 += 1;
        } else {
            wrong.push(format!(
                "{}: contact {id} {:?}",
                sc.name(),
                emails_of[id]
                    .iter()
                    .map(|a| (a, after.get(a)))
                    .collect::<Vec<_>>()
            ));
        }
        if let (Some(h), Some(c)) = (honoured_at.get(id), clicked_at.get(id))
            && is_target(id)
        {
            e.2.push((h - c).max(0) as u64);
        }
    }
    let others: Vec<&i64> = emails_of
        .keys()
        .filter(|id| !plan.iter().any(|(_, p)| p == *id))
        .collect();
    let others_ok = others.iter().filter(|id| contact_ok(id)).count();
    if others_ok != others.len() {
        wrong.push(format!(
            "{} of {} other contacts are not as the rules require",
            others.len() - others_ok,
            others.len()
        ));
    }

    let stats = sim.stats();
    let calls_per = if honoured > 0 {
        format!("{:.1}", post_calls as f64 / honoured as f64)
    } else {
        "-".into()
    };

    println!();
    println!(
        "{:<28} {:>6} {:>8} {:>10} {:>10}  note",
        "scenario", "count", "correct", "p50 ms", "p99 ms"
    );
    for (sc, (count, correct, mut times)) in rows {
        times.sort_unstable();
        let fmt = |p| percentile(&times, p).map_or("-".to_string(), |v| v.to_string());
        let note = match sc {
            Scenario::UnsubscribeEmail1 | Scenario::UnsubscribeEmail2 => "every address opted out",
            Scenario::ManualOptOut => "Keap posts nothing: honoured by reconciliation",
            Scenario::HardBounce | Scenario::Unengaged => "address-only: siblings untouched",
        };
        println!(
            "{:<28} {count:>6} {correct:>8} {:>10} {:>10}  {note}",
            sc.name(),
            fmt(0.5),
            fmt(0.99)
        );
    }
    println!();
    println!(
        "Keap calls: {post_calls} for the posts ({calls_per} per honoured post), {} for reconciliation; status writes {}; 429s {}",
        stats.total_calls() - post_calls,
        stats.writes,
        stats.throttled
    );
    println!(
        "other contacts as the rules require (seeded opt-outs fixed, the rest untouched): {others_ok} of {}",
        others.len()
    );
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if honoured < expected_posts || !wrong.is_empty() {
        eprintln!("demo FAILED: {honoured}/{expected_posts} posts honoured");
        for w in wrong.iter().take(20) {
            eprintln!("  {w}");
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("all correct");
    Ok(ExitCode::SUCCESS)
}
