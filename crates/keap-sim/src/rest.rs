//! REST v2: contacts with their addresses, and the email-address status endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keap::EmailStatus;
use serde_json::{Value, json};

use crate::config::RestOptOut;
use crate::gateway::rest_error;
use crate::state::{Shared, rfc3339};
use crate::store::{AddressRow, Contact, Store, email_key};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

type Params = Query<HashMap<String, String>>;

/// A 400 on its way out, kept small so that `Result`s carrying it stay cheap.
struct BadRequest(String, &'static str);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        rest_error(StatusCode::BAD_REQUEST, self.0, self.1)
    }
}

fn bad_request(msg: impl Into<String>, resource: &'static str) -> BadRequest {
    BadRequest(msg.into(), resource)
}

fn page_size(q: &HashMap<String, String>, resource: &'static str) -> Result<usize, BadRequest> {
    match q.get("page_size").map(|s| s.trim()) {
        None | Some("") => Ok(DEFAULT_PAGE_SIZE),
        Some(s) => match s.parse::<usize>() {
            Ok(0) => Ok(DEFAULT_PAGE_SIZE),
            Ok(n) if n <= MAX_PAGE_SIZE => Ok(n),
            _ => Err(bad_request(
                "page_size must be between 0 and 1000",
                resource,
            )),
        },
    }
}

fn encode_token(v: Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_token(
    q: &HashMap<String, String>,
    resource: &'static str,
) -> Result<Option<Value>, BadRequest> {
    match q
        .get("page_token")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => Ok(None),
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .map(Some)
            .ok_or_else(|| bad_request("page_token is invalid", resource)),
    }
}

/// What every list route reads from its query: page size, filter clauses, page token.
struct ListParams {
    size: usize,
    filter: Vec<(String, String, String)>,
    token: Option<Value>,
}

fn list_params(
    q: &HashMap<String, String>,
    resource: &'static str,
) -> Result<ListParams, BadRequest> {
    Ok(ListParams {
        size: page_size(q, resource)?,
        filter: parse_filter(q.get("filter"), resource)?,
        token: decode_token(q, resource)?,
    })
}

/// `key==value` clauses joined by `;` (also `key>value` for `contact_id`).
fn parse_filter(
    raw: Option<&String>,
    resource: &'static str,
) -> Result<Vec<(String, String, String)>, BadRequest> {
    let Some(raw) = raw.map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    raw.split(';')
        .map(|clause| {
            for op in ["==", ">"] {
                if let Some((k, v)) = clause.split_once(op) {
                    return Ok((k.trim().to_string(), op.to_string(), v.trim().to_string()));
                }
            }
            Err(bad_request(format!("Invalid filter: {clause}"), resource))
        })
        .collect()
}

fn address_json(store: &Store, email: &str, field: keap::EmailField) -> Value {
    let status = store.status(email).unwrap_or(EmailStatus::NonMarketable);
    json!({
        "email": email,
        "field": field.rest_name(),
        "is_opt_in": status.is_marketable(),
        "email_opt_status": status.v2_name(),
    })
}

fn contact_json(store: &Store, c: &Contact) -> Value {
    let addresses: Vec<Value> = keap::EmailField::ALL
        .iter()
        .zip(&c.emails)
        .filter_map(|(f, e)| e.as_deref().map(|e| address_json(store, e, *f)))
        .collect();
    json!({
        "id": c.id,
        "given_name": c.first_name,
        "family_name": c.last_name,
        "email_addresses": addresses,
        "create_time": rfc3339(c.date_created_ms),
        "update_time": rfc3339(c.last_updated_ms),
    })
}

pub async fn get_contact(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    const RES: &str = "GET /rest/v2/contacts/{contact_id}";
    let Ok(id) = id.parse::<i64>() else {
        return bad_request("contact_id is invalid", RES).into_response();
    };
    let st = shared.lock();
    match st.store.contacts.get(&id) {
        Some(c) => Json(contact_json(&st.store, c)).into_response(),
        None => rest_error(
            StatusCode::NOT_FOUND,
            format!("Contact {id} not found"),
            RES,
        ),
    }
}

fn contact_matches(c: &Contact, filter: &[(String, String, String)]) -> Result<bool, String> {
    for (key, op, value) in filter {
        let ok = match (key.as_str(), op.as_str()) {
            // Assumption (undocumented): the email filter looks at all three address fields,
            // like XML-RPC's findByEmail.
            ("email", "==") => {
                let v = value.to_lowercase();
                c.emails.iter().flatten().any(|e| {
                    let e = e.to_lowercase();
                    match v.strip_suffix('*') {
                        Some(prefix) => e.starts_with(prefix),
                        None => e == v,
                    }
                })
            }
            ("given_name", "==") => c.first_name.eq_ignore_ascii_case(value),
            ("family_name", "==") => c.last_name.eq_ignore_ascii_case(value),
            ("ids", "==") => value
                .split(',')
                .any(|s| s.trim().parse::<i64>().ok() == Some(c.id)),
            ("contact_id", ">") => {
                value
                    .parse::<i64>()
                    .map_err(|_| format!("Invalid filter value: {value}"))?
                    < c.id
            }
            _ => return Err(format!("Invalid filter field: {key}")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn list_contacts(State(shared): State<Arc<Shared>>, Query(q): Params) -> Response {
    const RES: &str = "GET /rest/v2/contacts";
    let ListParams {
        size,
        filter,
        token,
    } = match list_params(&q, RES) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some((k, op, _)) = filter.iter().find(|(k, op, _)| {
        !matches!(
            (k.as_str(), op.as_str()),
            ("email" | "given_name" | "family_name" | "ids", "==") | ("contact_id", ">")
        )
    }) {
        return bad_request(format!("Invalid filter field: {k}{op}"), RES).into_response();
    }
    let after = token
        .as_ref()
        .and_then(|t| t.get("after"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let st = shared.lock();
    let mut page = Vec::with_capacity(size);
    let mut more = false;
    for c in st.store.contacts.range(after + 1..).map(|(_, c)| c) {
        match contact_matches(c, &filter) {
            Ok(true) if page.len() == size => {
                more = true;
                break;
            }
            Ok(true) => page.push(c),
            Ok(false) => {}
            Err(msg) => return bad_request(msg, RES).into_response(),
        }
    }
    let next = match (more, page.last()) {
        (true, Some(last)) => encode_token(json!({"after": last.id})),
        _ => String::new(),
    };
    let contacts: Vec<Value> = page.iter().map(|c| contact_json(&st.store, c)).collect();
    Json(json!({"contacts": contacts, "next_page_token": next})).into_response()
}

pub async fn create_contact(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    const RES: &str = "POST /rest/v2/contacts";
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request body is not valid JSON", RES).into_response();
    };
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
            return bad_request("email_addresses items need email and field", RES).into_response();
        };
        let Ok(field) = field.parse::<keap::EmailField>() else {
            return bad_request(format!("Invalid email field: {field}"), RES).into_response();
        };
        if keap::EmailAddress::parse(email).is_err() {
            return bad_request(format!("Invalid email address: {email}"), RES).into_response();
        }
        opt_in |= a
            .get("opt_in_reason")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty());
        emails[field as usize] = Some(email.to_string());
    }
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let now = shared.now_ms();
    let mut st = shared.lock();
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
    (StatusCode::CREATED, Json(contact_json(&st.store, c))).into_response()
}

fn status_json(row: &AddressRow) -> Value {
    let mut v = json!({
        "email": row.email,
        "opted_in": row.status.is_marketable(),
        "status": row.status.v2_name(),
        "create_time": rfc3339(row.date_created_ms),
    });
    for (k, t) in [
        ("last_click_time", row.last_click_ms),
        ("last_open_time", row.last_open_ms),
        ("last_sent_time", row.last_sent_ms),
    ] {
        if let Some(t) = t {
            v[k] = json!(rfc3339(t));
        }
    }
    v
}

pub async fn get_status(State(shared): State<Arc<Shared>>, Path(email): Path<String>) -> Response {
    const RES: &str = "GET /rest/v2/emailAddresses/{email}/status";
    let st = shared.lock();
    match st.store.row(&email) {
        Some(row) => Json(status_json(row)).into_response(),
        None => rest_error(
            StatusCode::NOT_FOUND,
            format!("Email address {email} not found"),
            RES,
        ),
    }
}

pub async fn patch_status(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    const RES: &str = "PATCH /rest/v2/emailAddresses/{email}/status";
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request body is not valid JSON", RES).into_response();
    };
    let (Some(opted_in), Some(reason)) = (
        v.get("opted_in").and_then(Value::as_bool),
        v.get("reason")
            .and_then(Value::as_str)
            .filter(|r| !r.trim().is_empty()),
    ) else {
        return bad_request("opted_in and reason are required", RES).into_response();
    };
    let now = shared.now_ms();
    let change = {
        let mut st = shared.lock();
        if st.store.row(&email).is_none() {
            return rest_error(
                StatusCode::NOT_FOUND,
                format!("Email address {email} not found"),
                RES,
            );
        }
        let change = if opted_in {
            let mut from = vec![
                EmailStatus::UnengagedMarketable,
                EmailStatus::UnengagedNonMarketable,
                EmailStatus::NonMarketable,
            ];
            if st.config.rest_opt_in_from_admin {
                from.push(EmailStatus::Admin);
            }
            Some(st.store.opt_in(&email, &from, reason, now))
        } else {
            match st.config.rest_opt_out {
                RestOptOut::Set(to) => Some(st.store.opt_out(&email, to, reason, now)),
                RestOptOut::SilentNoOp => None,
            }
        };
        if change.is_some_and(|c| c.changed()) {
            st.stats.writes += 1;
        }
        change
    };
    if let (false, Some(c)) = (opted_in, change) {
        shared.after_api_opt_out(&email, c);
    }
    let st = shared.lock();
    match st.store.row(&email) {
        Some(row) => Json(status_json(row)).into_response(),
        None => rest_error(StatusCode::NOT_FOUND, "gone", RES),
    }
}

fn row_sort_key(row: &AddressRow, by: &str) -> (String, i64) {
    let t = |ms: Option<u64>| ms.map(|m| format!("{m:020}")).unwrap_or_default();
    let k = match by {
        "email" => row.email.to_lowercase(),
        "status" => row.status.v2_name().to_string(),
        "create_time" => format!("{:020}", row.date_created_ms),
        "last_click_time" => t(row.last_click_ms),
        "last_open_time" => t(row.last_open_ms),
        "last_sent_time" => t(row.last_sent_ms),
        _ => String::new(),
    };
    (k, row.id)
}

/// The `emailAddresses` list's filter: `opted_in`, `statuses` and `emails`.
#[derive(Default)]
struct AddressFilter {
    opted_in: Option<bool>,
    statuses: Option<Vec<EmailStatus>>,
    emails: Option<Vec<String>>,
}

impl AddressFilter {
    fn parse(filter: &[(String, String, String)], res: &'static str) -> Result<Self, BadRequest> {
        let bad = |m: String| bad_request(m, res);
        let mut f = Self::default();
        for (k, op, v) in filter {
            match (k.as_str(), op.as_str()) {
                ("opted_in", "==") => match v.as_str() {
                    "true" => f.opted_in = Some(true),
                    "false" => f.opted_in = Some(false),
                    _ => return Err(bad(format!("Invalid filter value: {v}"))),
                },
                ("statuses", "==") => {
                    let parsed: Result<Vec<EmailStatus>, _> =
                        v.split(',').map(|s| s.trim().parse()).collect();
                    f.statuses =
                        Some(parsed.map_err(|e| bad(format!("Invalid filter value: {e}")))?);
                }
                ("emails", "==") => f.emails = Some(v.split(',').map(email_key).collect()),
                _ => return Err(bad(format!("Invalid filter field: {k}"))),
            }
        }
        Ok(f)
    }

    fn matches(&self, r: &AddressRow) -> bool {
        self.opted_in.is_none_or(|o| r.status.is_marketable() == o)
            && self.statuses.as_ref().is_none_or(|s| s.contains(&r.status))
            && self
                .emails
                .as_ref()
                .is_none_or(|e| e.contains(&email_key(&r.email)))
    }
}

/// `order_by=FIELD [asc|desc]` of the `emailAddresses` list.
fn address_order(
    q: &HashMap<String, String>,
    res: &'static str,
) -> Result<(String, bool), BadRequest> {
    const FIELDS: [&str; 6] = [
        "email",
        "status",
        "create_time",
        "last_click_time",
        "last_open_time",
        "last_sent_time",
    ];
    let order = q
        .get("order_by")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let (by, desc) = match order.split_once(' ') {
        Some((by, dir)) => (by.to_string(), dir.trim().eq_ignore_ascii_case("desc")),
        None => (order.clone(), false),
    };
    if !by.is_empty() && !FIELDS.contains(&by.as_str()) {
        return Err(bad_request(format!("Invalid order_by: {by}"), res));
    }
    Ok((by, desc))
}

/// Where a page starts. Keyset paging: the token carries the last row's sort key, so rows
/// that change while a client pages do not shift the pages after them.
fn keyset_start(rows: &[&AddressRow], token: Option<&Value>, by: &str, desc: bool) -> usize {
    let Some(t) = token else {
        return 0;
    };
    let k = t
        .get("k")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let id = t.get("id").and_then(Value::as_i64).unwrap_or(0);
    let last = (k, id);
    rows.partition_point(|r| {
        let key = row_sort_key(r, by);
        if desc { key >= last } else { key <= last }
    })
}

pub async fn list_addresses(State(shared): State<Arc<Shared>>, Query(q): Params) -> Response {
    const RES: &str = "GET /rest/v2/emailAddresses";
    let ListParams {
        size,
        filter,
        token,
    } = match list_params(&q, RES) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let parsed = AddressFilter::parse(&filter, RES).and_then(|f| Ok((f, address_order(&q, RES)?)));
    let (filter, (by, desc)) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let st = shared.lock();
    let mut rows: Vec<&AddressRow> = st
        .store
        .rows
        .values()
        .filter(|r| filter.matches(r))
        .collect();
    rows.sort_by_cached_key(|r| row_sort_key(r, &by));
    if desc {
        rows.reverse();
    }
    let start = keyset_start(&rows, token.as_ref(), &by, desc);
    let page: Vec<&AddressRow> = rows.iter().skip(start).take(size).copied().collect();
    let next = match page.last() {
        Some(last) if start + page.len() < rows.len() => {
            let (k, id) = row_sort_key(last, &by);
            encode_token(json!({"k": k, "id": id}))
        }
        _ => String::new(),
    };
    let items: Vec<Value> = page.iter().map(|r| status_json(r)).collect();
    Json(json!({"email_addresses": items, "next_page_token": next})).into_response()
}
