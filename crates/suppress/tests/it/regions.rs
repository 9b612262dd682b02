//! Providers whose lists have several scopes: SES regions, Mailgun domains, Postmark streams,
//! SparkPost types.

use std::time::Duration;

use esp_sim::{FaultKind, MailgunRegion as SimRegion, Provider as P, SesReason as SimReason};
use suppress::{
    Error, MailgunClient, MailgunRegion, PostmarkClient, Provider, Scope, SesClient,
    SesCredentials, SesReason, SparkpostClient,
};

use crate::{options, secret, sim};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn ses(sim: &esp_sim::EspSim, secret_key: &str, reason: SesReason) -> SesClient {
    let creds = SesCredentials {
        access_key_id: AKID.into(),
        secret_access_key: secret(secret_key),
    };
    let regions = ["us-east-1".to_string(), "eu-west-1".to_string()];
    SesClient::new(
        Some(&sim.url("/ses")),
        creds,
        &regions,
        reason,
        options(sim),
    )
    .unwrap()
}

#[tokio::test]
async fn ses_writes_every_region_verifies_and_checks_the_enforced_reason() {
    let sim = sim(|b| {
        b.credential("ses", &format!("{AKID}:{SECRET}"))
            .ses_suppressed_reasons(&[SimReason::Bounce])
    })
    .await;
    let client = ses(&sim, SECRET, SesReason::Complaint);
    match client.check_reason().await.unwrap_err() {
        Error::ReasonNotEnforced {
            region, enforced, ..
        } => {
            assert_eq!(
                (region.as_str(), enforced),
                ("us-east-1", vec!["BOUNCE".to_string()])
            );
        }
        e => panic!("{e:?}"),
    }
    sim.configure(|c| c.ses_suppressed_reasons = vec![SimReason::Bounce, SimReason::Complaint]);
    client.check_reason().await.unwrap();

    let done = client.suppress("Jane+news@Example.com").await.unwrap();
    assert!(done.all_verified());
    assert_eq!(done.scopes.len(), 2);
    let entries = sim.entries(P::Ses);
    let regions: Vec<_> = entries
        .iter()
        .map(|e| e.scope.region.clone().unwrap())
        .collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1"]);
    assert!(
        entries
            .iter()
            .all(|e| e.address == "Jane+news@Example.com"
                && e.reason.as_deref() == Some("COMPLAINT"))
    );

    let wrong = ses(&sim, "not-the-secret", SesReason::Complaint);
    assert!(matches!(
        wrong.suppress("a@example.com").await,
        Err(Error::Auth { .. })
    ));

    sim.inject_fault(P::Ses, FaultKind::TooManyRequests, 1);
    let e = client.suppress("b@example.com").await.unwrap_err();
    assert_eq!(
        e,
        Error::RateLimited {
            provider: Provider::Ses,
            retry_after: None
        }
    );
    assert!(
        client
            .suppress("b@example.com")
            .await
            .unwrap()
            .all_verified()
    );
}

#[tokio::test]
async fn mailgun_unsubscribes_on_every_domain_of_the_region() {
    let cfg = esp_sim::SimConfig {
        mailgun_domains: vec![
            (SimRegion::Eu, "a.example.com".into()),
            (SimRegion::Eu, "b.example.com".into()),
            (SimRegion::Us, "us.example.com".into()),
        ],
        ..Default::default()
    };
    let sim = sim(|b| b.config(cfg).credential("mailgun", "key-1")).await;
    let domains = ["a.example.com".to_string(), "b.example.com".to_string()];
    let eu = MailgunClient::new(
        Some(&sim.url("/mailgun/eu")),
        MailgunRegion::Eu,
        secret("key-1"),
        &domains,
        options(&sim),
    )
    .unwrap();
    let done = eu.suppress("bob@example.com").await.unwrap();
    assert_eq!(
        done.scopes,
        vec![
            (Scope::Domain("a.example.com".into()), true),
            (Scope::Domain("b.example.com".into()), true),
        ]
    );
    assert!(
        sim.entries(P::Mailgun)
            .iter()
            .all(|e| e.reason.as_deref() == Some("*"))
    );
    let us = MailgunClient::new(
        Some(&sim.url("/mailgun/us")),
        MailgunRegion::Us,
        secret("key-1"),
        &domains,
        options(&sim),
    )
    .unwrap();
    assert!(
        matches!(
            us.suppress("bob@example.com").await,
            Err(Error::Permanent { .. })
        ),
        "the domain is in the EU"
    );
}

#[tokio::test]
async fn postmark_waits_for_the_suppression_to_become_active() {
    let sim = sim(|b| b.credential("postmark", "pm-token")).await;
    let streams = ["outbound".to_string(), "broadcast".to_string()];
    let client = PostmarkClient::new(
        Some(&sim.url("/postmark")),
        secret("pm-token"),
        &streams,
        options(&sim),
    )
    .unwrap();
    let e = client.suppress("jane@example.com").await.unwrap_err();
    assert!(
        matches!(e, Error::NotConfirmedYet { retry_after, .. } if retry_after == Duration::from_secs(60))
    );
    assert!(e.is_retryable());
    assert_eq!(sim.entries(P::Postmark).len(), 2, "written on both streams");
    sim.clock().advance(Duration::from_secs(60));
    let done = client.verify("jane@example.com").await.unwrap();
    assert!(done.all_verified());
    assert_eq!(done.scopes[1].0, Scope::Stream("broadcast".into()));
    let bad = PostmarkClient::new(
        Some(&sim.url("/postmark")),
        secret("other"),
        &streams,
        options(&sim),
    )
    .unwrap();
    assert!(matches!(
        bad.suppress("a@example.com").await,
        Err(Error::Auth { .. })
    ));
}

#[tokio::test]
async fn sparkpost_writes_both_types_and_a_retry_completes_a_partial_insert() {
    let sim = sim(|b| b.credential("sparkpost", "sp-key")).await;
    let client = SparkpostClient::new(
        Some(&sim.url("/sparkpost")),
        secret("sp-key"),
        None,
        options(&sim),
    )
    .unwrap();
    sim.inject_fault(P::Sparkpost, FaultKind::Partial, 1);
    let e = client.suppress("jane@example.com").await.unwrap_err();
    assert!(matches!(e, Error::Transient { .. }), "{e:?}");
    assert_eq!(sim.entries(P::Sparkpost).len(), 1, "only part was inserted");
    let done = client.suppress("jane@example.com").await.unwrap();
    assert_eq!(
        done.scopes,
        vec![
            (Scope::Type("transactional"), true),
            (Scope::Type("non_transactional"), true)
        ]
    );
    assert_eq!(sim.entries(P::Sparkpost).len(), 2);
}
