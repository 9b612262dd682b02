//! Mailgun unsubscribes and complaints per sending domain, US and EU: the form and JSON
//! inserts of Mailgun's API reference (Unsubscribe, Complaints) and its Basic `api:KEY`.

use esp_sim::MailgunRegion;
use serde_json::json;

use crate::{http, list, sim, status_json};

const KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";

async fn mg_sim() -> esp_sim::EspSim {
    let cfg = esp_sim::SimConfig {
        mailgun_domains: vec![
            (MailgunRegion::Us, "mg.example.com".into()),
            (MailgunRegion::Eu, "eu.example.com".into()),
        ],
        ..Default::default()
    };
    sim(|b| b.config(cfg).credential("mailgun", KEY)).await
}

#[tokio::test]
async fn a_form_insert_defaults_to_every_tag_and_reads_back() {
    let sim = mg_sim().await;
    let url = sim.url("/mailgun/us/v3/mg.example.com/unsubscribes");
    let r = http()
        .post(&url)
        .basic_auth("api", Some(KEY))
        .form(&[("address", "bob@example.com")])
        .send()
        .await
        .unwrap();
    let (s, v) = status_json(r).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["message"],
        "Address has been added to the unsubscribes table"
    );
    let (s, v) = status_json(
        http()
            .get(format!("{url}/bob@example.com"))
            .basic_auth("api", Some(KEY))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["address"], "bob@example.com");
    assert_eq!(v["tags"], json!(["*"]));
    assert!(
        v["created_at"].as_str().unwrap().ends_with("+0000"),
        "RFC 2822"
    );
    let e = &list(&sim, "mailgun").await["entries"][0];
    assert_eq!(
        (&e["region"], &e["domain"], &e["list"]),
        (
            &json!("us"),
            &json!("mg.example.com"),
            &json!("unsubscribes")
        )
    );

    let r = http()
        .delete(format!("{url}/bob@example.com"))
        .basic_auth("api", Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http()
        .get(format!("{url}/bob@example.com"))
        .basic_auth("api", Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn a_json_bulk_insert_and_the_region_must_match_the_domain() {
    let sim = mg_sim().await;
    let records = json!([
        {"address": "alice@example.com", "tags": ["*"], "created_at": "Thu, 13 Oct 2011 18:02:00 +0000"},
        {"address": "bob@example.com"}
    ]);
    let eu = sim.url("/mailgun/eu/v3/eu.example.com/unsubscribes");
    let (s, v) = status_json(
        http()
            .post(&eu)
            .basic_auth("api", Some(KEY))
            .json(&records)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str().unwrap()),
        (200, "2 addresses have been added")
    );
    let us = sim.url("/mailgun/us/v3/eu.example.com/unsubscribes");
    let (s, v) = status_json(
        http()
            .post(&us)
            .basic_auth("api", Some(KEY))
            .json(&records)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(v["message"], "Domain not found: eu.example.com");
    let too_many: Vec<_> = (0..1001)
        .map(|i| json!({"address": format!("u{i}@example.com")}))
        .collect();
    let (s, _) = status_json(
        http()
            .post(&eu)
            .basic_auth("api", Some(KEY))
            .json(&too_many)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400, "at most 1,000 records");
    let complaints = sim.url("/mailgun/eu/v3/eu.example.com/complaints");
    let (s, v) = status_json(
        http()
            .post(&complaints)
            .basic_auth("api", Some(KEY))
            .form(&[("address", "carol@example.com")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str().unwrap()),
        (200, "Address has been added to the complaints table")
    );
    assert_eq!(
        list(&sim, "mailgun").await["entries"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn basic_auth_must_be_api_and_the_key() {
    let sim = mg_sim().await;
    let url = sim.url("/mailgun/us/v3/mg.example.com/unsubscribes");
    for (user, pass) in [("api", "key-wrong"), ("user", KEY)] {
        let r = http()
            .post(&url)
            .basic_auth(user, Some(pass))
            .form(&[("address", "a@example.com")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(r.text().await.unwrap(), "Forbidden");
    }
    let r = http()
        .post(&url)
        .form(&[("address", "not an address")])
        .basic_auth("api", Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

/// `curl -F address=… -F tag=*`, as Mailgun's examples send it: multipart/form-data.
#[tokio::test]
async fn a_multipart_form_is_read_like_a_urlencoded_one() {
    let sim = mg_sim().await;
    let body = "--b0undary\r\nContent-Disposition: form-data; name=\"address\"\r\n\r\ndave@example.com\r\n--b0undary\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nnewsletter\r\n--b0undary--\r\n";
    let r = http()
        .post(sim.url("/mailgun/us/v3/mg.example.com/unsubscribes"))
        .basic_auth("api", Some(KEY))
        .header("content-type", "multipart/form-data; boundary=b0undary")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let e = &list(&sim, "mailgun").await["entries"][0];
    assert_eq!(
        (&e["address"], &e["reason"]),
        (&json!("dave@example.com"), &json!("newsletter"))
    );
}
