//! Providers with one list per account: SendGrid, Mandrill, Mailjet, Brevo.

use std::time::Duration;

use esp_sim::{FaultKind, Provider as P, RateLimit};
use suppress::{
    BrevoClient, Error, MailjetClient, MandrillClient, Provider, Scope, SendgridClient,
};

use crate::{options, secret, sim};

#[tokio::test]
async fn sendgrid_verifies_and_a_429_says_when_to_come_back() {
    let limit = RateLimit {
        limit: 2,
        window: Duration::from_secs(60),
    };
    let sim = sim(|b| {
        b.credential("sendgrid", "SG.k")
            .rate_limit(P::Sendgrid, Some(limit))
    })
    .await;
    let client = SendgridClient::new(
        Some(&sim.url("/sendgrid")),
        secret("SG.k"),
        None,
        options(&sim),
    )
    .unwrap();
    let done = client.suppress("jane@example.com").await.unwrap();
    assert_eq!(done.scopes, vec![(Scope::Account, true)]);
    let e = client.suppress("bob@example.com").await.unwrap_err();
    assert_eq!(
        e,
        Error::RateLimited {
            provider: Provider::Sendgrid,
            retry_after: Some(Duration::from_secs(60))
        }
    );
    sim.clock().advance(Duration::from_secs(60));
    assert!(
        client
            .suppress("bob@example.com")
            .await
            .unwrap()
            .all_verified()
    );

    sim.set_outage(P::Sendgrid, Some(FaultKind::ServerError));
    let e = client.suppress("carol@example.com").await.unwrap_err();
    assert!(matches!(e, Error::Transient { .. }) && e.is_retryable());
    sim.set_outage(P::Sendgrid, None);
    let bad = SendgridClient::new(
        Some(&sim.url("/sendgrid")),
        secret("SG.other"),
        None,
        options(&sim),
    )
    .unwrap();
    let e = bad.suppress("carol@example.com").await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }) && !e.is_retryable());
}

#[tokio::test]
async fn mandrill_adds_and_reports_an_allowlisted_address_and_a_bad_key() {
    let sim = sim(|b| b.credential("mandrill", "md-k")).await;
    let client = MandrillClient::new(
        Some(&sim.url("/mandrill")),
        secret("md-k"),
        Some("cust-1".into()),
        options(&sim),
    )
    .unwrap();
    client.suppress("jane@example.com").await.unwrap();
    assert_eq!(
        sim.entries(P::Mandrill)[0].scope.subaccount.as_deref(),
        Some("cust-1")
    );
    sim.mandrill_allow("vip@example.com");
    assert!(matches!(
        client.suppress("vip@example.com").await,
        Err(Error::NoEffect { .. })
    ));
    let bad = MandrillClient::new(
        Some(&sim.url("/mandrill")),
        secret("nope"),
        None,
        options(&sim),
    )
    .unwrap();
    assert!(matches!(
        bad.suppress("a@example.com").await,
        Err(Error::Auth { .. })
    ));
}

#[tokio::test]
async fn mailjet_creates_or_updates_the_contact_for_campaigns_only() {
    let sim = sim(|b| b.credential("mailjet", "pub:priv")).await;
    let client = MailjetClient::new(
        Some(&sim.url("/mailjet")),
        "pub".into(),
        secret("priv"),
        options(&sim),
    )
    .unwrap();
    for _ in 0..2 {
        let done = client.suppress("jane@example.com").await.unwrap();
        assert_eq!(done.scopes, vec![(Scope::Campaigns, true)]);
    }
    let entries = sim.entries(P::Mailjet);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].scope.list.as_deref(), Some("campaigns"));
}

#[tokio::test]
async fn brevo_blocks_campaigns_and_every_sender() {
    let sim = sim(|b| b.credential("brevo", "xkeysib-k")).await;
    let senders = [
        "news@relay.example".to_string(),
        "billing@relay.example".to_string(),
    ];
    let client = BrevoClient::new(
        Some(&sim.url("/brevo")),
        secret("xkeysib-k"),
        &senders,
        options(&sim),
    )
    .unwrap();
    for _ in 0..2 {
        client.suppress("jane@example.com").await.unwrap();
    }
    let entries = sim.entries(P::Brevo);
    let mut scopes: Vec<_> = entries
        .iter()
        .map(|e| e.scope.sender.clone().unwrap_or_default())
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["", "billing@relay.example", "news@relay.example"]);
}

#[tokio::test]
async fn every_call_has_a_timeout_and_a_cap_on_the_answer() {
    let sim = sim(|b| b.credential("sendgrid", "SG.k")).await;
    sim.configure(|c| c.fault_timeout_delay = Duration::from_secs(5));
    sim.inject_fault(P::Sendgrid, FaultKind::Timeout, 1);
    let quick = suppress::Options {
        timeout: Duration::from_millis(300),
        ..options(&sim)
    };
    let client =
        SendgridClient::new(Some(&sim.url("/sendgrid")), secret("SG.k"), None, quick).unwrap();
    let started = std::time::Instant::now();
    let e = client.suppress("jane@example.com").await.unwrap_err();
    assert!(matches!(e, Error::Transient { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let tiny = suppress::Options {
        max_body: 8,
        ..options(&sim)
    };
    let client =
        SendgridClient::new(Some(&sim.url("/sendgrid")), secret("SG.k"), None, tiny).unwrap();
    let e = client.suppress("jane@example.com").await.unwrap_err();
    assert!(
        matches!(e, Error::Permanent { ref detail, .. } if detail.contains("larger than 8")),
        "{e:?}"
    );
}

/// Whether a provider refuses a re-add is undocumented: a second suppression succeeds and is
/// verified under either reading.
#[tokio::test]
async fn a_second_suppression_succeeds_whatever_a_readd_answers() {
    for readd in [esp_sim::ReAdd::Accept, esp_sim::ReAdd::Refuse] {
        let sim = sim(|b| {
            b.credential("sendgrid", "SG.k")
                .credential("mailgun", "mg")
                .credential("mandrill", "md")
        })
        .await;
        sim.configure(|c| c.readd = readd);
        let o = || options(&sim);
        let sg =
            SendgridClient::new(Some(&sim.url("/sendgrid")), secret("SG.k"), None, o()).unwrap();
        let domains = ["mg.example.com".to_string()];
        let mg = suppress::MailgunClient::new(
            Some(&sim.url("/mailgun/us")),
            suppress::MailgunRegion::Us,
            secret("mg"),
            &domains,
            o(),
        )
        .unwrap();
        let md = MandrillClient::new(Some(&sim.url("/mandrill")), secret("md"), None, o()).unwrap();
        for _ in 0..2 {
            assert!(
                sg.suppress("jane@example.com")
                    .await
                    .unwrap()
                    .all_verified(),
                "{readd:?}"
            );
            assert!(
                mg.suppress("jane@example.com")
                    .await
                    .unwrap()
                    .all_verified(),
                "{readd:?}"
            );
            assert!(
                md.suppress("jane@example.com")
                    .await
                    .unwrap()
                    .all_verified(),
                "{readd:?}"
            );
        }
    }
}
