//! The demo's relay: it sends Keap's mail on through SendGrid and SES, both emulated by
//! esp-sim, and the app pushes every person's opt-out to both providers' suppression lists.
//! The demo reports the time to suppressed beside the time to honoured and checks each list
//! in esp-sim against what optsync recorded.

use std::time::{Duration, Instant};

use esp_sim::{EspSim, RateLimit, SesReason};

use super::check::percentile;
use crate::app::App;
use crate::providers::Provider;
use crate::push::{PushClient, PushConfig, PushCredential};
use crate::store::{JobKind, Store};
use crate::tenant::Tenants;

const SENDGRID_KEY: &str = "SG.optsync-demo-relay-key";
const SES_ID: &str = "AKIAOPTSYNCDEMORELAY";
const SES_SECRET: &str = "optsync-demo-relay-secret-access-key";
const SES_REGION: &str = "us-east-1";
/// The demo's pace: its relay's SendGrid account allows 25 times the emulator's default
/// (600 calls a minute), so the demo's few hundred pushes do not wait minutes.
pub const PUSHES_PER_SECOND: u32 = 100;
const SENDGRID_CALLS_PER_MINUTE: u32 = 15_000;

/// The emulated providers the relay sends through.
pub struct Relay {
    esp: EspSim,
}

fn config(esp: &EspSim, provider: &str, credential: PushCredential) -> PushConfig {
    PushConfig {
        provider: provider.into(),
        api_url: Some(esp.url(&format!("/{provider}"))),
        credential,
        regions: match provider {
            "ses" => vec![SES_REGION.into()],
            _ => Vec::new(),
        },
        domains: Vec::new(),
        streams: Vec::new(),
        senders: Vec::new(),
        reason: None,
        marketing_only: false,
    }
}

/// Starts esp-sim and sets up the app's pushes to SendGrid and SES, checked as
/// `optsync provider push` checks them.
pub async fn start(tenants: &Tenants, app: &str) -> anyhow::Result<Relay> {
    let esp = EspSim::builder()
        .credential("sendgrid", SENDGRID_KEY)
        .credential("ses", &format!("{SES_ID}:{SES_SECRET}"))
        .ses_suppressed_reasons(&[SesReason::Complaint])
        .rate_limit(
            esp_sim::Provider::Sendgrid,
            Some(RateLimit {
                limit: SENDGRID_CALLS_PER_MINUTE,
                window: Duration::from_secs(60),
            }),
        )
        .start()
        .await?;
    let sendgrid = PushCredential::ApiKey {
        key: SENDGRID_KEY.into(),
    };
    let ses = PushCredential::Aws {
        access_key_id: SES_ID.into(),
        secret_access_key: SES_SECRET.into(),
    };
    for c in [config(&esp, "sendgrid", sendgrid), config(&esp, "ses", ses)] {
        c.check_scope()?;
        PushClient::new(&c, suppress::Options::default())?
            .check()
            .await?;
        tenants.set_push(app, &c).await?;
    }
    println!(
        "relay: sends through SendGrid and SES ({SES_REGION}) on esp-sim {}; every opt-out is pushed to both lists",
        esp.base_url()
    );
    Ok(Relay { esp })
}

/// Waits until every push is done.
pub async fn wait_pushed(app: &App, deadline: Instant) -> anyhow::Result<()> {
    while app.store().unfinished_of(JobKind::Push).await? > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pushes did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

impl Relay {
    /// Prints time to suppressed per provider; the addresses optsync recorded as suppressed
    /// that the provider's list does not hold (none when all is well).
    pub async fn report(&self, store: &Store) -> anyhow::Result<Vec<String>> {
        let rows = store.suppressions(None, None, i64::MAX).await?;
        let mut missing = Vec::new();
        println!();
        println!(
            "{:<28} {:>6} {:>8} {:>10} {:>10}  note",
            "relay: suppressed at", "count", "listed", "p50 ms", "p99 ms"
        );
        for (provider, esp) in [
            (Provider::Sendgrid, esp_sim::Provider::Sendgrid),
            (Provider::Ses, esp_sim::Provider::Ses),
        ] {
            let listed: Vec<String> = self
                .esp
                .entries(esp)
                .into_iter()
                .map(|e| e.address.to_lowercase())
                .collect();
            let mine: Vec<_> = rows
                .iter()
                .filter(|(_, s)| s.provider == provider)
                .collect();
            let mut times: Vec<u64> = mine
                .iter()
                .map(|(_, s)| (s.suppressed_at - s.requested_at).max(0) as u64)
                .collect();
            times.sort_unstable();
            let absent: Vec<String> = mine
                .iter()
                .filter(|(_, s)| !listed.contains(&s.email))
                .map(|(_, s)| format!("{} not on {}'s list", s.email, provider.title()))
                .collect();
            let fmt = |p| percentile(&times, p).map_or("-".to_string(), |v| v.to_string());
            println!(
                "{:<28} {:>6} {:>8} {:>10} {:>10}  from the opt-out's arrival, read back",
                provider.title(),
                mine.len(),
                mine.len() - absent.len(),
                fmt(0.5),
                fmt(0.99),
            );
            missing.extend(absent);
        }
        Ok(missing)
    }

    pub async fn shutdown(self) {
        self.esp.shutdown().await;
    }
}
