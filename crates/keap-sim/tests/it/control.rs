//! The /sim control API.

use keap::EmailStatus;
use serde_json::{Value, json};

use crate::http;

#[tokio::test]
async fn contacts_emails_events_and_stats_through_the_control_api() {
    let sim = crate::sim().await;
    let base = sim.base_url();
    let r = http()
        .post(format!("{base}/sim/contacts"))
        .json(&json!({"email1": "ann@example.com", "email2": "u1@relay.wedeliver.example", "status": "Confirmed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let one: Value = http()
        .get(format!("{base}/sim/contacts/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        one,
        json!({"id": id, "first_name": "", "last_name": "", "email1": "ann@example.com", "email2": "u1@relay.wedeliver.example", "email3": null,
               "statuses": {"ann@example.com": "Confirmed", "u1@relay.wedeliver.example": "Confirmed"}})
    );
    let all: Value = http()
        .get(format!("{base}/sim/contacts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);

    let r = http()
        .post(format!(
            "{base}/sim/emails/u1@relay.wedeliver.example/event"
        ))
        .json(&json!({"event": "set", "status": "HardBounce"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let e: Value = http()
        .get(format!("{base}/sim/emails/U1@relay.wedeliver.example"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        e,
        json!({"email": "u1@relay.wedeliver.example", "status": "HardBounce", "marketable": false})
    );
    assert_eq!(
        sim.status("u1@relay.wedeliver.example"),
        Some(EmailStatus::HardBounce)
    );

    for (path, body, want) in [
        (
            "/sim/emails/ann@example.com/event",
            json!({"event": "set"}),
            400,
        ),
        (
            "/sim/emails/ann@example.com/event",
            json!({"event": "explode"}),
            400,
        ),
        (
            "/sim/emails/ann@example.com/event",
            json!({"event": "set", "status": "OptOut"}),
            400,
        ),
        (
            "/sim/emails/nobody@example.com/event",
            json!({"event": "unsubscribe_link"}),
            404,
        ),
        ("/sim/contacts", json!({"email1": "not an address"}), 400),
        ("/sim/contacts", json!({"email2": "x@example.com"}), 400),
    ] {
        let r = http()
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{path} {body}");
    }
    assert_eq!(
        http()
            .get(format!("{base}/sim/contacts/999"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        sim.with_store(|s| s.contacts.len()),
        1,
        "nothing stored from bad input"
    );

    crate::get_json(&sim, &format!("/crm/rest/v2/contacts/{id}")).await;
    let stats: Value = http()
        .get(format!("{base}/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["calls"]["GET /crm/rest/v2/contacts/{id}"], 1);
    assert_eq!(
        (stats["writes"].as_u64(), stats["throttled"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(stats["action_posts"], json!([]));
    http()
        .delete(format!("{base}/sim/stats"))
        .send()
        .await
        .unwrap();
    assert!(sim.stats().calls.is_empty());
    let r = http()
        .post(format!("{base}/sim/clock"))
        .json(&json!({"advance_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "the system clock cannot be moved");
}

#[test]
fn the_binary_documents_every_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keap-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--contacts",
        "--seed",
        "--api-key",
        "--oauth-client",
        "--throttle",
        "--throttle-body",
        "--rest-opt-out",
        "--xmlrpc-opt-out-status",
        "--no-rest-opt-in-from-admin",
        "--action-set-url",
        "--action-set-on",
        "--action-set-attempts",
        "--token-lifetime",
        "--accept-query-token",
        "--manual-clock",
        "--tenant-id",
    ] {
        assert!(help.contains(flag), "{flag} is not documented");
    }
}
