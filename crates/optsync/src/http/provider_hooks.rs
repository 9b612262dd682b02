//! `POST /hooks/esp/PROVIDER/APP`: a sending provider's webhook. The raw bytes are verified
//! the provider's way before anything in them is believed; the normalised events are stored
//! with their jobs in one transaction before the 2xx; a failure to store answers the status
//! that makes that provider try again.

use crate::clock::Millis;
use crate::clock::Now as _;
use crate::logfmt::one_line;
use axum::Json;
use axum::body::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::auth_gate::{AuthFailures, AuthGate, client_ip};
use super::error::HttpError;
use crate::providers::{self, Provider, ProviderConfig, Reject, Request, Verified};
use crate::state::AppState;
use crate::store::{
    Delivery, EventKind, EventPayload, NewEvent, ProviderEvent, SignatureToken, TenantRow,
};

/// SendGrid batches reach 768 KB, Mandrill 1,000 events.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Mandrill checks a webhook URL with HEAD before it issues the key.
pub async fn head() -> StatusCode {
    StatusCode::OK
}

pub async fn receive(
    State(state): State<AppState>,
    State(failures): State<Arc<AuthFailures>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((provider, app)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    let provider = Provider::from_name(&provider)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "unknown provider"))?;
    let now = state.clock.now();
    let ip = client_ip(&state.settings, peer.ip(), &headers);
    let mut gate = secret_gate(&failures, &state, provider, &app, ip)?;
    let (tenant, config) = settings_for(&state, ip, provider, &app)
        .await
        .inspect_err(|e| count_failure(&mut gate, e))?;
    tracing::Span::current().record("tenant", tenant.app.as_str());
    let req = Request {
        headers: &headers,
        body: &body,
        now: now.as_i64() / 1000,
    };
    let verified = providers::verify_async(provider, &config, &req, state.sns.as_ref())
        .await
        .map_err(|r| {
            match &r {
                Reject::Unavailable(_) => tracing::error!(%ip, tenant = %tenant.app, provider = provider.name(), reason = %one_line(&r),
                    "provider webhook NOT accepted for now; answering so the provider retries"),
                _ => tracing::warn!(%ip, tenant = %tenant.app, provider = provider.name(), reason = %one_line(&r), "provider webhook refused"),
            }
            refusal(provider, &r)
        })
        .inspect_err(|e| count_failure(&mut gate, e))?;
    // Single-use tokens are spent per signing key, whichever app they arrive at.
    let token = verified
        .token
        .clone()
        .zip(config.token_scope())
        .map(|(token, key_id)| SignatureToken { key_id, token });
    store(&state, &tenant, provider, &verified, token, &body, now).await
}

/// `POST /hooks/esp/sparkpost/APP/token`: SparkPost's OAuth 2.0 client-credentials token
/// request (RFC 6749 §4.4). A wrong client, an unknown app and an app without OAuth are one
/// answer: 401 `invalid_client`.
pub async fn sparkpost_token(
    State(state): State<AppState>,
    State(failures): State<Arc<AuthFailures>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, (StatusCode, Json<Value>)> {
    let refused = || {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
    };
    let ip = client_ip(&state.settings, peer.ip(), &headers);
    let mut gate = secret_gate(&failures, &state, Provider::Sparkpost, &app, ip)
        .map_err(|e| (e.status, Json(json!({"error": "slow_down"}))))?;
    let (_, config) = settings_for(&state, ip, Provider::Sparkpost, &app)
        .await
        .inspect_err(|e| count_failure(&mut gate, e))
        .map_err(|e| match e.status {
            StatusCode::UNAUTHORIZED => refused(),
            s => (s, Json(json!({"error": "temporarily_unavailable"}))),
        })?;
    let ProviderConfig::SparkpostOauth {
        client_id,
        client_secret,
    } = config
    else {
        tracing::warn!(%ip, "SparkPost token refused: the app does not use OAuth for SparkPost");
        if let Some(g) = gate.as_mut() {
            g.failed();
        }
        return Err(refused());
    };
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let given = providers::oauth::ClientCredentials::read(auth, &body);
    if !given.matches(&client_id, &client_secret) {
        tracing::warn!(%ip, "SparkPost token refused: wrong client credentials");
        if let Some(g) = gate.as_mut() {
            g.failed();
        }
        return Err(refused());
    }
    let now = state.clock.now().as_i64() / 1000;
    let token = providers::oauth::issue(&client_secret, &client_id, now);
    tracing::info!("SparkPost OAuth token issued");
    // A token must not be kept by any cache on the way (RFC 6749 §5.1).
    let body = Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": providers::oauth::TOKEN_LIFETIME_SECS,
    }));
    let no_store = [
        (axum::http::header::CACHE_CONTROL, "no-store"),
        (axum::http::header::PRAGMA, "no-cache"),
    ];
    Ok(axum::response::IntoResponse::into_response((
        no_store, body,
    )))
}

/// The failed-auth gate for the providers that authenticate with a shared secret (basic
/// auth, a bearer token, SparkPost's OAuth client secret): guesses at it are counted per
/// client like guesses at a Keap token. Signed deliveries pass no gate: a signature is not
/// guessed, and a provider's sending addresses, shared by its customers, must not be
/// locked out by one of them.
fn secret_gate(
    failures: &Arc<AuthFailures>,
    state: &AppState,
    provider: Provider,
    app: &str,
    ip: std::net::IpAddr,
) -> Result<Option<AuthGate>, HttpError> {
    let shared_secret = matches!(
        provider,
        Provider::Postmark | Provider::Mailjet | Provider::Brevo | Provider::Sparkpost
    );
    if !shared_secret {
        return Ok(None);
    }
    let app = if crate::tenant::validate_app(app).is_ok() {
        app
    } else {
        "?"
    };
    AuthGate::enter(failures, state, format!("{}/{app}", provider.name()), ip).map(Some)
}

/// Counts a refusal that said "unauthorized" (a wrong secret, an unknown app) at the gate.
fn count_failure(gate: &mut Option<AuthGate>, e: &HttpError) {
    if e.status == StatusCode::UNAUTHORIZED
        && let Some(g) = gate.as_mut()
    {
        g.failed();
    }
}

/// The store's word for what a provider reported (the store knows providers, not the
/// reverse).
fn event_kind(k: providers::Kind) -> EventKind {
    match k {
        providers::Kind::Unsubscribe => EventKind::Unsubscribe,
        providers::Kind::Complaint => EventKind::Complaint,
        providers::Kind::HardBounce => EventKind::HardBounce,
        providers::Kind::Suppressed => EventKind::Suppressed,
        providers::Kind::SoftBounce => EventKind::SoftBounce,
        providers::Kind::Resubscribe => EventKind::Resubscribe,
    }
}

/// The status code of a provider's answer.
fn status_of(s: providers::Status) -> StatusCode {
    StatusCode::from_u16(s.as_u16()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// The answer to a refused delivery. Forged, unsigned, unknown app, unconfigured provider:
/// one answer, so which apps exist does not leak; stale, replayed and malformed say so.
fn refusal(provider: Provider, r: &Reject) -> HttpError {
    metrics::counter!(
        crate::telemetry::WEBHOOK_REFUSALS,
        "provider" => provider.name(),
        "reason" => r.name()
    )
    .increment(1);
    let said = match r {
        Reject::Unauthorized(_) | Reject::Forged(_) => "unauthorized".to_string(),
        other => other.to_string(),
    };
    HttpError::new(status_of(provider.reject_status(r)), said)
}

/// The tenant and its settings for the provider. An unknown app and an unconfigured
/// provider are refused exactly as a bad signature is (and, on the shared-secret routes,
/// counted at the gate like one).
async fn settings_for(
    state: &AppState,
    ip: std::net::IpAddr,
    provider: Provider,
    app: &str,
) -> Result<(TenantRow, ProviderConfig), HttpError> {
    let unauthorized = |why: &str| {
        tracing::warn!(%ip, provider = provider.name(), why, "provider webhook refused");
        refusal(provider, &Reject::Unauthorized(why.into()))
    };
    let unavailable = |e: crate::Error| {
        tracing::error!(error = %one_line(&e), "provider webhook: store unavailable");
        HttpError::retry(status_of(provider.retry_status()))
    };
    let tenant = match state.store.tenant_by_app(app).await.map_err(unavailable)? {
        Some(t) => t,
        None => return Err(unauthorized("unknown app")),
    };
    match state
        .tenants
        .provider_config(&tenant, provider)
        .await
        .map_err(unavailable)?
    {
        Some(c) => Ok((tenant, c)),
        None => Err(unauthorized("provider not configured for this app")),
    }
}

/// The verified events as the store takes them: those that act get a job about their address.
fn events(
    tenant: &TenantRow,
    provider: Provider,
    v: &Verified,
    body: &[u8],
    now: Millis,
) -> Vec<NewEvent> {
    v.events
        .iter()
        .map(|e| {
            let payload = EventPayload::Provider(ProviderEvent {
                provider,
                kind: event_kind(e.kind),
                address: e.email.clone(),
                id: e.id.clone(),
            });
            NewEvent::received(tenant.id, payload, body, now)
        })
        .collect()
}

async fn store(
    state: &AppState,
    tenant: &TenantRow,
    provider: Provider,
    verified: &Verified,
    token: Option<SignatureToken>,
    body: &[u8],
    now: Millis,
) -> Result<Json<Value>, HttpError> {
    let events = events(tenant, provider, verified, body, now);
    let out = state
        .queue
        .enqueue(Delivery {
            events,
            token,
            at: now,
        })
        .await
        .map_err(|e| {
            tracing::error!(provider = provider.name(), error = %one_line(&e),
                "provider webhook NOT stored; answering so the provider retries");
            HttpError::retry(status_of(provider.retry_status()))
        })?;
    if out.replayed {
        tracing::warn!(
            provider = provider.name(),
            "replayed signature token refused"
        );
        return Err(refusal(provider, &Reject::Replayed));
    }
    tracing::info!(
        provider = provider.name(),
        queued = out.queued,
        recorded = out.recorded,
        duplicates = out.duplicates,
        ignored = verified.ignored,
        "provider webhook accepted"
    );
    Ok(Json(
        json!({"queued": out.queued, "recorded": out.recorded, "duplicates": out.duplicates, "ignored": verified.ignored}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider's kind and the store's word for it agree on which events make a job.
    #[test]
    fn provider_kinds_act_as_the_store_kinds_do() {
        use providers::Kind::*;
        for k in [
            Unsubscribe,
            Complaint,
            HardBounce,
            Suppressed,
            SoftBounce,
            Resubscribe,
        ] {
            assert_eq!(k.acts(), event_kind(k).acts(), "{k:?}");
        }
    }
}
