//! Every fault the emulator can inject, and malformed answers, map to the right error.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use keap::{
    Api, AttemptOutcome, ContactId, Credential, EmailAddress, Error, KeapClient, Limits,
    OptOutMethod, Pacer, PacingConfig, PathAttempt,
};
use keap_sim::{FaultKind, KeapSim, SimConfig};

use crate::{KEY, client, unpaced};

fn id(n: i64) -> ContactId {
    ContactId::new(n).unwrap()
}

#[tokio::test]
async fn injected_faults_map_to_errors_that_say_whether_to_retry() {
    let config = SimConfig {
        fault_timeout_delay: Duration::from_secs(5),
        ..SimConfig::default()
    };
    let sim = KeapSim::builder()
        .config(config)
        .api_key(KEY)
        .start()
        .await
        .unwrap();
    let cid = sim.add_contact("a@example.com", None, None, keap::EmailStatus::SingleOptIn);
    let c = KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
        .pacer(unpaced())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();

    sim.inject_fault(FaultKind::ServerError, 1);
    let e = c.contact(id(cid)).await.unwrap_err();
    assert!(
        matches!(e, Error::Transient(_)) && e.is_retryable(),
        "{e:?}"
    );

    sim.inject_fault(FaultKind::Unauthorized, 1);
    let e = c.contact(id(cid)).await.unwrap_err();
    assert!(
        matches!(e, Error::Unauthorized(_)) && !e.is_retryable(),
        "{e:?}"
    );

    sim.inject_fault(FaultKind::Timeout, 1);
    let e = c.contact(id(cid)).await.unwrap_err();
    assert!(
        matches!(e, Error::Transient(_)) && e.is_retryable(),
        "{e:?}"
    );

    sim.inject_fault(FaultKind::Drop, 1);
    let e = c.contact(id(cid)).await.unwrap_err();
    assert!(
        matches!(e, Error::Transient(_)) && e.is_retryable(),
        "{e:?}"
    );

    let e = c.contacts_page(Some("not-a-token"), 10).await.unwrap_err();
    assert!(
        matches!(e, Error::InvalidRequest(_)) && !e.is_retryable(),
        "{e:?}"
    );

    let wrong_key = KeapClient::builder(sim.crm_url(), Credential::api_key("KeapAK-wrong"))
        .pacer(unpaced())
        .build()
        .unwrap();
    assert!(matches!(
        wrong_key.contact(id(cid)).await,
        Err(Error::Unauthorized(_))
    ));

    // After all that, the same client works.
    assert_eq!(c.contact(id(cid)).await.unwrap().addresses.len(), 1);
}

#[tokio::test]
async fn a_429_is_backed_off_and_retried_up_to_a_limit() {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let cid = sim.add_contact("a@example.com", None, None, keap::EmailStatus::SingleOptIn);
    let pacer = Arc::new(Pacer::new(PacingConfig {
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(40),
        ..PacingConfig::new(Limits {
            windows: vec![],
            daily: None,
        })
    }));
    let c = KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
        .pacer(pacer.clone())
        .max_throttle_retries(3)
        .build()
        .unwrap();
    sim.inject_fault(FaultKind::TooManyRequests, 2);
    c.contact(id(cid)).await.expect("succeeds after two 429s");
    assert_eq!(pacer.counters().1, 2);
    assert_eq!(c.calls_made(), 3);

    sim.inject_fault(FaultKind::TooManyRequests, 10);
    let e = c.contact(id(cid)).await.unwrap_err();
    assert!(
        matches!(e, Error::Throttled { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(e.retry_after().is_some());
}

#[tokio::test]
async fn xmlrpc_faults_come_back_with_code_and_category() {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let c = client(&sim, OptOutMethod::XmlRpc);
    // ContactService.load of a missing id: fault 5 → NotFound.
    assert!(matches!(c.contact(id(4242)).await, Err(Error::NotFound(_))));
    // optOut of an invalid address: fault 12, a refusal of that path, never a success.
    let r = c
        .opt_out(&EmailAddress::from_stored("not-an-address"), "x")
        .await
        .unwrap();
    assert!(!r.verified);
    match &r.attempts[..] {
        [
            PathAttempt {
                api: Api::XmlRpc,
                outcome: AttemptOutcome::Refused(why),
            },
        ] => assert!(
            why.contains("fault 12") && why.contains("[InvalidParameter]"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}

/// A server that answers nonsense, to check that nothing panics on it.
async fn garbage_server() -> String {
    let app = axum::Router::new()
        .route("/crm/rest/v2/contacts/{id}", get(|| async { "{not json" }))
        .route(
            "/crm/rest/v2/contacts",
            get(|| async { r#"{"contacts": [{"id": "seven"}]}"# }),
        )
        .route(
            "/crm/rest/v2/emailAddresses/{e}/status",
            get(|| async { r#"{"status": "TEMPORARILY_HAPPY"}"# }),
        )
        .route(
            "/crm/rest/v2/emailAddresses",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://169.254.169.254/")],
                )
            }),
        )
        .route(
            "/crm/xmlrpc/v1",
            post(|| async { "<methodResponse><params><param><value><i4>1" }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn malformed_answers_are_errors_not_panics() {
    let base = garbage_server().await;
    let rest = KeapClient::builder(&base, Credential::api_key(KEY))
        .pacer(unpaced())
        .build()
        .unwrap();
    assert!(matches!(rest.contact(id(1)).await, Err(Error::Protocol(_))));
    assert!(matches!(
        rest.contacts_page(None, 10).await,
        Err(Error::Protocol(_))
    ));
    assert!(matches!(
        rest.address_status(&EmailAddress::parse("a@b.example").unwrap())
            .await,
        Err(Error::Protocol(_))
    ));
    let redirected = rest.opted_out_page(None, 10).await.unwrap_err();
    assert!(
        matches!(redirected, Error::Protocol(ref m) if m.contains("redirect")),
        "{redirected:?}"
    );
    let xml = KeapClient::builder(&base, Credential::api_key(KEY))
        .pacer(unpaced())
        .opt_out_method(OptOutMethod::XmlRpc)
        .build()
        .unwrap();
    assert!(matches!(xml.contact(id(1)).await, Err(Error::Protocol(_))));
}

#[test]
fn bad_base_urls_are_refused() {
    for bad in [
        "",
        "ftp://x.example/crm",
        "not a url",
        "mailto:ops@example.com",
    ] {
        assert!(
            matches!(
                KeapClient::builder(bad, Credential::api_key(KEY)).build(),
                Err(Error::Config(_))
            ),
            "{bad:?}"
        );
    }
}
