//! `POST /hooks/esp/PROVIDER/APP`: a sending provider's webhook. The raw bytes are verified
//! the provider's way before anything in them is believed; the normalised events are stored
//! with their jobs in one transaction before the 2xx; a failure to store answers the status
//! that makes that provider try again.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::providers::{self, Provider, Reject, Request};
use crate::state::AppState;
use crate::store::NewEvent;

/// SendGrid batches reach 768 KB, Mandrill 1,000 events.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

fn refuse(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

/// Mandrill checks a webhook URL with HEAD before it issues the key.
pub async fn head() -> StatusCode {
    StatusCode::OK
}

pub async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((provider, app)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = Provider::from_name(&provider) else {
        return refuse(StatusCode::NOT_FOUND, "unknown provider");
    };
    let now = state.clock.now_ms();
    let ip = peer.ip();
    if state.auth_failures.blocked(ip, now as u64) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; try later",
        );
    }
    let unauthorized = |why: &str| {
        state.auth_failures.record(ip, now as u64);
        tracing::warn!(%ip, provider = provider.name(), why, "provider webhook refused");
        let r = Reject::Unauthorized(why.to_string());
        refuse(provider.reject_status(&r), "unauthorized")
    };
    let tenant = match state.store.tenant_by_app(&app).await {
        Ok(Some(t)) => t,
        Ok(None) => return unauthorized("unknown app"),
        Err(e) => {
            tracing::error!(error = %e, "provider webhook: store unavailable");
            return refuse(provider.retry_status(), "storage unavailable; retry");
        }
    };
    let config = match state.tenants.provider_config(&tenant, provider).await {
        Ok(Some(c)) => c,
        Ok(None) => return unauthorized("provider not configured for this app"),
        Err(e) => {
            tracing::error!(tenant = %tenant.app, error = %e, "provider webhook: settings unreadable");
            return refuse(provider.retry_status(), "storage unavailable; retry");
        }
    };
    let req = Request {
        headers: &headers,
        body: &body,
        now: now / 1000,
    };
    let verified = match providers::verify_async(provider, &config, &req, state.sns.as_ref()).await
    {
        Ok(v) => v,
        Err(r) => {
            if matches!(r, Reject::Unauthorized(_) | Reject::Forged(_)) {
                state.auth_failures.record(ip, now as u64);
            }
            tracing::warn!(%ip, tenant = %tenant.app, provider = provider.name(), reason = %r, "provider webhook refused");
            return refuse(provider.reject_status(&r), &r.to_string());
        }
    };
    let digest = hex::encode(Sha256::digest(&body));
    let source = format!("esp:{}", provider.name());
    let events: Vec<(NewEvent, Option<String>)> = verified
        .events
        .iter()
        .map(|e| {
            (
                NewEvent {
                    tenant_id: tenant.id,
                    source: source.clone(),
                    kind: e.kind.event_kind().into(),
                    contact_id: None,
                    email: Some(e.email.as_str().to_string()),
                    provider_event_id: e.id.clone(),
                    body_digest: digest.clone(),
                    received_at: now,
                    snapshot: None,
                },
                e.kind.acts().then(|| format!("email:{}", e.email.key())),
            )
        })
        .collect();
    let token = verified
        .token
        .as_deref()
        .map(|t| (tenant.id, provider.name(), t));
    match state.store.store_delivery(&events, token, now).await {
        Ok(out) if out.replayed => {
            tracing::warn!(%ip, tenant = %tenant.app, provider = provider.name(), "replayed signature token refused");
            refuse(provider.reject_status(&Reject::Replayed), "replayed")
        }
        Ok(out) => {
            if out.queued > 0 {
                state.wake.notify_waiters();
            }
            tracing::info!(tenant = %tenant.app, provider = provider.name(), queued = out.queued,
                recorded = out.recorded, duplicates = out.duplicates, ignored = verified.ignored, "provider webhook accepted");
            (
                StatusCode::OK,
                Json(json!({"queued": out.queued, "recorded": out.recorded, "duplicates": out.duplicates, "ignored": verified.ignored})),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(tenant = %tenant.app, provider = provider.name(), error = %e,
                "provider webhook NOT stored; answering so the provider retries");
            refuse(provider.retry_status(), "storage unavailable; retry")
        }
    }
}
