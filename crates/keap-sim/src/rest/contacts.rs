//! REST v2 contacts: read one, list with filters and order, create.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keap::EmailStatus;
use serde_json::{Value, json};

use super::*;

fn address_json(store: &Store, email: &str, field: keap::EmailField) -> Value {
    let status = store.status(email).unwrap_or(EmailStatus::NonMarketable);
    json!({
        "email": email,
        "field": field.rest_name(),
        "is_opt_in": status.is_marketable(),
        "email_opt_status": status.v2_name(),
    })
}

/// The contact properties the v2 document lets a client select with `fields`.
const CONTACT_FIELDS: &[&str] = &[
    "addresses",
    "anniversary_date",
    "birth_date",
    "company",
    "contact_type",
    "create_time",
    "custom_fields",
    "email_addresses",
    "family_name",
    "fax_numbers",
    "given_name",
    "id",
    "job_title",
    "leadsource_id",
    "links",
    "middle_name",
    "notes",
    "origin",
    "owner_id",
    "phone_numbers",
    "preferred_locale",
    "preferred_name",
    "prefix",
    "referral_code",
    "score_value",
    "social_accounts",
    "source_type",
    "spouse_name",
    "suffix",
    "tag_ids",
    "time_zone",
    "update_time",
    "utm_parameters",
    "website",
    "account_id",
    "assistant_name",
    "assistant_phone",
    "billing_information",
    "created_by",
    "groups",
    "last_updated_by",
];

/// What a contact read returns when it names no `fields`.
const DEFAULT_CONTACT_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "email_addresses",
    "create_time",
    "update_time",
];

/// The `fields` a contact read asked for: a comma list of documented properties.
fn contact_fields(
    q: &HashMap<String, String>,
    id_by_default: bool,
    resource: &'static str,
) -> Result<Vec<String>, BadRequest> {
    let Some(raw) = q.get("fields").map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        let mut f: Vec<String> = DEFAULT_CONTACT_FIELDS
            .iter()
            .map(|s| s.to_string())
            .collect();
        if id_by_default {
            f.push("id".into());
        }
        return Ok(f);
    };
    raw.split(',')
        .map(|f| {
            let f = f.trim();
            if CONTACT_FIELDS.contains(&f) {
                Ok(f.to_string())
            } else {
                Err(bad_request(format!("Invalid field: {f}"), resource))
            }
        })
        .collect()
}

/// A contact as v2 shows it: only the selected properties this emulator holds; ids are
/// strings.
fn contact_json(store: &Store, c: &Contact, fields: &[String]) -> Value {
    let mut v = serde_json::Map::new();
    for f in fields {
        let value = match f.as_str() {
            "id" => json!(c.id.to_string()),
            "given_name" => json!(c.first_name),
            "family_name" => json!(c.last_name),
            "create_time" => json!(rfc3339(c.date_created_ms)),
            "update_time" => json!(rfc3339(c.last_updated_ms)),
            "email_addresses" => Value::Array(
                keap::EmailField::ALL
                    .iter()
                    .zip(&c.emails)
                    .filter_map(|(f, e)| e.as_deref().map(|e| address_json(store, e, *f)))
                    .collect(),
            ),
            // Properties this emulator keeps nothing for are left out, as Keap leaves out
            // empty ones.
            _ => continue,
        };
        v.insert(f.clone(), value);
    }
    Value::Object(v)
}

pub async fn get_contact(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    const RES: &str = "GET /rest/v2/contacts/{contact_id}";
    let Ok(id) = id.trim().parse::<i64>() else {
        return bad_request("contact_id is invalid", RES).into_response();
    };
    let st = shared.lock();
    let fields = match contact_fields(&q, st.config.contact_id_by_default, RES) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match st.store.contacts.get(&id) {
        Some(c) => Json(contact_json(&st.store, c, &fields)).into_response(),
        None => rest_error(
            StatusCode::NOT_FOUND,
            format!("Contact {id} not found"),
            RES,
        ),
    }
}

/// `value` with an optional trailing `*` (prefix match), case-insensitive.
fn wildcard(value: &str, have: &str) -> bool {
    let (v, h) = (value.to_lowercase(), have.to_lowercase());
    match v.strip_suffix('*') {
        Some(prefix) => h.starts_with(prefix),
        None => h == v,
    }
}

fn compare(op: &str, have: i64, want: i64) -> bool {
    match op {
        "==" => have == want,
        ">" => have > want,
        "<" => have < want,
        ">=" => have >= want,
        _ => have <= want,
    }
}

/// The filter keys of the contacts list that this emulator holds no data for: documented,
/// so accepted, but nothing matches them.
const UNHELD_FILTERS: &[&str] = &[
    "company_id",
    "phone_number",
    "phone_fields",
    "billing_address_line1",
    "billing_address_locality",
    "billing_address_region",
    "billing_address_postal_code",
    "billing_address_country_code",
    "shipping_address_line1",
    "shipping_address_locality",
    "shipping_address_region",
    "shipping_address_postal_code",
    "shipping_address_country_code",
    "other_address_line1",
    "other_address_locality",
    "other_address_region",
    "other_address_postal_code",
    "other_address_country_code",
    "city",
    "state",
    "website",
    "lead_source_name",
];

/// Whether a contact passes one clause of the contacts filter; an error for a key or an
/// operator the v2 document does not allow.
fn contact_clause(c: &Contact, key: &str, op: &str, value: &str) -> Result<bool, String> {
    let ids = |v: &str| -> Result<bool, String> {
        let mut any = false;
        for s in v.split(',') {
            let id = s
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("Invalid filter value: {s}"))?;
            any |= id == c.id;
        }
        Ok(any)
    };
    let time = |v: &str| {
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as u64)
            .map_err(|_| format!("Invalid filter value: {v}"))
    };
    Ok(match (key, op) {
        // Any of the three address fields (Keap's staff confirmed it), `*` a prefix wildcard.
        ("email", "==") => c.emails.iter().flatten().any(|e| wildcard(value, e)),
        ("given_name", "==") => wildcard(value, &c.first_name),
        ("family_name", "==") => wildcard(value, &c.last_name),
        ("middle_name", "==") => wildcard(value, ""),
        ("ids" | "contact_ids", "==") => ids(value)?,
        ("contact_id", op) => compare(
            op,
            c.id,
            value
                .parse()
                .map_err(|_| format!("Invalid filter value: {value}"))?,
        ),
        ("start_update_time", "==") => c.last_updated_ms >= time(value)?,
        ("end_update_time", "==") => c.last_updated_ms <= time(value)?,
        (k, "==") if UNHELD_FILTERS.contains(&k) => false,
        _ => return Err(format!("Invalid filter field: {key}{op}")),
    })
}

fn contact_matches(c: &Contact, filter: &[(String, String, String)]) -> Result<bool, String> {
    for (key, op, value) in filter {
        if !contact_clause(c, key, op, value)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `order_by` of the contacts list: `id` (default), `create_time`, `email` or `update_time`,
/// each `asc` (default) or `desc`.
fn contact_order(q: &HashMap<String, String>) -> Result<(String, bool), BadRequest> {
    const RES: &str = "GET /rest/v2/contacts";
    let order = q.get("order_by").map(|s| s.trim()).unwrap_or_default();
    let (by, dir) = order.split_once(' ').unwrap_or((order, "asc"));
    let by = if by.is_empty() { "id" } else { by };
    if !["id", "create_time", "email", "update_time"].contains(&by) {
        return Err(bad_request(format!("Invalid order_by: {by}"), RES));
    }
    let desc = match dir.trim().to_ascii_lowercase().as_str() {
        "asc" => false,
        "desc" => true,
        d => return Err(bad_request(format!("Invalid order_by direction: {d}"), RES)),
    };
    Ok((by.to_string(), desc))
}

/// A contact's sort key for `order_by` (ties broken by id).
fn contact_sort_key(c: &Contact, by: &str) -> (String, i64) {
    let k = match by {
        "create_time" => format!("{:020}", c.date_created_ms),
        "update_time" => format!("{:020}", c.last_updated_ms),
        "email" => c.emails[0].as_deref().unwrap_or_default().to_lowercase(),
        _ => String::new(),
    };
    (k, c.id)
}

pub async fn list_contacts(State(shared): State<Arc<Shared>>, Query(q): Params) -> Response {
    const RES: &str = "GET /rest/v2/contacts";
    let st = shared.lock();
    let parsed = list_params(&q, RES).and_then(|p| {
        let fields = contact_fields(&q, st.config.contact_id_by_default, RES)?;
        Ok((p, fields, contact_order(&q)?))
    });
    let (
        ListParams {
            size,
            filter,
            token,
        },
        fields,
        (by, desc),
    ) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut rows = Vec::new();
    for c in st.store.contacts.values() {
        match contact_matches(c, &filter) {
            Ok(true) => rows.push(c),
            Ok(false) => {}
            Err(msg) => return bad_request(msg, RES).into_response(),
        }
    }
    rows.sort_by_cached_key(|c| contact_sort_key(c, &by));
    if desc {
        rows.reverse();
    }
    let start = match token.as_ref() {
        Some(t) => {
            let last = (
                t.get("k")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                t.get("id").and_then(Value::as_i64).unwrap_or(0),
            );
            rows.partition_point(|c| {
                let key = contact_sort_key(c, &by);
                if desc { key >= last } else { key <= last }
            })
        }
        None => 0,
    };
    let page: Vec<&Contact> = rows.iter().skip(start).take(size).copied().collect();
    let next = match page.last() {
        Some(last) if start + page.len() < rows.len() => {
            let (k, id) = contact_sort_key(last, &by);
            encode_token(json!({"k": k, "id": id}))
        }
        _ => String::new(),
    };
    let contacts: Vec<Value> = page
        .iter()
        .map(|c| contact_json(&st.store, c, &fields))
        .collect();
    Json(json!({"contacts": contacts, "next_page_token": next})).into_response()
}

/// The addresses of a create-contact request, each checked.
fn new_addresses(v: &Value, res: &'static str) -> Result<([Option<String>; 3], bool), BadRequest> {
    let mut emails: [Option<String>; 3] = [None, None, None];
    let mut opt_in = false;
    for a in v
        .get("email_addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(email), Some(field)) = (
            a.get("email").and_then(Value::as_str),
            a.get("field").and_then(Value::as_str),
        ) else {
            return Err(bad_request(
                "email_addresses items need email and field",
                res,
            ));
        };
        let Ok(field) = field.parse::<keap::EmailField>() else {
            return Err(bad_request(format!("Invalid email field: {field}"), res));
        };
        let limit = if field == keap::EmailField::Email1 {
            75
        } else {
            100
        };
        if keap::EmailAddress::parse(email).is_err() || email.len() > limit {
            return Err(bad_request(format!("Invalid email address: {email}"), res));
        }
        opt_in |= a
            .get("opt_in_reason")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty());
        emails[field as usize] = Some(email.to_string());
    }
    Ok((emails, opt_in))
}

/// At least one email, phone or address, as the v2 document requires.
fn has_a_way_to_reach(v: &Value, emails: &[Option<String>; 3]) -> bool {
    let non_empty = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    emails.iter().any(Option::is_some) || non_empty("phone_numbers") || non_empty("addresses")
}

pub async fn create_contact(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    const RES: &str = "POST /rest/v2/contacts";
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request body is not valid JSON", RES).into_response();
    };
    let (emails, opt_in) = match new_addresses(&v, RES) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    if !has_a_way_to_reach(&v, &emails) {
        return bad_request(
            "A contact needs at least one email address, phone number or address",
            RES,
        )
        .into_response();
    }
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let all: Vec<String> = CONTACT_FIELDS.iter().map(|f| f.to_string()).collect();
    let now = shared.now_ms();
    let mut st = shared.lock();
    // `duplicate_option: Email` answers the existing contact holding EMAIL1 with 200.
    if s("duplicate_option").eq_ignore_ascii_case("email")
        && let Some(e) = &emails[0]
        && let Some(id) = st.store.holders(e).first().copied()
    {
        let c = &st.store.contacts[&id];
        return (StatusCode::OK, Json(contact_json(&st.store, c, &all))).into_response();
    }
    // API adds without consent are NonMarketable; an opt-in reason makes them SingleOptIn.
    let initial = if opt_in {
        EmailStatus::SingleOptIn
    } else {
        EmailStatus::NonMarketable
    };
    let id = st
        .store
        .add_contact(&s("given_name"), &s("family_name"), emails, initial, now);
    let c = &st.store.contacts[&id];
    (StatusCode::CREATED, Json(contact_json(&st.store, c, &all))).into_response()
}
