//! Amazon SES v2's account-level suppression list, per region, under `/ses/{region}`:
//! `PutSuppressedDestination` (200, empty body), `GetSuppressedDestination`,
//! `DeleteSuppressedDestination` (404 `NotFoundException` for a missing address) and
//! `GetAccount` with the account's `SuppressionAttributes.SuppressedReasons`. Requests are
//! SigV4-signed for service `ses` in the path's region; errors are REST-JSON
//! (`x-amzn-ErrorType` and `{"message"}`), and a 429 carries no rate-limit header.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::config::{SesReason, SimConfig};
use crate::gate::Ctx;
use crate::provider::{Provider, valid_email};
use crate::sigv4::{self, SigError};
use crate::state::{Detail, Scope, Shared};
use crate::wire;

/// AWS's REST-JSON error: status, `x-amzn-ErrorType`, `{"message"}`.
fn error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut resp = wire::json(status, json!({"message": message}));
    resp.headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(kind));
    resp
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequestException", message)
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NotFoundException",
        "The resource you attempted to access doesn't exist.",
    )
}

pub fn too_many() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequestsException",
        "Too many requests have been made to the operation.",
    )
}

pub fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalFailure",
        "The request processing has failed because of an unknown error, exception or failure.",
    )
}

/// The region is the path's second segment: `/ses/{region}/v2/…`.
fn region_of(path: &str) -> &str {
    path.split('/').nth(2).unwrap_or("")
}

fn valid_region(r: &str) -> bool {
    r.split('-').count() >= 3
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn authenticate(
    cfg: &SimConfig,
    parts: &Parts,
    body: &[u8],
    now_ms: u64,
) -> Result<(), Response> {
    let req = sigv4::Request {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
    };
    let creds = cfg.secrets(Provider::Ses).filter_map(|s| s.split_once(':'));
    let region = region_of(parts.uri.path());
    match sigv4::verify(&req, creds, region, "ses", now_ms) {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = match e {
                SigError::Malformed => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            Err(error(status, e.error_type(), &e.to_string()))
        }
    }
}

fn scope(region: &str) -> Scope {
    Scope {
        region: Some(region.to_string()),
        ..Scope::default()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutBody {
    email_address: Option<String>,
    reason: Option<String>,
    tenant_name: Option<String>,
}

/// `PUT /v2/email/suppression/addresses`.
pub async fn put(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(region): Path<String>,
    body: Bytes,
) -> Response {
    if !valid_region(&region) {
        return not_found();
    }
    let Ok(b) = serde_json::from_slice::<PutBody>(&body) else {
        return bad_request("The input you provided is invalid.");
    };
    let Some(address) = b.email_address.filter(|a| valid_email(a)) else {
        return bad_request("EmailAddress is required and must be a valid email address.");
    };
    let Some(reason) = b
        .reason
        .as_deref()
        .and_then(|r| r.parse::<SesReason>().ok())
    else {
        return bad_request("Reason is required. Valid Values: BOUNCE | COMPLAINT");
    };
    if b.tenant_name.is_some() {
        // The emulator's accounts have no tenants, so every TenantName is unknown.
        return not_found();
    }
    let detail = Detail {
        reason: Some(reason.as_str().to_string()),
        ..Detail::default()
    };
    shared
        .lock()
        .lists
        .upsert(Provider::Ses, scope(&region), &address, detail, ctx.now_ms);
    if ctx.partial {
        return server_error();
    }
    StatusCode::OK.into_response()
}

/// `GET /v2/email/suppression/addresses/{EmailAddress}` (exact case).
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path((region, email)): Path<(String, String)>,
) -> Response {
    let st = shared.lock();
    let Some(e) = st.lists.get(Provider::Ses, &scope(&region), &email) else {
        return not_found();
    };
    wire::json(
        StatusCode::OK,
        json!({"SuppressedDestination": {
            "EmailAddress": e.address,
            "Reason": e.reason,
            "LastUpdateTime": wire::epoch_seconds(e.updated_ms),
            "Attributes": {},
        }}),
    )
}

/// `DELETE /v2/email/suppression/addresses/{EmailAddress}` (exact case).
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((region, email)): Path<(String, String)>,
) -> Response {
    match shared
        .lock()
        .lists
        .remove(Provider::Ses, &scope(&region), &email)
    {
        Some(_) => StatusCode::OK.into_response(),
        None => not_found(),
    }
}

/// `GET /v2/email/account`.
pub async fn account(State(shared): State<Arc<Shared>>, Path(region): Path<String>) -> Response {
    if !valid_region(&region) {
        return not_found();
    }
    let reasons: Vec<&str> = shared
        .lock()
        .config
        .ses_suppressed_reasons
        .iter()
        .map(|r| r.as_str())
        .collect();
    wire::json(
        StatusCode::OK,
        json!({
            "DedicatedIpAutoWarmupEnabled": false,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": true,
            "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0},
            "SendingEnabled": true,
            "SuppressionAttributes": {"SuppressedReasons": reasons},
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_prefix() {
        assert_eq!(region_of("/ses/eu-west-1/v2/email/account"), "eu-west-1");
        assert!(valid_region("us-gov-west-1"));
        assert!(!valid_region("EU"));
    }
}
