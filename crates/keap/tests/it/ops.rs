//! Each operation, over REST and over XML-RPC, against the emulator's own state.

use std::collections::BTreeMap;

use keap::{ContactId, EmailAddress, EmailField, EmailStatus, OptOutMethod, OptOutPath};
use keap_sim::{KeapSim, RestOptOut, SimEvent};

use crate::{KEY, client};

const READS: [OptOutMethod; 2] = [OptOutMethod::Rest, OptOutMethod::XmlRpc];

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

#[tokio::test]
async fn a_contact_with_its_addresses_and_statuses() {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let id = sim.add_contact(
        "Ann@Example.com",
        Some("u1@relay.wedeliver.example"),
        Some("ann@work.example"),
        EmailStatus::Confirmed,
    );
    sim.event("u1@relay.wedeliver.example", SimEvent::UnsubscribeLink)
        .unwrap();
    for m in READS {
        let c = client(&sim, m);
        let contact = c.contact(ContactId::new(id).unwrap()).await.unwrap();
        let got: Vec<(EmailField, &str, EmailStatus)> = contact
            .addresses
            .iter()
            .map(|a| (a.field, a.email.as_str(), a.status))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    EmailField::Email1,
                    "Ann@example.com",
                    EmailStatus::Confirmed
                ),
                (
                    EmailField::Email2,
                    "u1@relay.wedeliver.example",
                    EmailStatus::Manual
                ),
                (
                    EmailField::Email3,
                    "ann@work.example",
                    EmailStatus::Confirmed
                ),
            ],
            "{m:?}"
        );
        let expected_calls = if m == OptOutMethod::Rest { 1 } else { 4 };
        assert_eq!(c.calls_made(), expected_calls, "{m:?}");
        let missing = c
            .contact(ContactId::new(99_999).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(missing, keap::Error::NotFound(_)),
            "{m:?}: {missing:?}"
        );
    }
}

#[tokio::test]
async fn contacts_holding_an_address_in_any_field() {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let a = sim.add_contact("office@acme.example", None, None, EmailStatus::SingleOptIn);
    let b = sim.add_contact(
        "bo@acme.example",
        Some("OFFICE@acme.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    let c = sim.add_contact(
        "cy@acme.example",
        None,
        Some("office@acme.example"),
        EmailStatus::SingleOptIn,
    );
    sim.add_contact("other@acme.example", None, None, EmailStatus::SingleOptIn);
    for m in READS {
        let ids = client(&sim, m)
            .contacts_with_address(&addr("Office@ACME.example"))
            .await
            .unwrap();
        assert_eq!(
            ids.iter().map(|i| i.get()).collect::<Vec<_>>(),
            vec![a, b, c],
            "{m:?}"
        );
        assert!(
            client(&sim, m)
                .contacts_with_address(&addr("none@acme.example"))
                .await
                .unwrap()
                .is_empty()
        );
        let weird = client(&sim, m)
            .contacts_with_address(&addr("a%b@acme.example"))
            .await;
        assert!(
            matches!(weird, Err(keap::Error::InvalidRequest(_))),
            "{m:?}"
        );
    }
}

#[tokio::test]
async fn the_status_of_one_address() {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    sim.add_contact("hb@example.com", None, None, EmailStatus::HardBounce);
    for m in READS {
        let c = client(&sim, m);
        assert_eq!(
            c.address_status(&addr("HB@example.com")).await.unwrap(),
            Some(EmailStatus::HardBounce),
            "{m:?}"
        );
        assert_eq!(
            c.address_status(&addr("nobody@example.com")).await.unwrap(),
            None,
            "{m:?}"
        );
    }
}

#[tokio::test]
async fn opt_out_over_each_method_is_verified() {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    sim.add_contact(
        "r@example.com",
        Some("x@example.com"),
        Some("nm@example.com"),
        EmailStatus::SingleOptIn,
    );
    sim.event("nm@example.com", SimEvent::Set(EmailStatus::NonMarketable))
        .unwrap();

    let rest = client(&sim, OptOutMethod::Rest)
        .opt_out(&addr("r@example.com"), "asked")
        .await
        .unwrap();
    assert_eq!(
        (rest.path, rest.verified, rest.status_after, rest.calls),
        (OptOutPath::Rest, true, Some(EmailStatus::Admin), 2)
    );

    let x = client(&sim, OptOutMethod::XmlRpc)
        .opt_out(&addr("x@example.com"), "asked")
        .await
        .unwrap();
    assert_eq!(
        (x.path, x.verified, x.status_after, x.calls),
        (OptOutPath::XmlRpc, true, Some(EmailStatus::Admin), 2)
    );

    let nm = client(&sim, OptOutMethod::Auto)
        .opt_out(&addr("nm@example.com"), "asked")
        .await
        .unwrap();
    assert_eq!((nm.path, nm.verified), (OptOutPath::Rest, true));
    assert_eq!(sim.stats().writes, 3);
    assert_eq!(sim.stats().calls.get("APIEmailService.optOut"), Some(&1));
}

#[tokio::test]
async fn auto_falls_back_to_xmlrpc_when_the_rest_write_does_not_take_and_says_so() {
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    sim.configure(|c| c.rest_opt_out = RestOptOut::SilentNoOp);
    sim.add_contact("stubborn@example.com", None, None, EmailStatus::Confirmed);
    let report = client(&sim, OptOutMethod::Auto)
        .opt_out(&addr("stubborn@example.com"), "complaint")
        .await
        .unwrap();
    assert_eq!(report.path, OptOutPath::XmlRpcFallback);
    assert!(report.verified);
    assert_eq!(report.status_after, Some(EmailStatus::Admin));
    assert_eq!(report.calls, 4, "PATCH, read back, optOut, read back");
    assert_eq!(sim.status("stubborn@example.com"), Some(EmailStatus::Admin));

    // With REST alone the failure is reported, not hidden.
    sim.add_contact("stuck@example.com", None, None, EmailStatus::Confirmed);
    let report = client(&sim, OptOutMethod::Rest)
        .opt_out(&addr("stuck@example.com"), "x")
        .await
        .unwrap();
    assert_eq!(
        (report.verified, report.status_after),
        (false, Some(EmailStatus::Confirmed))
    );

    // An address Keap has never seen: REST says 404, XML-RPC creates it opted out.
    let report = client(&sim, OptOutMethod::Auto)
        .opt_out(&addr("new@example.com"), "x")
        .await
        .unwrap();
    assert_eq!(
        (report.path, report.verified),
        (OptOutPath::XmlRpcFallback, true)
    );
}

#[tokio::test]
async fn pages_of_contacts_and_of_opted_out_addresses_cover_everything_once() {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .seed(1_200, 9)
        .start()
        .await
        .unwrap();
    let truth: BTreeMap<i64, Vec<(String, EmailStatus)>> = sim.with_store(|s| {
        s.contacts
            .values()
            .map(|c| {
                let v = c
                    .emails
                    .iter()
                    .flatten()
                    .map(|e| (e.clone(), s.status(e).unwrap()))
                    .collect();
                (c.id, v)
            })
            .collect()
    });
    let opted_out: Vec<String> = sim.with_store(|s| {
        let mut v: Vec<String> = s
            .rows
            .values()
            .filter(|r| !r.status.is_marketable())
            .map(|r| r.email.to_lowercase())
            .collect();
        v.sort();
        v
    });
    for m in READS {
        let c = client(&sim, m);
        let mut seen = BTreeMap::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = c.contacts_page(cursor.as_deref(), 500).await.unwrap();
            pages += 1;
            for ct in page.contacts {
                let v = ct
                    .addresses
                    .iter()
                    .map(|a| (a.email.as_str().to_string(), a.status))
                    .collect::<Vec<_>>();
                assert!(seen.insert(ct.id.get(), v).is_none(), "contact twice");
            }
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(pages, 3, "{m:?}");
        let norm = |m: &BTreeMap<i64, Vec<(String, EmailStatus)>>| {
            m.iter()
                .map(|(k, v)| {
                    (
                        *k,
                        v.iter()
                            .map(|(e, s)| (EmailAddress::from_stored(e).as_str().to_string(), *s))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(norm(&seen), norm(&truth), "{m:?}");

        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = c.opted_out_page(cursor.as_deref(), 1000).await.unwrap();
            got.extend(page.addresses.iter().map(|a| {
                assert!(!a.status.is_marketable());
                a.email.as_str().to_lowercase()
            }));
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        got.sort();
        assert_eq!(got, opted_out, "{m:?}");
    }
}
