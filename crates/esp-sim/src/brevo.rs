//! Brevo's two blocklists under `/brevo` (`api.brevo.com`): `PUT /v3/contacts/{identifier}`
//! with `emailBlacklisted` (campaigns, scoped `list: campaigns`) and `smtpBlacklistSender`
//! (transactional mail, per sender); `POST /v3/contacts` creates (`updateEnabled` updates);
//! `GET /v3/contacts/{identifier}`; `GET /v3/smtp/blockedContacts`; `DELETE
//! /v3/smtp/blockedContacts/{email}` (204, or 404 when not blocked). The `api-key` header.
//! Errors are `{"code","message"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::SimConfig;
use crate::gate::{Ctx, accepted};
use crate::provider::{Provider, valid_email};
use crate::state::{Contact, Detail, Scope, Shared, State as SimState};
use crate::wire;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    wire::json(status, json!({"code": code, "message": message}))
}

pub fn too_many() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "Too many requests",
    )
}

pub fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal server error",
    )
}

pub fn authenticate(cfg: &SimConfig, parts: &Parts) -> Result<(), Response> {
    match wire::header(parts, "api-key") {
        Some(k) if accepted(cfg, Provider::Brevo, k) => Ok(()),
        _ => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Key not found",
        )),
    }
}

fn campaigns() -> Scope {
    Scope {
        list: Some("campaigns".into()),
        ..Scope::default()
    }
}

fn sender(s: &str) -> Scope {
    Scope {
        list: Some("transactional".into()),
        sender: Some(s.to_ascii_lowercase()),
        ..Scope::default()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Update {
    email: Option<String>,
    email_blacklisted: Option<bool>,
    smtp_blacklist_sender: Option<Vec<String>>,
    #[serde(default)]
    update_enabled: bool,
}

fn parse(body: &[u8]) -> Result<Update, Response> {
    let u: Update = serde_json::from_slice(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "bad_request", "Invalid JSON"))?;
    if let Some(s) = u
        .smtp_blacklist_sender
        .iter()
        .flatten()
        .find(|s| !valid_email(s))
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            &format!("smtpBlacklistSender: {s} is not a valid email address"),
        ));
    }
    Ok(u)
}

/// Writes the blocklist fields of `u` for `email`.
fn apply(st: &mut SimState, email: &str, u: &Update, ctx: Ctx) {
    match u.email_blacklisted {
        Some(true) => {
            st.lists.upsert(
                Provider::Brevo,
                campaigns(),
                email,
                Detail::default(),
                ctx.now_ms,
            );
        }
        Some(false) => {
            st.lists.remove(Provider::Brevo, &campaigns(), email);
        }
        None => {}
    }
    let senders = u.smtp_blacklist_sender.as_deref().unwrap_or(&[]);
    for s in senders.iter().take(ctx.applied(senders.len())) {
        let detail = Detail {
            reason: Some("adminBlocked".into()),
            ..Detail::default()
        };
        st.lists
            .upsert(Provider::Brevo, sender(s), email, detail, ctx.now_ms);
    }
}

/// The contact an identifier names (`identifierType` as documented; by default an email
/// when it holds `@`, else an id).
fn find<'a>(st: &'a SimState, ident: &str, q: &HashMap<String, String>) -> Option<&'a Contact> {
    match q.get("identifierType").map(String::as_str) {
        Some("email_id") => st
            .brevo_contacts
            .find(&ident.to_ascii_lowercase())
            .filter(|_| ident.contains('@')),
        Some("contact_id") => ident
            .parse::<u64>()
            .ok()
            .and_then(|_| st.brevo_contacts.find(ident)),
        Some(_) => None,
        None => st.brevo_contacts.find(ident),
    }
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "document_not_found",
        "Contact does not exist",
    )
}

/// `POST /v3/contacts`.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> Response {
    let u = match parse(&body) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let Some(email) = u.email.clone().filter(|e| valid_email(e)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "email is not valid",
        );
    };
    let mut st = shared.lock();
    let created = st.brevo_contacts.create(&email, ctx.now_ms);
    if created.is_none() && !u.update_enabled {
        return error(
            StatusCode::BAD_REQUEST,
            "duplicate_parameter",
            "Unable to create contact, email is already associated with another Contact",
        );
    }
    apply(&mut st, &email, &u, ctx);
    drop(st);
    if ctx.partial {
        return server_error();
    }
    match created {
        Some(c) => (StatusCode::CREATED, axum::Json(json!({"id": c.id}))).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `PUT /v3/contacts/{identifier}`: 204.
pub async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(ident): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let u = match parse(&body) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let mut st = shared.lock();
    let Some(email) = find(&st, &ident, &q).map(|c| c.email.clone()) else {
        return not_found();
    };
    apply(&mut st, &email, &u, ctx);
    drop(st);
    if ctx.partial {
        return server_error();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /v3/contacts/{identifier}`.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path(ident): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let st = shared.lock();
    let Some(c) = find(&st, &ident, &q) else {
        return not_found();
    };
    let blocked = st
        .lists
        .get(Provider::Brevo, &campaigns(), &c.email)
        .is_some();
    wire::json(
        StatusCode::OK,
        json!({"email": c.email, "id": c.id, "emailBlacklisted": blocked, "smsBlacklisted": false,
               "createdAt": wire::rfc3339(c.created_ms), "modifiedAt": wire::rfc3339(c.created_ms),
               "attributes": {}, "listIds": []}),
    )
}

/// `GET /v3/smtp/blockedContacts?senders=a,b`.
pub async fn blocked(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let senders: Option<Vec<String>> = q.get("senders").map(|s| {
        s.split(',')
            .map(|x| x.trim().to_ascii_lowercase())
            .collect()
    });
    let st = shared.lock();
    let rows: Vec<Value> = st
        .lists
        .of(Provider::Brevo)
        .filter_map(|e| Some((e, e.scope.sender.as_ref()?)))
        .filter(|(_, s)| senders.as_ref().is_none_or(|w| w.contains(s)))
        .map(|(e, s)| {
            json!({"email": e.address, "senderEmail": s, "blockedAt": wire::rfc3339(e.created_ms),
                   "reason": {"code": "adminBlocked", "message": "Contact has been blocked by admin"}})
        })
        .collect();
    wire::json(
        StatusCode::OK,
        json!({"count": rows.len(), "contacts": rows}),
    )
}

/// `DELETE /v3/smtp/blockedContacts/{email}`: every sender's block of the address.
pub async fn unblock(State(shared): State<Arc<Shared>>, Path(email): Path<String>) -> Response {
    let mut st = shared.lock();
    let scopes: Vec<Scope> = st
        .lists
        .of(Provider::Brevo)
        .filter(|e| e.scope.sender.is_some() && e.address.eq_ignore_ascii_case(&email))
        .map(|e| e.scope.clone())
        .collect();
    if scopes.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "document_not_found",
            "Contact not found in blocklist",
        );
    }
    for s in scopes {
        st.lists.remove(Provider::Brevo, &s, &email);
    }
    StatusCode::NO_CONTENT.into_response()
}
