//! Mailjet's contact exclusion under `/mailjet` (`api.mailjet.com`): `POST /v3/REST/contact`
//! creates a contact, `GET|PUT /v3/REST/contact/{id_or_email}` reads it or sets
//! `IsExcludedFromCampaigns`. HTTP Basic `PUBLIC:PRIVATE`. The exclusion blocks marketing
//! (campaign) mail only — "The contacts will still receive all transactional emails" — so its
//! entries are scoped `list: campaigns`. Answers are `{"Count","Data","Total"}`; errors
//! `{"ErrorInfo","ErrorMessage","StatusCode"}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::SimConfig;
use crate::gate::{Ctx, accepted};
use crate::provider::{Provider, valid_email};
use crate::state::{Contact, Detail, Scope, Shared, State as SimState};
use crate::wire;

fn error(status: StatusCode, message: &str) -> Response {
    wire::json(
        status,
        json!({"ErrorInfo": "", "ErrorMessage": message, "StatusCode": status.as_u16()}),
    )
}

pub fn too_many() -> Response {
    error(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
}

pub fn server_error() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

pub fn authenticate(cfg: &SimConfig, parts: &Parts) -> Result<(), Response> {
    match wire::basic_auth(parts) {
        Some((public, private))
            if accepted(cfg, Provider::Mailjet, &format!("{public}:{private}")) =>
        {
            Ok(())
        }
        _ => Err(error(
            StatusCode::UNAUTHORIZED,
            "API key authentication/authorization failure. You may be unauthorized to access the API or your API key may be expired. Visit API keys management section to check your keys.",
        )),
    }
}

fn campaigns() -> Scope {
    Scope {
        list: Some("campaigns".into()),
        ..Scope::default()
    }
}

/// `IsExcludedFromCampaigns` arrives as a boolean or, in Mailjet's own guide, `"true"`.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn view(st: &SimState, c: &Contact) -> Value {
    let entry = st.lists.get(Provider::Mailjet, &campaigns(), &c.email);
    json!({
        "CreatedAt": wire::rfc3339(c.created_ms),
        "DeliveredCount": 0,
        "Email": c.email,
        "ExclusionFromCampaignsUpdatedAt": entry.map(|e| wire::rfc3339(e.updated_ms)).unwrap_or_default(),
        "ID": c.id,
        "IsExcludedFromCampaigns": entry.is_some(),
        "IsOptInPending": false,
        "IsSpamComplaining": false,
        "LastActivityAt": "",
        "LastUpdateAt": "",
        "Name": "",
        "UnsubscribedAt": "",
        "UnsubscribedBy": "",
    })
}

fn data(status: StatusCode, row: Value) -> Response {
    wire::json(status, json!({"Count": 1, "Data": [row], "Total": 1}))
}

/// Applies `IsExcludedFromCampaigns` if the body holds it.
fn apply(st: &mut SimState, email: &str, body: &Value, now_ms: u64) -> Result<(), Response> {
    let Some(v) = body.get("IsExcludedFromCampaigns") else {
        return Ok(());
    };
    match flag(v) {
        Some(true) => {
            st.lists.upsert(
                Provider::Mailjet,
                campaigns(),
                email,
                Detail::default(),
                now_ms,
            );
        }
        Some(false) => {
            st.lists.remove(Provider::Mailjet, &campaigns(), email);
        }
        None => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "IsExcludedFromCampaigns must be a boolean",
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(rename = "Email")]
    email: Option<String>,
}

/// `POST /v3/REST/contact`.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> Response {
    let (Ok(value), Ok(CreateBody { email: Some(email) })) = (
        serde_json::from_slice::<Value>(&body),
        serde_json::from_slice::<CreateBody>(&body),
    ) else {
        return error(StatusCode::BAD_REQUEST, "Email is required");
    };
    if !valid_email(&email) {
        return error(
            StatusCode::BAD_REQUEST,
            "Email is not a valid email address",
        );
    }
    let mut st = shared.lock();
    let Some(contact) = st.mailjet_contacts.create(&email, ctx.now_ms) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("MJ18 A Contact resource with value \"{email}\" for Email already exists."),
        );
    };
    if let Err(resp) = apply(&mut st, &email, &value, ctx.now_ms) {
        return resp;
    }
    data(StatusCode::CREATED, view(&st, &contact))
}

/// `GET /v3/REST/contact/{id_or_email}`.
pub async fn get(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let st = shared.lock();
    match st.mailjet_contacts.find(&id) {
        Some(c) => data(StatusCode::OK, view(&st, c)),
        None => error(StatusCode::NOT_FOUND, "Object not found"),
    }
}

/// `PUT /v3/REST/contact/{id_or_email}` `{"IsExcludedFromCampaigns": true}`.
pub async fn put(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let mut st = shared.lock();
    let Some(contact) = st.mailjet_contacts.find(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, "Object not found");
    };
    if let Err(resp) = apply(&mut st, &contact.email, &value, ctx.now_ms) {
        return resp;
    }
    if ctx.partial {
        return server_error();
    }
    data(StatusCode::OK, view(&st, &contact))
}
