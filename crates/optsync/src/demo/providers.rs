//! The demo's sending providers: SendGrid and Mailgun, with keys made up for the demo, and
//! deliveries signed the way those services sign them.

use p256::ecdsa::SigningKey;

use super::scenario::Scenario;
use crate::providers::signers::{mailgun_signature, sendgrid_public_key, sendgrid_signature};
use crate::providers::{MAILGUN_MAX_AGE_SECS, Provider, ProviderConfig, SENDGRID_MAX_AGE_SECS};
use crate::tenant::Tenants;

const MAILGUN_KEY: &str = "demo-mailgun-webhook-signing-key";

fn sendgrid_key() -> anyhow::Result<SigningKey> {
    SigningKey::from_bytes(&[42u8; 32].into()).map_err(|e| anyhow::anyhow!("demo key: {e}"))
}

pub async fn configure(tenants: &Tenants, app: &str) -> anyhow::Result<()> {
    let sendgrid = ProviderConfig::Sendgrid {
        public_key: sendgrid_public_key(&sendgrid_key()?),
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

/// Posts the providers' reports: one signed SendGrid batch, one signed Mailgun request per
/// bounce.
pub async fn send(
    base: &str,
    app: &str,
    now_secs: i64,
    reported: &[(Scenario, String)],
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let ts = now_secs.to_string();
    let of = |sc| {
        reported
            .iter()
            .filter(move |(s, _)| *s == sc)
            .map(|(_, e)| e)
    };
    let spam: Vec<serde_json::Value> = of(Scenario::SendgridSpam)
        .enumerate()
        .map(|(i, e)| serde_json::json!({"email": e, "timestamp": now_secs, "event": "spamreport", "sg_event_id": format!("demo-spam-{i}")}))
        .collect();
    if !spam.is_empty() {
        let body = serde_json::to_vec(&spam)?;
        let r = http
            .post(format!("{base}/hooks/esp/sendgrid/{app}"))
            .header("content-type", "application/json;charset=utf-8")
            .header(
                "x-twilio-email-event-webhook-signature",
                sendgrid_signature(&sendgrid_key()?, &ts, &body),
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
    for (i, e) in of(Scenario::MailgunBounce).enumerate() {
        let token = format!("demo{i:046}");
        let body = serde_json::json!({
            "signature": {"timestamp": ts, "token": token, "signature": mailgun_signature(MAILGUN_KEY, &ts, &token)},
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
