//! The API gateway in front of REST and XML-RPC: injected faults, authentication, throttling
//! and the `x-keap-*` headers, in the order Keap's Apigee proxy applies them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Principal;
use crate::config::{ThrottleBody, Unauthorized401};
use crate::state::{FaultKind, Shared};
use crate::throttle::Exceeded;

/// A REST v2 `Error` body: `{"code", "message", "status", "details"}`.
pub fn rest_error(status: StatusCode, message: impl Into<String>, resource: &str) -> Response {
    let body = json!({
        "code": status.as_u16(),
        "message": message.into(),
        "status": status.canonical_reason().unwrap_or(""),
        "details": [{"domain": "sim", "resource": resource}],
    });
    (status, axum::Json(body)).into_response()
}

/// The gateway's 401 (never an XML-RPC fault): Apigee's fault, or the v2 `Error` schema.
pub fn unauthorized(shape: Unauthorized401) -> Response {
    match shape {
        Unauthorized401::Apigee => {
            let body = json!({"fault": {
                "faultstring": "Invalid Access Token",
                "detail": {"errorcode": "keymanagement.service.invalid_access_token"}
            }});
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        }
        Unauthorized401::ErrorSchema => rest_error(
            StatusCode::UNAUTHORIZED,
            "Invalid access token or API key",
            "gateway",
        ),
    }
}

/// A 429 with one of the three bodies seen in the wild, and no `Retry-After`.
pub fn too_many_requests(shape: ThrottleBody, which: Exceeded) -> Response {
    let shape = match shape {
        ThrottleBody::ByLimit => match which {
            Exceeded::Spike => ThrottleBody::SpikeArrest,
            Exceeded::Daily => ThrottleBody::QuotaViolation,
            Exceeded::Minute => ThrottleBody::V2,
        },
        s => s,
    };
    let body = match shape {
        ThrottleBody::SpikeArrest => json!({"fault": {
            "faultstring": "Spike arrest violation. Allowed rate : MessageRate{messagesPerPeriod=25, periodInMicroseconds=6000000, maxBurstMessageCount=1.0}",
            "detail": {"errorcode": "policies.ratelimit.SpikeArrestViolation"}
        }}),
        ThrottleBody::QuotaViolation => json!({"fault": {
            "faultstring": "Rate limit quota violation. Quota limit  exceeded. Identifier : sim",
            "detail": {"errorcode": "policies.ratelimit.QuotaViolation"}
        }}),
        _ => {
            json!({"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": null})
        }
    };
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

fn principal(shared: &Shared, headers: &HeaderMap, query: Option<&str>) -> Option<Principal> {
    let st = shared.lock();
    let now = shared.now_ms();
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?
            .trim();
        // Keap's own v2 samples send a service account key or PAT as a bearer token.
        return st
            .auth
            .check_bearer(token, now)
            .or_else(|| st.auth.check_api_key(token));
    }
    if let Some(key) = headers.get("x-keap-api-key").and_then(|v| v.to_str().ok()) {
        return st.auth.check_api_key(key.trim());
    }
    if st.config.accept_query_token {
        let token = url::form_urlencoded::parse(query?.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())?;
        return st.auth.check_bearer(&token, now);
    }
    None
}

/// Drops the connection without an answer. Unwinding out of the connection's task makes hyper
/// close the socket; `resume_unwind` skips the panic hook, so nothing is printed.
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("keap-sim: injected connection drop"))
}

pub async fn gateway(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let latency = shared.lock().config.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = admit_and_run(&shared, req, next).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn admit_and_run(shared: &Arc<Shared>, req: Request, next: Next) -> Response {
    // REST calls are counted by route here; XML-RPC calls by method in their handler.
    if let Some(path) = req.extensions().get::<MatchedPath>()
        && !path.as_str().starts_with("/crm/xmlrpc")
    {
        let key = format!("{} {}", req.method(), path.as_str());
        shared.lock().stats.count(&key);
    }
    let fault = shared.lock().next_fault();
    match fault {
        Some(FaultKind::TooManyRequests) => {
            return too_many_requests(ThrottleBody::V2, Exceeded::Minute);
        }
        Some(FaultKind::ServerError) => {
            return rest_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "sim",
            );
        }
        Some(FaultKind::Unauthorized) => {
            return unauthorized(shared.lock().config.unauthorized_401);
        }
        Some(FaultKind::Timeout) => {
            let delay = shared.lock().config.fault_timeout_delay;
            tokio::time::sleep(delay).await;
            return (StatusCode::GATEWAY_TIMEOUT, Body::from("gateway timeout")).into_response();
        }
        Some(FaultKind::Drop) => drop_connection(),
        None => {}
    }
    let Some(who) = principal(shared, req.headers(), req.uri().query()) else {
        return unauthorized(shared.lock().config.unauthorized_401);
    };
    let now = shared.now_ms();
    let (verdict, numbers) = {
        let mut st = shared.lock();
        let (verdict, numbers) = st.throttles.admit(&who, now);
        if verdict.is_err() {
            st.stats.throttled += 1;
        }
        (verdict, numbers.pairs(&st.config.tenant_id))
    };
    let mut resp = match verdict {
        Ok(()) => next.run(req).await,
        Err(which) => {
            let shape = shared.lock().config.throttle_body;
            too_many_requests(shape, which)
        }
    };
    for (name, value) in numbers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}
