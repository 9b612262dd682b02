//! The emulator's own control API under `/sim` (JSON, unauthenticated: it is a test
//! instrument), and Keap's OAuth `/token` endpoint (its consent page is [`crate::consent`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use keap::EmailStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::SimError;
use crate::auth::{GrantError, GrantKind};
use crate::state::{FaultKind, Shared, SimEvent};
use crate::store::{Contact, Store};

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            SimError::UnknownAddress(_) | SimError::UnknownContact(_) => StatusCode::NOT_FOUND,
            SimError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, self.to_string())
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::BadRequest(format!("invalid JSON: {e}")))
}

fn parse_status(s: Option<&str>) -> Result<Option<EmailStatus>, SimError> {
    s.map(|s| {
        s.parse::<EmailStatus>()
            .map_err(|e| SimError::BadRequest(e.to_string()))
    })
    .transpose()
}

pub fn contact_view(store: &Store, c: &Contact) -> Value {
    let statuses: serde_json::Map<String, Value> = c
        .emails
        .iter()
        .flatten()
        .filter_map(|e| store.status(e).map(|s| (e.clone(), json!(s.type_name()))))
        .collect();
    json!({
        "id": c.id,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "email1": c.emails[0],
        "email2": c.emails[1],
        "email3": c.emails[2],
        "statuses": statuses,
    })
}

#[derive(Deserialize)]
struct NewContact {
    email1: String,
    email2: Option<String>,
    email3: Option<String>,
    status: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

pub async fn add_contact(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, SimError> {
    let c: NewContact = parse_json(&body)?;
    let status = parse_status(c.status.as_deref())?.unwrap_or(EmailStatus::SingleOptIn);
    let emails = [Some(c.email1), c.email2, c.email3];
    for e in emails.iter().flatten() {
        keap::EmailAddress::parse(e).map_err(|e| SimError::BadRequest(e.to_string()))?;
    }
    let now = shared.now_ms();
    let mut st = shared.lock();
    let id = st.store.add_contact(
        c.first_name.as_deref().unwrap_or(""),
        c.last_name.as_deref().unwrap_or(""),
        emails,
        status,
        now,
    );
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

pub async fn list_contacts(State(shared): State<Arc<Shared>>) -> Response {
    let st = shared.lock();
    let all: Vec<Value> = st
        .store
        .contacts
        .values()
        .map(|c| contact_view(&st.store, c))
        .collect();
    Json(all).into_response()
}

pub async fn get_contact(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
) -> Result<Response, SimError> {
    let st = shared.lock();
    let c = st
        .store
        .contacts
        .get(&id)
        .ok_or(SimError::UnknownContact(id))?;
    Ok(Json(contact_view(&st.store, c)).into_response())
}

pub async fn get_email(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
) -> Result<Response, SimError> {
    let st = shared.lock();
    let row = st
        .store
        .row(&email)
        .ok_or_else(|| SimError::UnknownAddress(email.clone()))?;
    Ok(Json(json!({
        "email": row.email,
        "status": row.status.type_name(),
        "marketable": row.status.is_marketable(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct EventBody {
    event: String,
    status: Option<String>,
    contact_id: Option<i64>,
}

pub async fn email_event(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let b: EventBody = parse_json(&body)?;
    let status = parse_status(b.status.as_deref())?;
    let event = SimEvent::from_name(&b.event, status).ok_or_else(|| {
        SimError::BadRequest(format!(
            "unknown event {:?} (or `set` without a status)",
            b.event
        ))
    })?;
    let outcome = shared.apply_event(&email, event, b.contact_id)?;
    Ok(Json(outcome).into_response())
}

#[derive(Deserialize)]
struct ActionSetBody {
    url: Option<String>,
}

pub async fn put_action_set(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, SimError> {
    let b: ActionSetBody = parse_json(&body)?;
    if let Some(u) = &b.url {
        url::Url::parse(u).map_err(|e| SimError::BadRequest(format!("invalid url: {e}")))?;
    }
    shared.lock().config.action_set_url = b.url.clone();
    Ok(Json(json!({"url": b.url})).into_response())
}

#[derive(Deserialize)]
struct XmlRpcBody {
    available: bool,
}

/// `PUT /sim/xmlrpc {"available": bool}`: switches XML-RPC off (a brownout, the sunset) and on.
pub async fn put_xmlrpc(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, SimError> {
    let b: XmlRpcBody = parse_json(&body)?;
    shared.lock().config.xmlrpc_available = b.available;
    Ok(Json(json!({"available": b.available})).into_response())
}

#[derive(Deserialize)]
struct FaultBody {
    kind: String,
    count: Option<u32>,
}

pub async fn post_faults(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, SimError> {
    let b: FaultBody = parse_json(&body)?;
    let kind = FaultKind::from_name(&b.kind)
        .ok_or_else(|| SimError::BadRequest(format!("unknown fault kind {:?}", b.kind)))?;
    let count = b.count.unwrap_or(1);
    if count > 0 {
        shared.lock().faults.push_back((kind, count));
    }
    Ok(Json(json!({"kind": b.kind, "count": count})).into_response())
}

#[derive(Deserialize)]
struct OutageBody {
    /// Fault kinds taken in turn while the outage lasts; empty ends it.
    kinds: Vec<String>,
}

/// `PUT /sim/outage {"kinds": ["500", "timeout", "drop", "429"]}`: Keap down until the kinds
/// are set empty again.
pub async fn put_outage(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, SimError> {
    let b: OutageBody = parse_json(&body)?;
    let kinds = b
        .kinds
        .iter()
        .map(|k| {
            FaultKind::from_name(k)
                .ok_or_else(|| SimError::BadRequest(format!("unknown fault kind {k:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    shared.lock().outage = kinds;
    Ok(Json(json!({"kinds": b.kinds})).into_response())
}

pub async fn get_stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().stats.clone()).into_response()
}

pub async fn reset_stats(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().stats = Default::default();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct ClockBody {
    advance_ms: u64,
}

pub async fn advance_clock(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, SimError> {
    let b: ClockBody = parse_json(&body)?;
    if !shared.clock.advance(Duration::from_millis(b.advance_ms)) {
        return Err(SimError::BadRequest(
            "the clock is the system clock; start the sim with a manual clock".into(),
        ));
    }
    Ok(Json(json!({"now_ms": shared.now_ms()})).into_response())
}

#[derive(Deserialize)]
struct CodeBody {
    client_id: String,
    /// The redirect URI the code is bound to, as if the consent page had been given it.
    redirect_uri: Option<String>,
}

/// `POST /sim/oauth/codes`: a code as the consent page hands out on "Allow" (for tests that
/// skip the browser).
pub async fn issue_code(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, SimError> {
    let b: CodeBody = parse_json(&body)?;
    let now = shared.now_ms();
    let mut st = shared.lock();
    let terms = st.grant_terms(now);
    let code = st
        .auth
        .issue_code(&b.client_id, b.redirect_uri.as_deref(), &terms)
        .ok_or_else(|| SimError::BadRequest(format!("unknown client {:?}", b.client_id)))?;
    Ok(Json(json!({"code": code})).into_response())
}

#[derive(Deserialize)]
struct RevokeBody {
    client_id: String,
}

/// `POST /sim/oauth/revoke`: the app's owner removes the client's access; every token and
/// code of the client stops working at once.
pub async fn revoke(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, SimError> {
    let b: RevokeBody = parse_json(&body)?;
    let revoked = shared
        .lock()
        .auth
        .revoke(&b.client_id)
        .ok_or_else(|| SimError::BadRequest(format!("unknown client {:?}", b.client_id)))?;
    Ok(Json(json!({"revoked": revoked})).into_response())
}

fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// `POST /token`: the authorization-code and refresh-token grants. Client credentials come in
/// a Basic header (how refreshes are documented) or in the form (how the code exchange is).
pub async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let client = basic_client(&headers).or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    let Some((id, secret)) = client else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    };
    let now = shared.now_ms();
    let mut st = shared.lock();
    let terms = st.grant_terms(now);
    let answer = st.auth.grant((&id, &secret), &form, &terms);
    match answer {
        Ok((kind, g)) => {
            match kind {
                GrantKind::AuthorizationCode => st.stats.oauth.code_exchanges += 1,
                GrantKind::RefreshToken => st.stats.oauth.refreshes += 1,
            }
            Json(g).into_response()
        }
        Err(GrantError::InvalidClient) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        ),
        Err(GrantError::InvalidGrant(d)) => {
            st.stats.oauth.invalid_grant += 1;
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d)
        }
        Err(GrantError::UnsupportedGrantType) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type",
        ),
        Err(GrantError::InvalidRequest(field)) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("Missing {field}"),
        ),
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}
