//! The emulator's own control API under `/sim` (JSON, unauthenticated: it is a test
//! instrument): every list with its scope, call counts, faults, rate limits, the clock and the
//! settings that a provider's console would change.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::{RateLimit, SesReason};
use crate::provider::Provider;
use crate::state::{Entry, FaultKind, Shared};
use crate::wire;

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}

fn provider(name: &str) -> Result<Provider, Response> {
    name.parse()
        .map_err(|e: crate::provider::UnknownProvider| error(StatusCode::NOT_FOUND, e.to_string()))
}

/// One entry as `/sim/lists` shows it.
pub fn entry_view(e: &Entry, now_ms: u64) -> Value {
    let mut v = json!({
        "address": e.address,
        "created_at": wire::rfc3339(e.created_ms),
        "updated_at": wire::rfc3339(e.updated_ms),
        "active": e.active_from_ms <= now_ms,
    });
    if let (Value::Object(map), Ok(Value::Object(scope))) = (&mut v, serde_json::to_value(&e.scope))
    {
        map.extend(scope);
        if let Some(r) = &e.reason {
            map.insert("reason".into(), json!(r));
        }
        if let Some(d) = &e.description {
            map.insert("description".into(), json!(d));
        }
    }
    v
}

/// `GET /sim/lists/{provider}`.
pub async fn list(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let p = match provider(&name) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let now = shared.now_ms();
    let st = shared.lock();
    let entries: Vec<Value> = st.lists.of(p).map(|e| entry_view(e, now)).collect();
    let calls = st.stats.by_provider.get(&p).copied().unwrap_or(0);
    let throttled = st.stats.throttled.get(&p).copied().unwrap_or(0);
    Json(json!({"provider": p, "entries": entries, "calls": calls, "throttled": throttled}))
        .into_response()
}

pub async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!(shared.lock().stats)).into_response()
}

pub async fn reset_stats(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().stats = Default::default();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct FaultBody {
    provider: String,
    kind: String,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

fn fault_kind(s: &str) -> Result<FaultKind, Response> {
    FaultKind::from_name(s).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("unknown fault {s:?} (429, 500, timeout, partial)"),
        )
    })
}

/// `POST /sim/faults {"provider","kind","count"}`.
pub async fn faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let run = || -> Result<(), Response> {
        let b: FaultBody = parse(&body)?;
        let (p, kind) = (provider(&b.provider)?, fault_kind(&b.kind)?);
        shared.lock().inject(p, kind, b.count);
        Ok(())
    };
    run().map_or_else(|r| r, |()| StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct OutageBody {
    provider: String,
    kind: Option<String>,
}

/// `PUT /sim/outage {"provider","kind"}`; `"kind": null` lifts it.
pub async fn outage(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let run = || -> Result<(), Response> {
        let b: OutageBody = parse(&body)?;
        let p = provider(&b.provider)?;
        let kind = b.kind.as_deref().map(fault_kind).transpose()?;
        shared.lock().set_outage(p, kind);
        Ok(())
    };
    run().map_or_else(|r| r, |()| StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct RateBody {
    provider: String,
    /// `N/s`, `N/min`, `N/h`, or null for none.
    rate: Option<String>,
}

/// `PUT /sim/rate-limit {"provider","rate"}`.
pub async fn rate_limit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let run = || -> Result<(), Response> {
        let b: RateBody = parse(&body)?;
        let p = provider(&b.provider)?;
        let rate = b
            .rate
            .as_deref()
            .map(|r| r.parse::<RateLimit>())
            .transpose()
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
        let mut st = shared.lock();
        match rate {
            Some(r) => st.config.rate_limits.insert(p, r),
            None => st.config.rate_limits.remove(&p),
        };
        Ok(())
    };
    run().map_or_else(|r| r, |()| StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ReasonsBody {
    reasons: Vec<String>,
}

/// `PUT /sim/ses/suppressed-reasons {"reasons": ["COMPLAINT"]}`.
pub async fn ses_reasons(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let run = || -> Result<(), Response> {
        let b: ReasonsBody = parse(&body)?;
        let reasons = b
            .reasons
            .iter()
            .map(|r| r.parse::<SesReason>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
        shared.lock().config.ses_suppressed_reasons = reasons;
        Ok(())
    };
    run().map_or_else(|r| r, |()| StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct EmailBody {
    email: String,
}

/// `POST /sim/mandrill/allowlist {"email"}`.
pub async fn mandrill_allow(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<EmailBody>(&body) {
        Ok(b) => {
            shared
                .lock()
                .mandrill_allowlist
                .insert(b.email.to_ascii_lowercase());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(resp) => resp,
    }
}

#[derive(Deserialize)]
struct ClockBody {
    advance_ms: u64,
}

/// `POST /sim/clock {"advance_ms"}`: moves a manual clock.
pub async fn clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<ClockBody>(&body) {
        Ok(b) if shared.clock.advance(Duration::from_millis(b.advance_ms)) => {
            Json(json!({"now_ms": shared.now_ms()})).into_response()
        }
        Ok(_) => error(StatusCode::BAD_REQUEST, "the system clock cannot be moved"),
        Err(resp) => resp,
    }
}
