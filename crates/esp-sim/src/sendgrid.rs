//! SendGrid's global suppressions under `/sendgrid` (`api.sendgrid.com`): `POST
//! /v3/asm/suppressions/global` (201, the addresses echoed), `GET …/global/{email}` (200 with
//! `{"recipient_email"}`, or `{}` when the address is not suppressed), `DELETE …/global/{email}`
//! (204). A bearer API key; `on-behalf-of` names a subuser, whose list is its own. Every
//! admitted response carries `X-RateLimit-*`; over the limit, 429 with
//! `{"errors":[{"field":null,"message":"too many requests"}]}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ReAdd, SimConfig};
use crate::gate::{Ctx, accepted, rate_headers};
use crate::provider::{Provider, valid_email};
use crate::state::{Detail, RateInfo, Scope, Shared};
use crate::wire;

fn error(status: StatusCode, field: Option<&str>, message: &str) -> Response {
    wire::json(
        status,
        json!({"errors": [{"field": field, "message": message}]}),
    )
}

pub fn too_many(info: Option<RateInfo>) -> Response {
    let mut resp = error(StatusCode::TOO_MANY_REQUESTS, None, "too many requests");
    if let Some(info) = info {
        rate_headers(&mut resp, info);
    }
    resp
}

pub fn server_error() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
}

pub fn authenticate(cfg: &SimConfig, parts: &Parts) -> Result<(), Response> {
    let Some(value) = wire::header(parts, "authorization") else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            None,
            "authorization required",
        ));
    };
    match value.strip_prefix("Bearer ") {
        Some(key) if accepted(cfg, Provider::Sendgrid, key.trim()) => Ok(()),
        _ => Err(error(
            StatusCode::UNAUTHORIZED,
            None,
            "The provided authorization grant is invalid, expired, or revoked",
        )),
    }
}

/// The (sub)user whose list a call reads or writes.
fn scope(headers: &HeaderMap) -> Scope {
    Scope {
        subaccount: headers
            .get("on-behalf-of")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ..Scope::default()
    }
}

#[derive(Deserialize)]
struct SuppressionsRequest {
    recipient_emails: Option<Vec<Value>>,
}

/// The addresses of a `SuppressionsRequest`, or the 400 SendGrid answers.
fn recipients(body: &[u8]) -> Result<Vec<String>, Response> {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, Some("recipient_emails"), m);
    let req: SuppressionsRequest = serde_json::from_slice(body).map_err(|_| bad("invalid JSON"))?;
    let list = req
        .recipient_emails
        .ok_or_else(|| bad("recipient_emails is required"))?;
    if list.is_empty() {
        return Err(bad("recipient_emails must contain at least one address"));
    }
    list.iter()
        .map(|v| match v.as_str() {
            Some(s) if valid_email(s) => Ok(s.to_string()),
            _ => Err(bad("email address is invalid")),
        })
        .collect()
}

/// `POST /v3/asm/suppressions/global`.
pub async fn add(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let emails = match recipients(&body) {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let scope = scope(&headers);
    let mut added = Vec::new();
    let refuse = {
        let mut st = shared.lock();
        for e in emails.iter().take(ctx.applied(emails.len())) {
            if st.lists.upsert(
                Provider::Sendgrid,
                scope.clone(),
                e,
                Detail::default(),
                ctx.now_ms,
            ) {
                added.push(e.clone());
            }
        }
        st.config.readd == ReAdd::Refuse
    };
    if ctx.partial {
        return server_error();
    }
    if refuse {
        return wire::json(StatusCode::CREATED, json!({"recipient_emails": added}));
    }
    wire::json(StatusCode::CREATED, json!({"recipient_emails": emails}))
}

/// `GET /v3/asm/suppressions/global/{email}`: 200 either way, `{}` for a miss.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(email): Path<String>,
) -> Response {
    let st = shared.lock();
    let body = match st.lists.get(Provider::Sendgrid, &scope(&headers), &email) {
        Some(e) => json!({"recipient_email": e.address}),
        None => json!({}),
    };
    wire::json(StatusCode::OK, body)
}

/// `DELETE /v3/asm/suppressions/global/{email}`: 204.
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(email): Path<String>,
) -> Response {
    shared
        .lock()
        .lists
        .remove(Provider::Sendgrid, &scope(&headers), &email);
    StatusCode::NO_CONTENT.into_response()
}
