//! Keap's opt-out post: `POST /process_optout.php?app=APP&auth=TOKEN` (the setup guide's URL
//! shape, so an existing setup changes only host and token) and
//! `POST /hooks/keap/APP?auth=TOKEN`.
//!
//! The post is unsigned, form-encoded, and carries the contact's fields. It is authenticated
//! by the tenant's token, checked, and stored with its job in one transaction; only then is
//! it answered 200. A database failure answers 503 so that Keap tries again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keap::{ContactId, EmailAddress, EmailField};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::state::AppState;
use crate::store::NewEvent;

/// Keap's post is a contact record: a few KiB. Anything much larger is not Keap.
pub const MAX_BODY: usize = 64 * 1024;

/// How long intake waits for Keap to confirm that a contact exists before accepting the post
/// anyway (the worker will find out).
const CONTACT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    reply(status, json!({"error": msg}))
}

pub async fn process_optout_php(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let app = q.get("app").cloned().unwrap_or_default();
    handle(state, peer, app, q, body).await
}

pub async fn hooks_keap(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(app): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    handle(state, peer, app, q, body).await
}

/// What the post says about whom.
enum Subject {
    Contact(ContactId),
    Address(EmailAddress),
}

fn parse_post(body: &[u8]) -> Result<Subject, String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| "the body is not form-encoded".to_string())?;
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    if let Some(raw) = get("contactId").or_else(|| get("Id")) {
        return raw
            .parse::<ContactId>()
            .map(Subject::Contact)
            .map_err(|_| format!("contactId {raw:?} is not a contact id"));
    }
    for f in EmailField::ALL {
        if let Some(raw) = get(f.xmlrpc_name()) {
            return EmailAddress::parse(raw)
                .map(Subject::Address)
                .map_err(|_| format!("{} {raw:?} is not an email address", f.xmlrpc_name()));
        }
    }
    Err(
        "the post names no contact: neither contactId/Id nor Email/EmailAddress2/EmailAddress3"
            .into(),
    )
}

async fn handle(
    state: AppState,
    peer: SocketAddr,
    app: String,
    q: HashMap<String, String>,
    body: Bytes,
) -> Response {
    let now = state.clock.now_ms();
    let ip = peer.ip();
    if state.auth_failures.blocked(ip, now as u64) {
        tracing::warn!(%ip, "hook refused: too many failed authentications from this address");
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; try later",
        );
    }
    let auth = q.get("auth").map(String::as_str).unwrap_or_default();
    let tenant = match state.tenants.authenticate(&app, auth).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            state.auth_failures.record(ip, now as u64);
            // Never log the presented token.
            tracing::warn!(%ip, app = %app.chars().take(64).collect::<String>(), "hook refused: unknown app or wrong token");
            return refuse(StatusCode::UNAUTHORIZED, "unknown app or wrong token");
        }
        Err(e) => {
            tracing::error!(error = %e, "hook: the store is unavailable");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry",
            );
        }
    };
    let subject = match parse_post(&body) {
        Ok(s) => s,
        Err(msg) => {
            tracing::warn!(tenant = %tenant.app, %msg, "hook refused: bad post");
            return refuse(StatusCode::BAD_REQUEST, &msg);
        }
    };
    let (contact_id, email, subject_key) = match &subject {
        Subject::Contact(id) => (Some(id.get()), None, format!("contact:{id}")),
        Subject::Address(e) => (
            None,
            Some(e.as_str().to_string()),
            format!("email:{}", e.key()),
        ),
    };
    if let Subject::Contact(id) = subject
        && let Err(resp) = check_contact(&state, &tenant, id).await
    {
        return resp;
    }
    let ev = NewEvent {
        tenant_id: tenant.id,
        source: "keap_post".into(),
        kind: "opt_out".into(),
        contact_id,
        email,
        provider_event_id: None,
        body_digest: hex::encode(Sha256::digest(&body)),
        received_at: now,
        snapshot: None,
    };
    match state.store.accept(&ev, &subject_key).await {
        Ok(acc) => {
            state.wake.notify_waiters();
            tracing::info!(tenant = %tenant.app, subject = %subject_key, event = acc.event_id, job = acc.job_id, "opt-out post accepted");
            reply(
                StatusCode::OK,
                json!({"accepted": true, "event_id": acc.event_id, "job_id": acc.job_id}),
            )
        }
        Err(e) => {
            tracing::error!(tenant = %tenant.app, error = %e, "opt-out post NOT stored; answering 503 so Keap retries");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry",
            )
        }
    }
}

/// Refuses a post for a contact Keap says does not exist. Any other outcome (Keap slow,
/// throttled, down) accepts the post: losing a real opt-out is worse than a wasted job.
async fn check_contact(
    state: &AppState,
    tenant: &crate::store::TenantRow,
    id: ContactId,
) -> Result<(), Response> {
    let client = match state.tenants.client(tenant) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(tenant = %tenant.app, error = %e, "cannot build the Keap client; accepting unchecked");
            return Ok(());
        }
    };
    match tokio::time::timeout(CONTACT_CHECK_TIMEOUT, client.contact(id)).await {
        Ok(Err(keap::Error::NotFound(_))) => {
            tracing::warn!(tenant = %tenant.app, contact = id.get(), "hook refused: Keap has no such contact");
            Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Keap app {} has no contact {id}", tenant.app),
            ))
        }
        Ok(Err(e)) => {
            tracing::warn!(tenant = %tenant.app, contact = id.get(), error = %e, "could not check the contact; accepting");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(tenant = %tenant.app, contact = id.get(), "contact check timed out; accepting");
            Ok(())
        }
        Ok(Ok(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_name_a_contact_or_fall_back_to_an_address() {
        assert!(
            matches!(parse_post(b"contactId=42&Email=a%40x.example"), Ok(Subject::Contact(id)) if id.get() == 42)
        );
        assert!(matches!(parse_post(b"Id=7"), Ok(Subject::Contact(id)) if id.get() == 7));
        assert!(
            matches!(parse_post(b"FirstName=Ann&EmailAddress2=u1%40relay.example"), Ok(Subject::Address(e)) if e.as_str() == "u1@relay.example")
        );
        assert!(parse_post(b"contactId=abc").is_err());
        assert!(parse_post(b"contactId=-1").is_err());
        assert!(parse_post(b"Email=not-an-address").is_err());
        assert!(parse_post(b"FirstName=Ann").is_err());
        assert!(
            parse_post(br#"{"contactId": 5}"#).is_err(),
            "JSON is not a form"
        );
    }
}
