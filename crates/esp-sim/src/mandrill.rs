//! Mandrill's (Mailchimp Transactional) rejection denylist under `/mandrill`
//! (`mandrillapp.com`): `POST /api/1.0/rejects/add` `{"key","email","comment","subaccount"}` →
//! `{"email","added"}`, `rejects/delete`, `rejects/list` (each also with the `.json` suffix
//! clients append). The key travels in the JSON body. An allowlisted address is not added
//! ("Attempting to blacklist an address that has been whitelisted will have no effect").
//! Errors are HTTP 500 with `{"status":"error","code","name","message"}`, as Mandrill sends them.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ReAdd, SimConfig};
use crate::gate::{Ctx, accepted};
use crate::provider::{Provider, valid_email};
use crate::state::{Detail, Scope, Shared};
use crate::wire;

fn error(status: StatusCode, code: i32, name: &str, message: &str) -> Response {
    wire::json(
        status,
        json!({"status": "error", "code": code, "name": name, "message": message}),
    )
}

pub fn too_many() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        -1,
        "Too_Many_Requests",
        "Too many requests",
    )
}

pub fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        -1,
        "GeneralError",
        "An unexpected error occurred",
    )
}

#[derive(Deserialize)]
struct Keyed {
    key: Option<String>,
}

pub fn authenticate(cfg: &SimConfig, body: &[u8]) -> Result<(), Response> {
    let key = serde_json::from_slice::<Keyed>(body)
        .ok()
        .and_then(|k| k.key);
    match key {
        Some(k) if accepted(cfg, Provider::Mandrill, &k) => Ok(()),
        _ => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            -1,
            "Invalid_Key",
            "Invalid API key",
        )),
    }
}

#[derive(Deserialize)]
struct RejectBody {
    email: Option<String>,
    comment: Option<String>,
    subaccount: Option<String>,
}

fn scope(subaccount: &Option<String>) -> Scope {
    Scope {
        subaccount: subaccount.clone().filter(|s| !s.is_empty()),
        ..Scope::default()
    }
}

fn parse(body: &[u8]) -> Result<(RejectBody, String), Response> {
    let b: RejectBody = serde_json::from_slice(body).map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            -2,
            "ValidationError",
            "Invalid JSON",
        )
    })?;
    let email = b.email.clone().filter(|e| valid_email(e)).ok_or_else(|| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            -2,
            "ValidationError",
            "Validation error: {\"email\":\"An email address must contain a single @\"}",
        )
    })?;
    Ok((b, email))
}

/// `POST /api/1.0/rejects/add`.
pub async fn add(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> Response {
    let (b, email) = match parse(&body) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut st = shared.lock();
    if st.mandrill_allowlist.contains(&email.to_ascii_lowercase()) {
        return wire::json(StatusCode::OK, json!({"email": email, "added": false}));
    }
    let detail = Detail {
        reason: Some("custom".into()),
        description: b.comment.clone(),
        ..Detail::default()
    };
    let new = st.lists.upsert(
        Provider::Mandrill,
        scope(&b.subaccount),
        &email,
        detail,
        ctx.now_ms,
    );
    let added = new || st.config.readd == ReAdd::Accept;
    drop(st);
    if ctx.partial {
        return server_error();
    }
    wire::json(StatusCode::OK, json!({"email": email, "added": added}))
}

/// `POST /api/1.0/rejects/delete`.
pub async fn delete(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let (b, email) = match parse(&body) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let deleted = shared
        .lock()
        .lists
        .remove(Provider::Mandrill, &scope(&b.subaccount), &email)
        .is_some();
    wire::json(
        StatusCode::OK,
        json!({"email": email, "deleted": deleted, "subaccount": b.subaccount}),
    )
}

/// `POST /api/1.0/rejects/list` `{"email"?, "subaccount"?}`.
pub async fn list(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let b: RejectBody = serde_json::from_slice(&body).unwrap_or(RejectBody {
        email: None,
        comment: None,
        subaccount: None,
    });
    let scope = scope(&b.subaccount);
    let st = shared.lock();
    let rows: Vec<Value> = st
        .lists
        .of(Provider::Mandrill)
        .filter(|e| e.scope == scope)
        .filter(|e| b.email.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(&e.address)))
        .take(1000)
        .map(|e| {
            json!({"email": e.address, "reason": e.reason, "detail": e.description,
                   "created_at": wire::rfc3339(e.created_ms), "last_event_at": wire::rfc3339(e.updated_ms),
                   "expires_at": null, "expired": false, "sender": null, "subaccount": e.scope.subaccount})
        })
        .collect();
    wire::json(StatusCode::OK, Value::Array(rows))
}
