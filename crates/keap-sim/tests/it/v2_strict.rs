//! As strict as Keap's own v2 document (its §15 corrections): string ids, `fields` that
//! select what comes back (`id` included), the documented contact filters, operators and
//! orders, page-size bounds, create-contact validation, API keys as bearer tokens, and the
//! worlds Keap may present (what the REST opt-out does, whether XML-RPC is there).

use keap::EmailStatus;
use keap_sim::{KeapSim, SimConfig, Unauthorized401};
use serde_json::{Value, json};

use crate::{KEY, get_json, http, sim, xmlrpc_call};

async fn post_json(sim: &KeapSim, path: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", sim.base_url()))
        .header("X-Keap-API-Key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn ids(body: &Value) -> Vec<i64> {
    body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().expect("ids are strings").parse().unwrap())
        .collect()
}

#[tokio::test]
async fn fields_select_what_comes_back_and_ids_are_strings() {
    let sim = sim().await;
    let id = sim.add_contact("ann@example.com", None, None, EmailStatus::SingleOptIn);
    let path = format!("/crm/rest/v2/contacts/{id}");
    let (_, plain) = get_json(&sim, &path).await;
    assert!(plain.get("id").is_none(), "id only when asked: {plain}");
    assert!(plain.get("email_addresses").is_some());
    let (_, asked) = get_json(&sim, &format!("{path}?fields=id,email_addresses")).await;
    assert_eq!(asked["id"], json!(id.to_string()));
    let keys: Vec<&String> = asked.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "only what was asked for: {asked}");
    let (_, only_id) = get_json(&sim, &format!("{path}?fields=id")).await;
    assert_eq!(only_id, json!({"id": id.to_string()}));
    let (status, err) = get_json(&sim, &format!("{path}?fields=id,shoe_size")).await;
    assert_eq!((status, err["code"].as_i64()), (400, Some(400)));
    // The switch for a Keap that does send id unasked.
    sim.configure(|c| c.contact_id_by_default = true);
    let (_, plain) = get_json(&sim, &path).await;
    assert_eq!(plain["id"], json!(id.to_string()));
}

#[tokio::test]
async fn contact_filters_operators_and_orders_are_the_documented_ones() {
    let sim = sim().await;
    let a = sim.add_contact("zed@example.com", None, None, EmailStatus::SingleOptIn);
    let b = sim.add_contact(
        "amy@example.com",
        Some("amy2@x.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    let c = sim.add_contact("max@example.com", None, None, EmailStatus::SingleOptIn);
    let list = |q: &str| {
        let sim = &sim;
        let q = q.to_string();
        async move { get_json(sim, &format!("/crm/rest/v2/contacts?fields=id&{q}")).await }
    };
    assert_eq!(
        ids(&list(&format!("filter=contact_id%3E%3D{b}")).await.1),
        vec![b, c]
    );
    assert_eq!(
        ids(&list(&format!("filter=contact_id%3C{b}")).await.1),
        vec![a]
    );
    assert_eq!(
        ids(&list(&format!("filter=contact_ids%3D%3D{a},{c}")).await.1),
        vec![a, c]
    );
    assert_eq!(
        ids(&list("filter=email%3D%3Damy2%40x.example").await.1),
        vec![b]
    );
    assert_eq!(ids(&list("filter=email%3D%3Dm%2A").await.1), vec![c]);
    assert_eq!(ids(&list("order_by=email").await.1), vec![b, c, a]);
    assert_eq!(ids(&list("order_by=id%20desc").await.1), vec![c, b, a]);
    assert!(
        ids(&list("filter=city%3D%3DChandler").await.1).is_empty(),
        "documented, unheld"
    );
    for bad in [
        "filter=shoe_size%3D%3D9",
        "filter=given_name%3EA",
        "order_by=given_name",
        "order_by=id%20sideways",
        "page_size=1001",
        "page_size=-1",
    ] {
        let (status, body) = list(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], 400, "the Error schema: {body}");
    }
}

#[tokio::test]
async fn creating_a_contact_needs_a_way_to_reach_it() {
    let sim = sim().await;
    let (status, body) = post_json(
        &sim,
        "/crm/rest/v2/contacts",
        json!({"given_name": "Nobody"}),
    )
    .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(400)), "{body}");
    let new = json!({"email_addresses": [{"email": "new@example.com", "field": "EMAIL1"}]});
    let (status, body) = post_json(&sim, "/crm/rest/v2/contacts", new.clone()).await;
    assert_eq!(status, 201);
    let id = body["id"].as_str().expect("a string id").to_string();
    let mut dup = new;
    dup["duplicate_option"] = json!("Email");
    let (status, body) = post_json(&sim, "/crm/rest/v2/contacts", dup).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())));
}

#[tokio::test]
async fn a_service_key_works_as_a_bearer_token_and_401_has_a_switchable_body() {
    let sim = sim().await;
    let id = sim.add_contact("bo@example.com", None, None, EmailStatus::SingleOptIn);
    let get = |auth: &'static str| {
        let url = format!("{}/crm/rest/v2/contacts/{id}?fields=id", sim.base_url());
        async move {
            let r = http()
                .get(url)
                .header("Authorization", auth)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let bearer: &'static str = Box::leak(format!("Bearer {KEY}").into_boxed_str());
    assert_eq!(get(bearer).await.0, 200);
    let (status, body) = get("Bearer KeapAK-wrong").await;
    assert_eq!(status, 401);
    assert!(
        body.get("fault").is_some(),
        "Apigee's fault by default: {body}"
    );
    sim.configure(|c| c.unauthorized_401 = Unauthorized401::ErrorSchema);
    let (status, body) = get("Bearer KeapAK-wrong").await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(401)), "{body}");
}

#[tokio::test]
async fn xmlrpc_switched_off_answers_an_http_error_never_a_fault() {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .config(SimConfig {
            xmlrpc_available: false,
            api_keys: vec![KEY.into()],
            ..SimConfig::default()
        })
        .start()
        .await
        .unwrap();
    let call = r#"<?xml version="1.0"?><methodCall><methodName>APIEmailService.getOptStatus</methodName><params><param><value>k</value></param><param><value>a@x.example</value></param></params></methodCall>"#;
    let (status, ct, body) = xmlrpc_call(&sim, "/crm/xmlrpc/v1", call).await;
    assert_eq!(status, 503);
    assert!(
        ct.starts_with("text/html") && !body.contains("methodResponse"),
        "{body}"
    );
    // A brownout ends: switched back on at run time through the control API.
    let r = http()
        .put(format!("{}/sim/xmlrpc", sim.base_url()))
        .json(&json!({"available": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc/v1", call).await;
    assert_eq!(status, 200);
    assert!(body.contains("methodResponse"));
}
