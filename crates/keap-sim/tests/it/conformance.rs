//! Every REST v2 answer optsync relies on, checked against the schemas of Keap's own OpenAPI
//! document (`tests/fixtures/keap-v2-openapi.yml`): the schema of each route's response is
//! read from the document — its types, required fields, enums and declared properties — not
//! copied by hand. An answer carrying a property the document does not declare fails too:
//! the emulator must not be kinder than Keap.

use std::sync::OnceLock;

use keap::EmailStatus;
use keap_sim::{KeapSim, SimConfig, Unauthorized401};
use serde_json::{Value, json};

use crate::{KEY, get_json, http};

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/keap-v2-openapi.yml"
        );
        let text = std::fs::read_to_string(path).expect("the OpenAPI document");
        serde_norway::from_str(&text).expect("the OpenAPI document parses")
    })
}

/// The JSON schema of `method path`'s answer with `status`, as the document declares it.
fn response_schema(path: &str, method: &str, status: u16) -> &'static Value {
    let op = &doc()["paths"][path][method];
    assert!(op.is_object(), "the document has no {method} {path}");
    let s = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(s.is_object(), "{method} {path} declares no {status} answer");
    s
}

fn resolve(schema: &'static Value) -> &'static Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            resolve(&doc()["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Checks `v` against `schema`, collecting every difference with where it is.
fn check(schema: &'static Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let s = resolve(schema);
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(part, v, at, errs);
        }
        return;
    }
    if let Some(any) = s.get("oneOf").or(s.get("anyOf")).and_then(Value::as_array) {
        if !any.iter().any(|part| {
            let mut e = Vec::new();
            check(part, v, at, &mut e);
            e.is_empty()
        }) {
            errs.push(format!("{at}: matches none of the alternatives"));
        }
        return;
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
        errs.push(format!("{at}: {v} is not {types:?}"));
        return;
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        errs.push(format!("{at}: {v} is not one of the documented values"));
    }
    if s.get("format").and_then(Value::as_str) == Some("int32")
        && v.as_i64().is_some_and(|n| i32::try_from(n).is_err())
    {
        errs.push(format!("{at}: {v} does not fit int32"));
    }
    match v {
        Value::Object(m) => check_object(s, m, at, errs),
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    check(item, x, &format!("{at}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    s: &'static Value,
    m: &serde_json::Map<String, Value>,
    at: &str,
    errs: &mut Vec<String>,
) {
    let props = s.get("properties").and_then(Value::as_object);
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str()
            && !m.contains_key(r)
        {
            errs.push(format!("{at}: required {r} is missing"));
        }
    }
    for (k, x) in m {
        match props.and_then(|p| p.get(k)) {
            Some(ps) => check(ps, x, &format!("{at}.{k}"), errs),
            None if s.get("additionalProperties").is_some() => {}
            None => errs.push(format!("{at}: {k} is not a documented property")),
        }
    }
}

fn conforms(path: &str, method: &str, status: u16, body: &Value) {
    let mut errs = Vec::new();
    check(response_schema(path, method, status), body, "$", &mut errs);
    assert!(
        errs.is_empty(),
        "{method} {path} → {status} breaks Keap's document:\n  {}\n{body}",
        errs.join("\n  ")
    );
}

async fn seeded() -> (KeapSim, i64, String) {
    let sim = KeapSim::builder()
        .config(SimConfig {
            api_keys: vec![KEY.into()],
            unauthorized_401: Unauthorized401::ErrorSchema,
            ..SimConfig::default()
        })
        .seed(50, 3)
        .start()
        .await
        .unwrap();
    let id = sim.add_contact(
        "conf@example.com",
        Some("conf2@relay.example"),
        Some("conf3@example.com"),
        EmailStatus::SingleOptIn,
    );
    sim.event(
        "conf3@example.com",
        keap_sim::SimEvent::Set(EmailStatus::Admin),
    )
    .unwrap();
    (sim, id, "conf@example.com".into())
}

#[test]
fn the_validator_catches_what_it_must() {
    let contact = &doc()["components"]["schemas"]["Contact"];
    let mut e = Vec::new();
    check(contact, &json!({"id": 5}), "$", &mut e);
    assert!(!e.is_empty(), "a numeric id is not Keap's string id");
    e.clear();
    check(contact, &json!({"id": "5", "shoe_size": 9}), "$", &mut e);
    assert!(!e.is_empty(), "undocumented properties are caught");
    e.clear();
    let status = &doc()["components"]["schemas"]["RestEmailAddressStatus"];
    check(
        status,
        &json!({"email": "a@x.example", "status": "OPTED_OUT"}),
        "$",
        &mut e,
    );
    assert!(!e.is_empty(), "enums are checked");
}

#[tokio::test]
async fn contacts_conform_with_and_without_fields() {
    let (sim, id, _) = seeded().await;
    const ONE: &str = "/rest/v2/contacts/{contact_id}";
    for q in ["", "?fields=id,email_addresses", "?fields=id"] {
        let (status, body) = get_json(&sim, &format!("/crm/rest/v2/contacts/{id}{q}")).await;
        assert_eq!(status, 200);
        conforms(ONE, "get", 200, &body);
    }
    for q in [
        "fields=id,email_addresses&page_size=20",
        "filter=email%3D%3Dconf2%40relay.example",
    ] {
        let (status, body) = get_json(&sim, &format!("/crm/rest/v2/contacts?{q}")).await;
        assert_eq!(status, 200);
        conforms("/rest/v2/contacts", "get", 200, &body);
    }
}

#[tokio::test]
async fn address_statuses_conform_read_listed_and_patched() {
    let (sim, _, email) = seeded().await;
    const ONE: &str = "/rest/v2/emailAddresses/{email}/status";
    let (status, body) =
        get_json(&sim, &format!("/crm/rest/v2/emailAddresses/{email}/status")).await;
    assert_eq!(status, 200);
    conforms(ONE, "get", 200, &body);
    for q in ["filter=opted_in%3D%3Dfalse&order_by=email", "page_size=10"] {
        let (status, body) = get_json(&sim, &format!("/crm/rest/v2/emailAddresses?{q}")).await;
        assert_eq!(status, 200);
        conforms("/rest/v2/emailAddresses", "get", 200, &body);
    }
    let r = http()
        .patch(format!(
            "{}/crm/rest/v2/emailAddresses/{email}/status",
            sim.base_url()
        ))
        .header("X-Keap-API-Key", KEY)
        .json(&json!({"opted_in": false, "reason": "conformance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    conforms(ONE, "patch", 200, &r.json().await.unwrap());
}

#[tokio::test]
async fn error_answers_conform_to_the_error_schema() {
    let (sim, _, _) = seeded().await;
    let (status, body) = get_json(&sim, "/crm/rest/v2/contacts/999999?fields=id").await;
    assert_eq!(status, 404);
    conforms("/rest/v2/contacts/{contact_id}", "get", 404, &body);
    let (status, body) = get_json(&sim, "/crm/rest/v2/contacts?page_size=5000").await;
    assert_eq!(status, 400);
    conforms("/rest/v2/contacts", "get", 400, &body);
    let (status, body) = get_json(
        &sim,
        "/crm/rest/v2/emailAddresses/nobody%40x.example/status",
    )
    .await;
    assert_eq!(status, 404);
    conforms("/rest/v2/emailAddresses/{email}/status", "get", 404, &body);
    let r = http()
        .get(format!("{}/crm/rest/v2/contacts?fields=id", sim.base_url()))
        .header("X-Keap-API-Key", "KeapAK-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    conforms("/rest/v2/contacts", "get", 401, &r.json().await.unwrap());
}
