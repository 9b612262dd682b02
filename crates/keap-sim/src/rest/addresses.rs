//! REST v2 email-address statuses: read one, change one, list with filters and order.

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
                RestOptOut::Reject => {
                    return bad_request("opted_in must be true: only opting in is supported", RES)
                        .into_response();
                }
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
