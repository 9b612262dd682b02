//! REST v2: contacts, email-address status, lists with filters and opaque page tokens.

use keap::EmailStatus;
use keap_sim::{KeapSim, RestOptOut};
use serde_json::{Value, json};

use crate::{KEY, get_json, http, sim};

async fn patch(sim: &KeapSim, email: &str, body: Value) -> (u16, Value) {
    let r = http()
        .patch(format!(
            "{}/crm/rest/v2/emailAddresses/{email}/status",
            sim.base_url()
        ))
        .header("X-Keap-API-Key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_contact_comes_with_each_address_and_its_status() {
    let sim = sim().await;
    let id = sim.add_contact(
        "ann@example.com",
        Some("u1@relay.wedeliver.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    sim.event(
        "u1@relay.wedeliver.example",
        keap_sim::SimEvent::Set(EmailStatus::Manual),
    )
    .unwrap();
    let (status, body) = get_json(
        &sim,
        &format!("/crm/rest/v2/contacts/{id}?fields=email_addresses"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["email_addresses"],
        json!([
            {"email": "ann@example.com", "field": "EMAIL1", "is_opt_in": true, "email_opt_status": "SINGLE_OPT_IN"},
            {"email": "u1@relay.wedeliver.example", "field": "EMAIL2", "is_opt_in": false, "email_opt_status": "MANUAL"},
        ])
    );
    let (status, body) = get_json(&sim, "/crm/rest/v2/contacts/424242").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], 404);
    assert_eq!(body["status"], "Not Found");
    assert!(body["message"].is_string() && body["details"].is_array());
    assert_eq!(get_json(&sim, "/crm/rest/v2/contacts/abc").await.0, 400);
}

#[tokio::test]
async fn contact_lists_page_with_opaque_tokens_and_filter_on_all_three_fields() {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .seed(2_500, 11)
        .start()
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let (status, body) = get_json(
            &sim,
            &format!("/crm/rest/v2/contacts?page_size=1000&fields=id&page_token={token}"),
        )
        .await;
        assert_eq!(status, 200);
        pages += 1;
        ids.extend(
            body["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().parse::<i64>().unwrap()),
        );
        token = body["next_page_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, (1..=2_500).collect::<Vec<i64>>());
    // A shared address is found whichever field holds it.
    let (email, holders) = sim.with_store(|s| {
        s.rows
            .keys()
            .map(|k| (k.clone(), s.holders(k)))
            .find(|(_, h)| h.len() > 1)
            .unwrap()
    });
    let (_, body) = get_json(
        &sim,
        &format!(
            "/crm/rest/v2/contacts?fields=id,email_addresses&filter=email%3D%3D{}",
            email.to_uppercase()
        ),
    )
    .await;
    let found: Vec<i64> = body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().parse::<i64>().unwrap())
        .collect();
    assert_eq!(found, holders);
    for bad in [
        "page_size=1001",
        "filter=nonsense",
        "filter=shoe_size%3D%3D9",
        "page_token=%25%25",
    ] {
        let (status, body) = get_json(&sim, &format!("/crm/rest/v2/contacts?{bad}")).await;
        assert_eq!((status, body["code"].as_i64()), (400, Some(400)), "{bad}");
    }
}

#[tokio::test]
async fn created_contacts_are_non_marketable_without_an_opt_in_reason() {
    let sim = sim().await;
    let r = http()
        .post(format!("{}/crm/rest/v2/contacts", sim.base_url()))
        .header("X-Keap-API-Key", KEY)
        .json(&json!({"given_name": "Cy", "email_addresses": [
            {"email": "cy@example.com", "field": "EMAIL1"},
            {"email": "cy@relay.wedeliver.example", "field": "EMAIL2", "opt_in_reason": "form"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["email_addresses"][0]["email_opt_status"],
        "SINGLE_OPT_IN"
    );
    let r = http()
        .post(format!("{}/crm/rest/v2/contacts", sim.base_url()))
        .header("X-Keap-API-Key", KEY)
        .json(&json!({"email_addresses": [{"email": "no-at-sign", "field": "EMAIL1"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(sim.with_store(|s| s.contacts.len()), 1);
}

#[tokio::test]
async fn status_patch_opts_out_per_switch_and_never_back_in_from_a_stop() {
    let sim = sim().await;
    sim.add_contact(
        "a@example.com",
        Some("b@example.com"),
        Some("c@example.com"),
        EmailStatus::SingleOptIn,
    );
    let (status, body) = get_json(&sim, "/crm/rest/v2/emailAddresses/a@example.com/status").await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["opted_in"].as_bool(), body["status"].as_str()),
        (Some(true), Some("SINGLE_OPT_IN"))
    );
    assert!(body["create_time"].is_string());

    let (status, body) = patch(
        &sim,
        "a@example.com",
        json!({"opted_in": false, "reason": "asked"}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ADMIN")));
    assert_eq!(sim.stats().writes, 1);
    // Again: nothing changes, nothing counted.
    patch(
        &sim,
        "a@example.com",
        json!({"opted_in": false, "reason": "asked"}),
    )
    .await;
    assert_eq!(sim.stats().writes, 1);

    sim.configure(|c| c.rest_opt_out = RestOptOut::SilentNoOp);
    let (status, body) = patch(
        &sim,
        "b@example.com",
        json!({"opted_in": false, "reason": "asked"}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("SINGLE_OPT_IN"))
    );
    assert_eq!(sim.status("b@example.com"), Some(EmailStatus::SingleOptIn));

    sim.event(
        "c@example.com",
        keap_sim::SimEvent::Set(EmailStatus::ListUnsubscribe),
    )
    .unwrap();
    let (_, body) = patch(
        &sim,
        "c@example.com",
        json!({"opted_in": true, "reason": "please"}),
    )
    .await;
    assert_eq!(body["status"], "LIST_UNSUBSCRIBE");

    assert_eq!(
        patch(&sim, "a@example.com", json!({"opted_in": false}))
            .await
            .0,
        400
    );
    assert_eq!(
        patch(&sim, "a@example.com", json!({"reason": "x"})).await.0,
        400
    );
    assert_eq!(
        patch(
            &sim,
            "nobody@example.com",
            json!({"opted_in": false, "reason": "x"})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        get_json(
            &sim,
            "/crm/rest/v2/emailAddresses/nobody@example.com/status"
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn address_lists_filter_order_and_page() {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .seed(3_000, 5)
        .start()
        .await
        .unwrap();
    let expected: Vec<String> = sim.with_store(|s| {
        let mut v: Vec<String> = s
            .rows
            .values()
            .filter(|r| !r.status.is_marketable())
            .map(|r| r.email.to_lowercase())
            .collect();
        v.sort();
        v
    });
    assert!(
        expected.len() > 1_000,
        "needs more than one page: {}",
        expected.len()
    );
    let mut got = Vec::new();
    let mut token = String::new();
    loop {
        let (status, body) = get_json(
            &sim,
            &format!("/crm/rest/v2/emailAddresses?filter=opted_in%3D%3Dfalse&order_by=email&page_size=1000&page_token={token}"),
        )
        .await;
        assert_eq!(status, 200);
        for a in body["email_addresses"].as_array().unwrap() {
            assert_eq!(a["opted_in"], false);
            got.push(a["email"].as_str().unwrap().to_lowercase());
        }
        token = body["next_page_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(got, expected);

    let (_, body) = get_json(
        &sim,
        "/crm/rest/v2/emailAddresses?filter=statuses%3D%3DHARD_BOUNCE,SPAM&page_size=1000",
    )
    .await;
    assert!(
        body["email_addresses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "HARD_BOUNCE" || a["status"] == "SPAM")
    );
    let (_, body) = get_json(
        &sim,
        "/crm/rest/v2/emailAddresses?order_by=email%20desc&page_size=3",
    )
    .await;
    let firsts: Vec<&str> = body["email_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    let mut sorted = firsts.clone();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.to_lowercase()));
    assert_eq!(firsts, sorted);
    let one = &expected[0];
    let (_, body) = get_json(
        &sim,
        &format!("/crm/rest/v2/emailAddresses?filter=emails%3D%3D{one},x@nowhere.example"),
    )
    .await;
    assert_eq!(body["email_addresses"].as_array().unwrap().len(), 1);
    assert_eq!(
        get_json(&sim, "/crm/rest/v2/emailAddresses?order_by=shoe_size")
            .await
            .0,
        400
    );
    assert_eq!(
        get_json(
            &sim,
            "/crm/rest/v2/emailAddresses?filter=opted_in%3D%3Dmaybe"
        )
        .await
        .0,
        400
    );
}
