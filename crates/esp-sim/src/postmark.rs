//! Postmark's Suppressions API under `/postmark` (`api.postmarkapp.com`), per message stream:
//! `POST /message-streams/{stream}/suppressions` (a status per address), `POST
//! …/suppressions/delete`, `GET …/suppressions/dump`. `X-Postmark-Server-Token`. A new
//! suppression is "processed asynchronously": it blocks, and shows in the dump, only after the
//! activation delay on the emulator's clock. Errors are `{"ErrorCode","Message"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::SimConfig;
use crate::gate::{Ctx, accepted};
use crate::provider::{Provider, valid_email};
use crate::state::{Detail, Scope, Shared};
use crate::wire;

const REASON: &str = "ManualSuppression";
const ORIGIN: &str = "Customer";

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    wire::json(status, json!({"ErrorCode": code, "Message": message}))
}

pub fn too_many() -> Response {
    error(StatusCode::TOO_MANY_REQUESTS, 429, "Rate limit exceeded.")
}

pub fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        500,
        "Internal Server Error",
    )
}

pub fn authenticate(cfg: &SimConfig, parts: &Parts) -> Result<(), Response> {
    match wire::header(parts, "x-postmark-server-token") {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            10,
            "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either X-Postmark-Server-Token or X-Postmark-Account-Token.",
        )),
        Some(t) if accepted(cfg, Provider::Postmark, t) => Ok(()),
        Some(_) => Err(error(
            StatusCode::UNAUTHORIZED,
            10,
            "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token.",
        )),
    }
}

/// The stream's scope, or Postmark's 422 for an unknown stream.
fn stream_scope(shared: &Shared, stream: &str) -> Result<Scope, Response> {
    if !shared.lock().config.postmark_stream_exists(stream) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            1226,
            "The message stream for the provided 'ID' was not found.",
        ));
    }
    Ok(Scope {
        stream: Some(stream.to_string()),
        ..Scope::default()
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Item {
    email_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuppressionsBody {
    suppressions: Vec<Item>,
}

/// The addresses of a create/delete body (each possibly invalid), or Postmark's 422.
fn addresses(body: &[u8], max: usize) -> Result<Vec<String>, Response> {
    let b: SuppressionsBody = serde_json::from_slice(body).map_err(|_| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            402,
            "Received invalid JSON input.",
        )
    })?;
    if b.suppressions.len() > max {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            300,
            &format!("Invalid request: at most {max} suppressions per call."),
        ));
    }
    Ok(b.suppressions
        .into_iter()
        .map(|i| i.email_address.unwrap_or_default())
        .collect())
}

fn result(address: &str, status: &str, message: Option<&str>) -> Value {
    json!({"EmailAddress": address, "Status": status, "Message": message})
}

/// `POST /message-streams/{stream}/suppressions`.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(stream): Path<String>,
    body: Bytes,
) -> Response {
    let scope = match stream_scope(&shared, &stream) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let max = shared.lock().config.postmark_max_per_call;
    let list = match addresses(&body, max) {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let mut st = shared.lock();
    let detail = Detail {
        reason: Some(REASON.into()),
        description: None,
        activation: st.config.postmark_activation_delay,
    };
    let mut results = Vec::new();
    for a in list.iter().take(ctx.applied(list.len())) {
        if valid_email(a) {
            st.lists.upsert(
                Provider::Postmark,
                scope.clone(),
                a,
                detail.clone(),
                ctx.now_ms,
            );
            results.push(result(a, "Suppressed", None));
        } else {
            results.push(result(
                a,
                "Failed",
                Some("An invalid email address was provided."),
            ));
        }
    }
    drop(st);
    if ctx.partial {
        return server_error();
    }
    wire::json(StatusCode::OK, json!({"Suppressions": results}))
}

/// `POST /message-streams/{stream}/suppressions/delete`.
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(stream): Path<String>,
    body: Bytes,
) -> Response {
    let scope = match stream_scope(&shared, &stream) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let max = shared.lock().config.postmark_max_per_call;
    let list = match addresses(&body, max) {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let mut st = shared.lock();
    let results: Vec<Value> = list
        .iter()
        .map(|a| {
            if valid_email(a) {
                st.lists.remove(Provider::Postmark, &scope, a);
                result(a, "Deleted", None)
            } else {
                result(a, "Failed", Some("An invalid email address was provided."))
            }
        })
        .collect();
    wire::json(StatusCode::OK, json!({"Suppressions": results}))
}

/// `GET /message-streams/{stream}/suppressions/dump?EmailAddress=&SuppressionReason=&Origin=`:
/// active suppressions only.
pub async fn dump(
    State(shared): State<Arc<Shared>>,
    Path(stream): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let scope = match stream_scope(&shared, &stream) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let now = shared.now_ms();
    let st = shared.lock();
    let wanted = |k: &str, v: &str| {
        q.get(k)
            .is_none_or(|w| w.is_empty() || w.eq_ignore_ascii_case(v))
    };
    // Every entry the API writes is a customer's manual suppression.
    let kind_matches = wanted("SuppressionReason", REASON) && wanted("Origin", ORIGIN);
    let list: Vec<Value> = st
        .lists
        .of(Provider::Postmark)
        .filter(|e| kind_matches && e.scope == scope && e.active_from_ms <= now)
        .filter(|e| wanted("EmailAddress", &e.address))
        .map(|e| {
            json!({"EmailAddress": e.address, "SuppressionReason": REASON, "Origin": ORIGIN,
                   "CreatedAt": wire::rfc3339(e.active_from_ms)})
        })
        .collect();
    wire::json(StatusCode::OK, json!({"Suppressions": list}))
}
