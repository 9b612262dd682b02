//! SparkPost's suppression list under `/sparkpost` (`api.sparkpost.com`): `PUT
//! /api/v1/suppression-list/` bulk upsert (at most 10,000 recipients, each typed
//! `transactional` or `non_transactional`), `PUT|GET|DELETE /api/v1/suppression-list/{email}`.
//! The raw API key in `Authorization` (no "Bearer"); `X-MSYS-SUBACCOUNT` selects a
//! subaccount's own list. Errors are `{"errors":[{"message"}]}`; on a 5xx "only some of your
//! suppression entries may have been successfully inserted".

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::SimConfig;
use crate::gate::{Ctx, accepted};
use crate::provider::{Provider, valid_email};
use crate::state::{Detail, Entry, Scope, Shared};
use crate::wire;

const MAX_RECIPIENTS: usize = 10_000;
const TYPES: [&str; 2] = ["transactional", "non_transactional"];

fn error(status: StatusCode, message: &str) -> Response {
    wire::json(status, json!({"errors": [{"message": message}]}))
}

pub fn too_many() -> Response {
    error(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
}

pub fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal server error: only some of your suppression entries may have been successfully inserted or updated. Please re-submit your original request",
    )
}

pub fn authenticate(cfg: &SimConfig, parts: &Parts) -> Result<(), Response> {
    match wire::header(parts, "authorization") {
        Some(key) if accepted(cfg, Provider::Sparkpost, key) => Ok(()),
        _ => Err(error(StatusCode::UNAUTHORIZED, "Unauthorized.")),
    }
}

fn scope(headers: &HeaderMap, kind: &str) -> Scope {
    Scope {
        kind: Some(kind.to_string()),
        subaccount: headers
            .get("x-msys-subaccount")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ..Scope::default()
    }
}

#[derive(Deserialize)]
struct Recipient {
    recipient: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct BulkBody {
    recipients: Option<Vec<Recipient>>,
}

/// Checks a bulk body the way SparkPost documents its 400s.
fn validate(recips: &[Recipient]) -> Result<(), Response> {
    if recips.is_empty() || recips.len() > MAX_RECIPIENTS {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "recipients must hold between 1 and 10,000 entries",
        ));
    }
    let bad: Vec<&str> = recips
        .iter()
        .filter(|r| !r.recipient.as_deref().is_some_and(valid_email))
        .map(|r| r.recipient.as_deref().unwrap_or(""))
        .collect();
    if !bad.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!(
                "PUT body contains {} invalid or malformed recipient(s): {}",
                bad.len(),
                bad.join(", ")
            ),
        ));
    }
    if recips
        .iter()
        .any(|r| !r.kind.as_deref().is_some_and(|t| TYPES.contains(&t)))
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Type must be one of: 'transactional', 'non_transactional'",
        ));
    }
    Ok(())
}

fn updated() -> Response {
    wire::json(
        StatusCode::OK,
        json!({"results": {"message": "Suppression List successfully updated"}}),
    )
}

/// `PUT /api/v1/suppression-list/`.
pub async fn bulk(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(BulkBody {
        recipients: Some(recips),
    }) = serde_json::from_slice::<BulkBody>(&body)
    else {
        return error(StatusCode::BAD_REQUEST, "recipients is required");
    };
    if let Err(resp) = validate(&recips) {
        return resp;
    }
    {
        let mut st = shared.lock();
        for r in recips.iter().take(ctx.applied(recips.len())) {
            let (Some(addr), Some(kind)) = (&r.recipient, &r.kind) else {
                continue;
            };
            let detail = Detail {
                description: r.description.clone(),
                ..Detail::default()
            };
            st.lists.upsert(
                Provider::Sparkpost,
                scope(&headers, kind),
                addr,
                detail,
                ctx.now_ms,
            );
        }
    }
    if ctx.partial {
        return server_error();
    }
    updated()
}

#[derive(Deserialize)]
struct SingleBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    description: Option<String>,
}

/// `PUT /api/v1/suppression-list/{recipient}`.
pub async fn put_one(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let b: SingleBody = serde_json::from_slice(&body).unwrap_or(SingleBody {
        kind: None,
        description: None,
    });
    let Some(kind) = b.kind.filter(|t| TYPES.contains(&t.as_str())) else {
        return error(StatusCode::BAD_REQUEST, "Must supply a suppression type");
    };
    if !valid_email(&email) {
        return error(
            StatusCode::BAD_REQUEST,
            "Recipient is not a valid email address",
        );
    }
    let detail = Detail {
        description: b.description,
        ..Detail::default()
    };
    shared.lock().lists.upsert(
        Provider::Sparkpost,
        scope(&headers, &kind),
        &email,
        detail,
        ctx.now_ms,
    );
    if ctx.partial {
        return server_error();
    }
    wire::json(
        StatusCode::OK,
        json!({"results": {"message": "Suppression list successfully updated"}}),
    )
}

fn view(e: &Entry) -> Value {
    json!({
        "recipient": e.address,
        "type": e.scope.kind,
        "transactional": e.scope.kind.as_deref() == Some("transactional"),
        "non_transactional": e.scope.kind.as_deref() == Some("non_transactional"),
        "source": "Manually Added",
        "description": e.description,
        "created": wire::rfc3339(e.created_ms),
        "updated": wire::rfc3339(e.updated_ms),
    })
}

/// `GET /api/v1/suppression-list/{recipient}`: one entry per type held.
pub async fn get_one(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(email): Path<String>,
) -> Response {
    let st = shared.lock();
    let found: Vec<Value> = TYPES
        .iter()
        .filter_map(|t| {
            st.lists
                .get(Provider::Sparkpost, &scope(&headers, t), &email)
        })
        .map(view)
        .collect();
    if found.is_empty() {
        return error(StatusCode::NOT_FOUND, "Recipient could not be found");
    }
    wire::json(StatusCode::OK, json!({"results": found}))
}

/// `DELETE /api/v1/suppression-list/{recipient}` with an optional `{"type"}`: both types when
/// none is given.
pub async fn delete_one(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let kind = serde_json::from_slice::<SingleBody>(&body)
        .ok()
        .and_then(|b| b.kind);
    let mut st = shared.lock();
    let removed = TYPES
        .iter()
        .filter(|t| kind.as_deref().is_none_or(|k| k == **t))
        .filter_map(|t| {
            st.lists
                .remove(Provider::Sparkpost, &scope(&headers, t), &email)
        })
        .count();
    if removed == 0 {
        return error(StatusCode::NOT_FOUND, "Recipient could not be found");
    }
    StatusCode::NO_CONTENT.into_response()
}
