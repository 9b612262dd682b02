//! `optsync demo`: the whole system against an in-process Keap emulator.
//!
//! Seeds the emulator, runs the service on a temporary SQLite database with a tenant wired to
//! the emulator's opt-out action set, makes people opt out in the ways Keap knows (unsubscribe
//! links through EMAIL1 and EMAIL2, a user's manual opt-out, a bounce, an unengaged
//! transition) and through their mail providers' signed webhooks, waits for the service, runs
//! a reconciliation sweep, then checks every contact against the rules and prints a report.
//! Exits non-zero if anything is wrong. Steps: [`setup`], the [`scenario`] table, [`act`],
//! [`wait_for_posts`], [`check`], [`report`].

mod check;
mod providers;
mod relay;
mod scenario;

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use keap::{EmailStatus, OptOutMethod};
use keap_sim::{KeapSim, Throttle};

use crate::app::{App, ServeOptions, Serving};
use crate::clock::Clock;
use crate::config::Settings;
use crate::reconcile::{SweepOptions, sweep};
use crate::store::{EventSource, JobKind};
use crate::tenant::{StoredCredential, TenantSpec};
use check::{Outcome, World, percentile};
use scenario::Scenario;

const CLIENT_ID: &str = "optsync-demo";
const CLIENT_SECRET: &str = "demo-client-secret";
const APP: &str = "demo";
const WORKERS: usize = 4;

/// The running demo: the emulator, the service and its data directory.
struct Demo {
    dir: PathBuf,
    sim: KeapSim,
    relay: relay::Relay,
    app: App,
    serving: Serving,
    public_url: String,
}

/// What people did.
struct Acted {
    plan: Vec<(Scenario, i64)>,
    /// Statuses before anyone acted.
    before: HashMap<String, EmailStatus>,
    clicked_at: HashMap<i64, i64>,
    /// Addresses reported by a provider rather than Keap.
    reported: Vec<(Scenario, String)>,
}

fn now_ms() -> i64 {
    Clock::system().epoch_ms()
}

pub async fn run(contacts: usize, seed: u64, keep: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let demo = setup(contacts, seed).await?;
    let acted = act(&demo).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let expected_posts = acted.plan.iter().filter(|(sc, _)| sc.posts()).count();
    let honoured = wait_for_posts(&demo, expected_posts, deadline).await?;
    wait_idle(&demo.app, deadline).await?;
    let post_calls = demo.sim.stats().total_calls();
    reconcile(&demo, deadline).await?;
    relay::wait_pushed(&demo.app, deadline).await?;
    let Demo {
        dir,
        sim,
        relay,
        app,
        serving,
        ..
    } = demo;
    serving.stop().await;
    let world = world(&sim, &acted);
    let outcome = check::check(
        &world,
        &acted.plan,
        &acted.clicked_at,
        &app.store().honoured_events().await?,
    );
    let events = honoured + acted.reported.len();
    report(&outcome, &sim, post_calls, events);
    let unlisted = relay.report(app.store()).await?;
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    if keep {
        keep_running(&app).await?;
    }
    sim.shutdown().await;
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if honoured < expected_posts || !outcome.wrong.is_empty() || !unlisted.is_empty() {
        eprintln!("demo FAILED: {honoured}/{expected_posts} posts honoured");
        for w in outcome.wrong.iter().chain(&unlisted).take(20) {
            eprintln!("  {w}");
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("all correct");
    Ok(ExitCode::SUCCESS)
}

/// Serves again, with the console, until Ctrl-C: the demo's data stays to be looked at. The
/// password is random, printed once, and good for this run only (the data directory goes).
async fn keep_running(app: &App) -> anyhow::Result<()> {
    let password = crate::console::auth::random_token()[..20].to_string();
    let hash = crate::console::auth::hash_password(&password)?;
    app.store()
        .set_admin_password("admin", &hash, now_ms().into())
        .await?;
    let opts = ServeOptions {
        workers: WORKERS,
        sweeps: None,
        admin: Some(App::bind(([127, 0, 0, 1], 0).into()).await?),
    };
    let serving = app
        .serve(App::bind(([127, 0, 0, 1], 0).into()).await?, opts)
        .await?;
    let console = serving
        .admin_addr
        .map(|a| format!("http://{a}/"))
        .unwrap_or_default();
    println!();
    println!("the service and the console keep running; Ctrl-C to stop");
    println!("console: {console}  (user admin, one-time password {password})");
    println!("metrics: {console}metrics");
    crate::app::shutdown_signal().await;
    serving.stop().await;
    Ok(())
}

/// Keap, emulated (real OAuth-client limits, 1,500/min, the action set posting to us), and
/// the service on a fresh SQLite database with one tenant and two providers.
async fn setup(contacts: usize, seed: u64) -> anyhow::Result<Demo> {
    let dir =
        std::env::temp_dir().join(format!("optsync-demo-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "optsync demo — {contacts} seeded contacts, data in {}",
        dir.display()
    );
    let sim = KeapSim::builder()
        .oauth_client(CLIENT_ID, CLIENT_SECRET)
        .throttle(Throttle::Real)
        .seed(contacts, seed)
        .start()
        .await?;
    let listener = App::bind(([127, 0, 0, 1], 0).into()).await?;
    let public_url = format!("http://{}", listener.local_addr()?);
    let mut settings = Settings::for_dir(&dir, None);
    settings.public_url = public_url.clone();
    // The emulated Keap and every emulated provider connect from loopback: one client to the
    // per-client cap, where in production they are many. Only the total cap applies here.
    settings.max_connections_per_client = settings.max_connections;
    // Within the emulated SendGrid's 15,000 calls a minute (a push is a write and a read).
    settings.push_per_second = relay::PUSHES_PER_SECOND;
    let app = App::open(settings).await?;
    app.tenants()
        .add(TenantSpec {
            app: APP.into(),
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
            allow_http: true,
        })
        .await?;
    providers::configure(app.tenants(), APP).await?;
    let relay = relay::start(app.tenants(), APP).await?;
    sim.set_action_set_url(Some(&app.tenants().post_url(APP).await?));
    let opts = ServeOptions {
        workers: WORKERS,
        sweeps: None,
        admin: None,
    };
    let serving = app.serve(listener, opts).await?;
    println!(
        "service on {public_url} with {WORKERS} workers; Keap's action set posts to /process_optout.php?app={APP}&auth=…"
    );
    Ok(Demo {
        dir,
        sim,
        relay,
        app,
        serving,
        public_url,
    })
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

/// Contacts whose addresses are all marketable and not shared (so each scenario's expected
/// outcome is plain), dealt out to the scenarios; and the statuses before anyone acts.
fn plan(sim: &KeapSim) -> (Vec<(Scenario, i64)>, HashMap<String, EmailStatus>) {
    let (candidates, before) = sim.with_store(|s| {
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
    let mut plan = Vec::new();
    for sc in Scenario::ALL {
        plan.extend(pool.by_ref().take(sc.count()).map(|id| (sc, id)));
    }
    (plan, before)
}

/// People act: in Keap (which posts for unsubscribe links) or at their mail provider.
async fn act(demo: &Demo) -> anyhow::Result<Acted> {
    let (plan, before) = plan(&demo.sim);
    anyhow::ensure!(
        !plan.is_empty(),
        "the seed has no suitable contacts; use more --contacts"
    );
    let mut clicked_at = HashMap::new();
    let mut reported = Vec::new();
    for (sc, id) in &plan {
        let (field, event) = sc.event();
        let email = demo
            .sim
            .contact(*id)
            .and_then(|c| c.emails[field].clone())
            .context("planned contact vanished")?;
        clicked_at.insert(*id, now_ms());
        if sc.provider() {
            reported.push((*sc, email));
        } else {
            demo.sim.event(&email, event)?;
        }
    }
    providers::send(&demo.public_url, APP, now_ms() / 1000, &reported).await?;
    let posts = plan.iter().filter(|(sc, _)| sc.posts()).count();
    println!(
        "{} people acted: {posts} through unsubscribe links (Keap posts), {} through their mail provider (signed webhooks), {} in ways Keap announces to nobody",
        plan.len(),
        reported.len(),
        plan.len() - posts - reported.len()
    );
    Ok(Acted {
        plan,
        before,
        clicked_at,
        reported,
    })
}

/// Waits for every Keap post to be honoured, showing progress — one line redrawn in place on
/// a terminal, only the final line when standard error is not one (no carriage returns in a
/// log); how many were.
async fn wait_for_posts(demo: &Demo, expected: usize, deadline: Instant) -> anyhow::Result<usize> {
    let terminal = std::io::stderr().is_terminal();
    loop {
        let n = demo
            .app
            .store()
            .honoured_events()
            .await?
            .iter()
            .filter(|e| e.source == EventSource::KeapPost)
            .count();
        let stats = demo.sim.stats();
        let line = format!(
            "  honoured {n}/{expected} posts · Keap calls {} · 429s {}",
            stats.total_calls(),
            stats.throttled
        );
        let last = n >= expected || Instant::now() > deadline;
        if terminal {
            eprint!("\r{line}   ");
            let _ = std::io::stderr().flush();
        }
        if last {
            if terminal {
                eprintln!();
            } else {
                eprintln!("{line}");
            }
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until no opt-out in Keap is pending or running (the relay's pushes are waited for
/// before its own report).
async fn wait_idle(app: &App, deadline: Instant) -> anyhow::Result<()> {
    while app.store().unfinished_of(JobKind::OptOut).await? > 0 {
        anyhow::ensure!(Instant::now() < deadline, "the queue did not drain in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// What Keap announced to nobody (the manual opt-outs) is found by a sweep.
async fn reconcile(demo: &Demo, deadline: Instant) -> anyhow::Result<()> {
    let tenant = demo.app.tenants().get(APP).await?;
    let started = Instant::now();
    let r = sweep(demo.app.state(), &tenant, &SweepOptions::default()).await?;
    wait_idle(&demo.app, deadline).await?;
    println!(
        "reconciliation: {} sweep of {} contacts in {} Keap calls found {} contacts to fix ({:.1} s)",
        r.kind.map_or("no".into(), |k| k.to_string()),
        r.contacts_scanned,
        r.calls,
        r.contacts_queued,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Keap's statuses after, set against those the people left.
fn world(sim: &KeapSim, acted: &Acted) -> World {
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
    let mut pre = acted.before.clone();
    for (sc, id) in &acted.plan {
        let (field, event) = sc.event();
        if let Some(e) = emails_of.get(id).and_then(|v| v.get(field)) {
            pre.insert(e.clone(), event.status());
        }
    }
    let reported = |want: Scenario| -> HashSet<String> {
        acted
            .reported
            .iter()
            .filter(|(sc, _)| *sc == want)
            .map(|(_, e)| e.to_lowercase())
            .collect()
    };
    World {
        emails_of,
        pre,
        after,
        provider_stops: reported(Scenario::SendgridSpam),
        bounced: reported(Scenario::MailgunBounce),
    }
}

fn report(o: &Outcome, sim: &KeapSim, post_calls: u64, events: usize) {
    println!();
    println!(
        "{:<28} {:>6} {:>8} {:>10} {:>10}  note",
        "scenario", "count", "correct", "p50 ms", "p99 ms"
    );
    for (sc, row) in &o.rows {
        let mut times = row.times.clone();
        times.sort_unstable();
        let fmt = |p| percentile(&times, p).map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<28} {:>6} {:>8} {:>10} {:>10}  {}",
            sc.name(),
            row.count,
            row.correct,
            fmt(0.5),
            fmt(0.99),
            sc.note()
        );
    }
    let stats = sim.stats();
    let calls_per = match events {
        0 => "-".into(),
        n => format!("{:.1}", post_calls as f64 / n as f64),
    };
    println!();
    println!(
        "Keap calls: {post_calls} for the posts and webhooks ({calls_per} per honoured event), {} for reconciliation; status writes {}; 429s {}",
        stats.total_calls() - post_calls,
        stats.writes,
        stats.throttled
    );
    println!(
        "other contacts as the rules require (seeded opt-outs fixed, the rest untouched): {} of {}",
        o.others_ok, o.others
    );
}
