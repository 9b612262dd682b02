//! The push job: a person's opt-out ends with every address of the contact on each
//! configured provider's list in esp-sim (every scope), verified; a job no Keap path can do
//! still pushes; a provider answering 429 and then 5xx for ten minutes buries nothing and is
//! never pushed to faster than the pace; the provider's echo of our own push changes nothing.
//! Keap, the providers and the service share one manual clock.

use std::time::Duration;

use esp_sim::{EspSim, FaultKind, Provider as Esp, SesReason};
use keap::EmailStatus;
use keap_sim::{RestOptOut, SimEvent};
use optsync::clock::{Clock, Millis};
use optsync::config::Settings;
use optsync::push::{PushClient, PushConfig, PushCredential};
use optsync::report::{self, Period};
use optsync::worker::JobOutcome;

use crate::esp::{post_raw, sendgrid_sign, test_public_key};
use crate::{Db, Options, TestApp, on_both_backends};

const T0: u64 = 1_800_000_000_000;
const SES_ID: &str = "AKIDPUSHJOBS0001";
const SES_SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYpushjobskey";
const KEY: &str = "push-jobs-test-key-0123456789abcdef";

struct World {
    t: TestApp,
    esp: EspSim,
    clock: Clock,
}

async fn world(db: Db, keap_path: bool, settings: fn(&mut Settings)) -> World {
    let clock = Clock::manual(T0);
    let t = TestApp::spawn_with(
        db,
        Options {
            clock: clock.clone(),
            bury_after: Duration::from_secs(72 * 3600),
            settings,
            ..Options::default()
        },
    )
    .await;
    if !keap_path {
        // keap-sim's `--rest-opt-out noop --xmlrpc off`.
        t.sim.configure(|c| c.rest_opt_out = RestOptOut::SilentNoOp);
        t.sim.set_xmlrpc_available(false);
    }
    let esp = ["sendgrid", "mailgun", "postmark", "sparkpost", "mandrill"]
        .into_iter()
        .fold(EspSim::builder().clock(clock.clone()), |b, p| {
            b.credential(p, KEY)
        })
        .credential("ses", &format!("{SES_ID}:{SES_SECRET}"))
        .ses_suppressed_reasons(&[SesReason::Complaint])
        .start()
        .await
        .expect("esp-sim starts");
    World { t, esp, clock }
}

impl World {
    /// Stores a push setting for `provider`, as `optsync provider push` does after its checks.
    async fn push_to(
        &self,
        provider: &str,
        prefix: &str,
        scope: fn(&mut PushConfig),
    ) -> PushConfig {
        let mut c = PushConfig {
            provider: provider.into(),
            api_url: Some(self.esp.url(prefix)),
            credential: PushCredential::ApiKey { key: KEY.into() },
            regions: vec![],
            domains: vec![],
            streams: vec![],
            senders: vec![],
            reason: None,
            marketing_only: false,
        };
        scope(&mut c);
        c.check_scope().unwrap();
        self.t
            .state
            .tenants
            .set_push(&self.t.app, &c)
            .await
            .unwrap();
        c
    }

    /// A contact with two addresses whose person opted out the first; Keap posts it.
    async fn person_stops(&self, tag: &str) -> Vec<String> {
        let (id, emails) = self.t.contact(tag, 2);
        self.t
            .sim
            .event(&emails[0], SimEvent::Set(EmailStatus::Manual))
            .unwrap();
        let (status, _) = self.t.post(&[("contactId", &id.to_string())]).await;
        assert_eq!(status, 200);
        emails
    }

    /// Each scope `address` is listed in at `provider`, as esp-sim's control API shows it.
    fn listed(&self, provider: Esp, address: &str) -> Vec<String> {
        let mut scopes: Vec<String> = self
            .esp
            .entries(provider)
            .into_iter()
            .filter(|e| e.address.eq_ignore_ascii_case(address))
            .map(|e| {
                let s = e.scope;
                [s.region, s.domain, s.stream, s.kind]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        scopes.sort();
        scopes
    }

    async fn count(&self, sql: &'static str) -> i64 {
        self.t.count(sql).await
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn each_provider_lists_both_addresses_in_every_scope(db: Db) {
    let w = world(db, true, |_| {}).await;
    let mut configs = Vec::new();
    configs.push(
        w.push_to("ses", "/ses", |c| {
            c.credential = PushCredential::Aws {
                access_key_id: SES_ID.into(),
                secret_access_key: SES_SECRET.into(),
            };
            c.regions = strings(&["us-east-1", "eu-west-1"]);
        })
        .await,
    );
    configs.push(w.push_to("sendgrid", "/sendgrid", |_| {}).await);
    configs.push(
        w.push_to("mailgun", "/mailgun/us", |c| {
            c.domains = strings(&["mg.example.com", "news.example.com"]);
        })
        .await,
    );
    configs.push(
        w.push_to("postmark", "/postmark", |c| {
            c.streams = strings(&["outbound", "broadcast"]);
        })
        .await,
    );
    configs.push(w.push_to("sparkpost", "/sparkpost", |_| {}).await);
    configs.push(w.push_to("mandrill", "/mandrill", |_| {}).await);
    let emails = w.person_stops("ann").await;
    let first = w.t.worker.drain().await.unwrap();
    assert!(
        matches!(first[0], JobOutcome::Done { writes: 1, .. }),
        "{first:?}"
    );
    // Postmark makes a suppression active after a delay: written, read again, not failed.
    let waiting = first
        .iter()
        .filter(|o| matches!(o, JobOutcome::Rechecking { .. }))
        .count();
    assert_eq!(waiting, 2, "both Postmark pushes wait: {first:?}");
    assert_eq!(w.count("SELECT COUNT(*) FROM suppressions").await, 10);
    w.clock.advance(Duration::from_secs(61));
    let later = w.t.worker.drain().await.unwrap();
    assert_eq!(later.len(), 2, "{later:?}");
    assert!(later.iter().all(|o| matches!(o, JobOutcome::Done { .. })));

    for email in &emails {
        assert_eq!(w.listed(Esp::Ses, email), ["eu-west-1", "us-east-1"]);
        assert_eq!(w.listed(Esp::Sendgrid, email), [""]);
        assert_eq!(
            w.listed(Esp::Mailgun, email),
            ["us/mg.example.com", "us/news.example.com"]
        );
        assert_eq!(w.listed(Esp::Postmark, email), ["broadcast", "outbound"]);
        assert_eq!(
            w.listed(Esp::Sparkpost, email),
            ["non_transactional", "transactional"]
        );
        assert_eq!(w.listed(Esp::Mandrill, email), [""]);
    }
    let verified = "SELECT COUNT(*) FROM suppressions WHERE verified = 1";
    assert_eq!(w.count(verified).await, 12, "6 providers × 2 addresses");
    let pushes = "SELECT COUNT(*) FROM jobs WHERE kind = 'push' AND state = 'done'";
    assert_eq!(w.count(pushes).await, 12);
    // What the console's address page reads live: each list, without writing.
    for c in &configs {
        let options = suppress::Options {
            clock: w.clock.clone(),
            ..suppress::Options::default()
        };
        let client = PushClient::new(c, options).unwrap();
        let on = client.lookup(&emails[1]).await.unwrap().unwrap();
        assert!(on.all_verified(), "{}: {on:?}", c.provider);
        let off = client.lookup("nobody@example.com").await.unwrap().unwrap();
        assert!(
            off.scopes.iter().all(|(_, v)| !v),
            "{}: {off:?}",
            c.provider
        );
        assert!(!off.scopes.is_empty());
    }
}
on_both_backends!(each_provider_lists_both_addresses_in_every_scope);

async fn blocked_in_keap_and_suppressed_at_the_provider(db: Db) {
    let w = world(db, false, |_| {}).await;
    w.push_to("sendgrid", "/sendgrid", |_| {}).await;
    let emails = w.person_stops("bo").await;
    let out = w.t.worker.drain().await.unwrap();
    assert!(
        matches!(out[0], JobOutcome::Blocked { .. }),
        "Keap cannot be written: {out:?}"
    );
    assert_eq!(out.len(), 3, "the blocked job, then both pushes: {out:?}");
    assert_eq!(
        w.t.statuses(&emails)[1],
        Some(EmailStatus::SingleOptIn),
        "still mailable through Keap"
    );
    for email in &emails {
        assert_eq!(w.listed(Esp::Sendgrid, email), [""], "{email}");
    }
    let blocked = "SELECT COUNT(*) FROM jobs WHERE kind = 'opt_out' AND state = 'blocked'";
    assert_eq!(w.count(blocked).await, 1);

    let r = report::build(
        &w.t.state.store,
        &Period {
            app: None,
            since: Millis(0),
            until: Millis(i64::MAX),
        },
    )
    .await
    .unwrap();
    let line = &r.opt_outs[0];
    assert!(line.why_not.as_deref().unwrap_or("").starts_with("blocked"));
    let text = line.addresses_text();
    for email in &emails {
        assert!(
            text.contains(&format!(
                "{email} blocked in Keap, suppressed at SendGrid after"
            )),
            "{text}"
        );
    }
    // The next blocked retry pushes nothing again: both are suppressed already.
    w.clock.advance(Duration::from_secs(300));
    let again = w.t.worker.drain().await.unwrap();
    assert!(
        matches!(again[..], [JobOutcome::Blocked { .. }]),
        "{again:?}"
    );
}
on_both_backends!(blocked_in_keap_and_suppressed_at_the_provider);

/// Pushes per second never above this, in the storm test.
const PACE: u64 = 2;

/// SendGrid write calls so far.
fn sendgrid_writes(esp: &EspSim) -> u64 {
    esp.stats()
        .calls
        .iter()
        .filter(|(k, _)| k.starts_with("sendgrid POST"))
        .map(|(_, n)| n)
        .sum()
}

async fn a_storm_of_429_then_5xx_buries_nothing_and_keeps_the_pace(db: Db) {
    let w = world(db, true, |s| {
        s.push_per_second = PACE as u32;
        s.retry_cap = Duration::from_secs(120);
    })
    .await;
    w.push_to("sendgrid", "/sendgrid", |_| {}).await;
    w.esp
        .set_outage(Esp::Sendgrid, Some(FaultKind::TooManyRequests));
    let mut all = Vec::new();
    for i in 0..6 {
        all.extend(w.person_stops(&format!("storm{i}")).await);
    }
    let dead = "SELECT COUNT(*) FROM jobs WHERE state = 'dead'";
    let mut most = 0;
    // Twenty minutes in steps of a second: 429s for five, 5xx for five, then healthy.
    for second in 0..1200 {
        match second {
            300 => w
                .esp
                .set_outage(Esp::Sendgrid, Some(FaultKind::ServerError)),
            600 => w.esp.set_outage(Esp::Sendgrid, None),
            _ => {}
        }
        let before = sendgrid_writes(&w.esp);
        w.t.worker.drain().await.unwrap();
        let writes = sendgrid_writes(&w.esp) - before;
        most = most.max(writes);
        assert!(writes <= PACE, "{writes} pushes in second {second}");
        if second % 60 == 0 {
            assert_eq!(w.count(dead).await, 0, "no push dead by second {second}");
        }
        w.clock.advance(Duration::from_secs(1));
    }
    assert!(most >= 1);
    assert_eq!(w.count(dead).await, 0);
    let done = "SELECT COUNT(*) FROM jobs WHERE kind = 'push' AND state = 'done'";
    assert_eq!(
        w.count(done).await,
        12,
        "every push completed after the storm"
    );
    for email in &all {
        assert_eq!(w.listed(Esp::Sendgrid, email), [""], "{email}");
    }
    // A burst on a healthy provider: six pushes due at once go out at exactly the pace.
    for i in 0..3 {
        w.person_stops(&format!("burst{i}")).await;
    }
    let mut per_second = Vec::new();
    for _ in 0..4 {
        let before = sendgrid_writes(&w.esp);
        w.t.worker.drain().await.unwrap();
        per_second.push(sendgrid_writes(&w.esp) - before);
        w.clock.advance(Duration::from_secs(1));
    }
    assert_eq!(per_second, [PACE, PACE, PACE, 0]);
}
on_both_backends!(a_storm_of_429_then_5xx_buries_nothing_and_keeps_the_pace);

async fn the_echo_of_our_own_push_changes_nothing(db: Db) {
    let w = world(db, true, |_| {}).await;
    w.push_to("sendgrid", "/sendgrid", |_| {}).await;
    w.t.state
        .tenants
        .set_provider(
            &w.t.app,
            optsync::providers::Provider::Sendgrid,
            &optsync::providers::ProviderConfig::Sendgrid {
                public_key: test_public_key(),
                max_age_secs: 300,
            },
        )
        .await
        .unwrap();
    let emails = w.person_stops("echo").await;
    w.t.worker.drain().await.unwrap();
    assert_eq!(w.listed(Esp::Sendgrid, &emails[1]), [""]);
    let jobs = "SELECT COUNT(*) FROM jobs";
    let (jobs_before, audit_before) = (
        w.count(jobs).await,
        w.count("SELECT COUNT(*) FROM audit").await,
    );
    w.t.sim.reset_stats();

    // SendGrid reports it dropped a message to the address: it is on its list, ours.
    let now = w.clock.epoch_ms() / 1000;
    let body = format!(
        r#"[{{"email":"{}","timestamp":{now},"event":"dropped","reason":"Unsubscribed Address","sg_event_id":"echo-1"}}]"#,
        emails[1]
    )
    .into_bytes();
    let ts = now.to_string();
    let headers = vec![
        (
            "x-twilio-email-event-webhook-signature",
            sendgrid_sign(&ts, &body),
        ),
        ("x-twilio-email-event-webhook-timestamp", ts),
        ("content-type", "application/json".to_string()),
    ];
    let url =
        w.t.state
            .tenants
            .provider_url(&w.t.app, optsync::providers::Provider::Sendgrid);
    let (status, out) = post_raw(&url, &headers, body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out["queued"].as_u64(),
        Some(0),
        "recorded, nothing queued: {out}"
    );
    assert!(w.t.worker.drain().await.unwrap().is_empty());
    assert_eq!(w.count(jobs).await, jobs_before, "no job, no push");
    assert_eq!(w.count("SELECT COUNT(*) FROM audit").await, audit_before);
    assert_eq!(w.t.sim.stats().total_calls(), 0, "Keap untouched");
    let echo = "SELECT COUNT(*) FROM events WHERE kind = 'suppressed' AND job_id IS NULL AND honoured_at IS NOT NULL";
    assert_eq!(w.count(echo).await, 1, "the echo is recorded");
}
on_both_backends!(the_echo_of_our_own_push_changes_nothing);
