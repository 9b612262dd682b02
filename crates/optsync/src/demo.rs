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
    /// A SendGrid spam report (signed Event Webhook) for EMAIL1.
    SendgridSpam,
    /// A Mailgun permanent failure (signed webhook) for EMAIL2.
    MailgunBounce,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Self::UnsubscribeEmail1,
        Self::UnsubscribeEmail2,
        Self::ManualOptOut,
        Self::HardBounce,
        Self::Unengaged,
        Self::SendgridSpam,
        Self::MailgunBounce,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::UnsubscribeEmail1 => "unsubscribe link, EMAIL1",
            Self::UnsubscribeEmail2 => "unsubscribe link, EMAIL2",
            Self::ManualOptOut => "manual opt-out (Admin)",
            Self::HardBounce => "hard bounce in Keap",
            Self::Unengaged => "unengaged non-marketable",
            Self::SendgridSpam => "SendGrid spam report, EMAIL1",
            Self::MailgunBounce => "Mailgun hard bounce, EMAIL2",
        }
    }

    /// Reported by a sending provider's webhook rather than by Keap.
    fn provider(self) -> bool {
        matches!(self, Self::SendgridSpam | Self::MailgunBounce)
    }

    /// (which address, what happens to it)
    fn event(self) -> (usize, SimEvent) {
        match self {
            Self::UnsubscribeEmail1 => (0, SimEvent::UnsubscribeLink),
            Self::UnsubscribeEmail2 => (1, SimEvent::UnsubscribeLink),
            Self::ManualOptOut => (0, SimEvent::ManualOptOut),
            Self::HardBounce => (0, SimEvent::HardBounce),
            Self::Unengaged => (0, SimEvent::UnengagedNonMarketable),
            // Keap hears nothing of these; the status is what it already was.
            Self::SendgridSpam => (0, SimEvent::Set(EmailStatus::SingleOptIn)),
            Self::MailgunBounce => (1, SimEvent::Set(EmailStatus::SingleOptIn)),
        }
    }

    fn posts(self) -> bool {
        matches!(self, Self::UnsubscribeEmail1 | Self::UnsubscribeEmail2)
    }

    fn count(self) -> usize {
        match self {
            Self::UnsubscribeEmail1 | Self::UnsubscribeEmail2 => 40,
            Self::SendgridSpam | Self::MailgunBounce => 15,
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
    providers::configure(&tenants, "demo").await?;
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
    let mut reported: Vec<(Scenario, String)> = Vec::new();
    for (sc, id) in &plan {
        let (field, event) = sc.event();
        let email = sim
            .contact(*id)
            .and_then(|c| c.emails[field].clone())
            .context("planned contact vanished")?;
        clicked_at.insert(*id, now_ms());
        if sc.provider() {
            reported.push((*sc, email));
        } else {
            sim.event(&email, event)?;
        }
    }
    let provider_stops: std::collections::HashSet<String> = reported
        .iter()
        .filter(|(sc, _)| *sc == Scenario::SendgridSpam)
        .map(|(_, e)| e.to_lowercase())
        .collect();
    let bounced: std::collections::HashSet<String> = reported
        .iter()
        .filter(|(sc, _)| *sc == Scenario::MailgunBounce)
        .map(|(_, e)| e.to_lowercase())
        .collect();
    providers::send(&public_url, "demo", &reported).await?;
    let expected_posts = plan.iter().filter(|(sc, _)| sc.posts()).count();
    println!(
        "{} people acted: {expected_posts} through unsubscribe links (Keap posts), {} through their mail provider (signed webhooks), {} in ways Keap announces to nobody",
        plan.len(),
        reported.len(),
        plan.len() - expected_posts - reported.len()
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
    let mut honoured_by_email: HashMap<String, i64> = HashMap::new();
    for r in sqlx::query("SELECT email, honoured_at FROM events WHERE source LIKE 'esp:%' AND honoured_at IS NOT NULL")
        .fetch_all(store.pool())
        .await?
    {
        let (e, h): (String, i64) = (r.try_get("email")?, r.try_get("honoured_at")?);
        honoured_by_email.insert(e.to_lowercase(), h);
    }
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
            .any(|e| pre.get(e).is_some_and(|s| s.is_stop()) || provider_stops.contains(e))
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
            v.iter().all(|e| {
                after.get(e) == pre.get(e)
                    || target_addresses.contains(e)
                    || (bounced.contains(e) && after.get(e).is_some_and(|s| is_settled(*s)))
            })
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
        let honoured = honoured_at
            .get(id)
            .or_else(|| emails_of[id].iter().find_map(|e| honoured_by_email.get(e)));
        if let (Some(h), Some(c)) = (honoured, clicked_at.get(id))
            && (is_target(id) || sc.provider())
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
    let events = honoured + reported.len();
    let calls_per = if events > 0 {
        format!("{:.1}", post_calls as f64 / events as f64)
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
            Scenario::SendgridSpam => "signed webhook: every address opted out",
            Scenario::MailgunBounce => "signed webhook: that address only",
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
        "Keap calls: {post_calls} for the posts and webhooks ({calls_per} per honoured event), {} for reconciliation; status writes {}; 429s {}",
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

/// The demo's sending providers: SendGrid and Mailgun, with keys made up for the demo, and
/// deliveries signed the way those services sign them.
mod providers {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use hmac::{Hmac, Mac};
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::EncodePublicKey as _;
    use sha2::Sha256;

    use super::Scenario;
    use crate::providers::{MAILGUN_MAX_AGE_SECS, Provider, ProviderConfig, SENDGRID_MAX_AGE_SECS};
    use crate::tenant::Tenants;

    const MAILGUN_KEY: &str = "demo-mailgun-webhook-signing-key";

    fn sendgrid_key() -> anyhow::Result<SigningKey> {
        SigningKey::from_bytes(&[42u8; 32].into()).map_err(|e| anyhow::anyhow!("demo key: {e}"))
    }

    pub async fn configure(tenants: &Tenants, app: &str) -> anyhow::Result<()> {
        let public = p256::PublicKey::from(sendgrid_key()?.verifying_key())
            .to_public_key_der()
            .map_err(|e| anyhow::anyhow!("demo key: {e}"))?;
        let sendgrid = ProviderConfig::Sendgrid {
            public_key: B64.encode(public.as_bytes()),
            max_age_secs: SENDGRID_MAX_AGE_SECS,
        };
        tenants
            .set_provider(app, Provider::Sendgrid, &sendgrid)
            .await?;
        let mailgun = ProviderConfig::Mailgun {
            signing_key: MAILGUN_KEY.into(),
            max_age_secs: MAILGUN_MAX_AGE_SECS,
        };
        tenants
            .set_provider(app, Provider::Mailgun, &mailgun)
            .await?;
        Ok(())
    }

    /// Posts the providers' reports: one signed SendGrid batch, one signed Mailgun request
    /// per bounce.
    pub async fn send(
        base: &str,
        app: &str,
        reported: &[(Scenario, String)],
    ) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let now = super::now_ms() / 1000;
        let spam: Vec<serde_json::Value> = reported
            .iter()
            .filter(|(s, _)| *s == Scenario::SendgridSpam)
            .enumerate()
            .map(|(i, (_, e))| serde_json::json!({"email": e, "timestamp": now, "event": "spamreport", "sg_event_id": format!("demo-spam-{i}")}))
            .collect();
        if !spam.is_empty() {
            let body = serde_json::to_vec(&spam)?;
            let ts = now.to_string();
            let mut signed = ts.as_bytes().to_vec();
            signed.extend_from_slice(&body);
            let sig: Signature = sendgrid_key()?.sign(&signed);
            let r = http
                .post(format!("{base}/hooks/esp/sendgrid/{app}"))
                .header("content-type", "application/json;charset=utf-8")
                .header(
                    "x-twilio-email-event-webhook-signature",
                    B64.encode(sig.to_der().as_bytes()),
                )
                .header("x-twilio-email-event-webhook-timestamp", &ts)
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "SendGrid webhook answered {}",
                r.status()
            );
        }
        for (i, (_, e)) in reported
            .iter()
            .filter(|(s, _)| *s == Scenario::MailgunBounce)
            .enumerate()
        {
            let ts = now.to_string();
            let token = format!("demo{i:046}");
            let mut mac = Hmac::<Sha256>::new_from_slice(MAILGUN_KEY.as_bytes())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            mac.update(ts.as_bytes());
            mac.update(token.as_bytes());
            let body = serde_json::json!({
                "signature": {"timestamp": ts, "token": token, "signature": hex::encode(mac.finalize().into_bytes())},
                "event-data": {"event": "failed", "severity": "permanent", "reason": "bounce", "recipient": e},
            });
            let r = http
                .post(format!("{base}/hooks/esp/mailgun/{app}"))
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "Mailgun webhook answered {}",
                r.status()
            );
        }
        Ok(())
    }
}
