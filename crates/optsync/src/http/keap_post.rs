//! Keap's opt-out post: `POST /process_optout.php?app=APP&auth=TOKEN` (the setup guide's URL
//! shape, so an existing setup changes only host and token) and
//! `POST /hooks/keap/APP?auth=TOKEN`.
//!
//! The post is unsigned, form-encoded, and carries the contact's fields. It is authenticated
//! by the tenant's token, parsed, and stored with its job in one transaction; only then is it
//! answered 200. Intake never calls Keap: whether the contact exists is the worker's business
//! (a post for an unknown contact ends as `not_found`). A database failure answers 503 so
//! that Keap tries again.

use crate::clock::Now as _;
use crate::logfmt::one_line;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use keap::{ContactId, EmailAddress, EmailField};
use serde_json::{Value, json};

use super::auth_gate::KeapAuth;
use super::error::HttpError;
use crate::state::AppState;
use crate::store::{Delivery, EventPayload, NewEvent, PostedAddresses, Subject, TenantRow};
use crate::tenant::HookAuth;

/// Keap's post is a contact record: a few KiB. Anything much larger is not Keap.
pub const MAX_BODY: usize = 64 * 1024;

type Answer = Result<Json<Value>, HttpError>;

/// Reads a Keap post's body (at most [`MAX_BODY`]) within `OPTSYNC_KEAP_BODY_TIMEOUT_SECS`:
/// a few KiB take Keap no time, so a client trickling its body is cut off long before the
/// request timeout and gives its connection back.
pub async fn body_within_timeout(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, MAX_BODY);
    match tokio::time::timeout(state.settings.keap_body_timeout, read).await {
        Ok(Ok(bytes)) => {
            let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(req).await
        }
        Ok(Err(_)) => {
            HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large").into_response()
        }
        Err(_) => {
            tracing::warn!("Keap post refused: its body took too long");
            HttpError::new(StatusCode::REQUEST_TIMEOUT, "the body took too long").into_response()
        }
    }
}

/// Both routes: [`KeapAuth`] reads the app from the query or the path.
pub async fn receive_post(State(state): State<AppState>, auth: KeapAuth, body: Bytes) -> Answer {
    receive(state, auth, &body).await
}

/// What the post says about whom, and the contact's addresses as it gave them.
pub fn parse_post(body: &[u8]) -> Result<(Subject, PostedAddresses), String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| "the body is not form-encoded".to_string())?;
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim())
            // Keap's action set posts empty fields as the string `null`.
            .filter(|v| !v.is_empty() && *v != "null")
    };
    let posted: Vec<(EmailField, &str)> = EmailField::ALL
        .into_iter()
        .filter_map(|f| Some((f, get(f.xmlrpc_name())?)))
        .collect();
    if let Some(raw) = get("contactId").or_else(|| get("Id")) {
        let id = raw
            .parse::<ContactId>()
            .map_err(|_| format!("contactId {raw:?} is not a contact id"))?;
        return Ok((Subject::Contact(id), posted_addresses(&posted)));
    }
    match posted.first() {
        Some((f, raw)) => EmailAddress::parse(raw)
            .map(|e| (Subject::Address(e), posted_addresses(&posted)))
            .map_err(|_| format!("{} {raw:?} is not an email address", f.xmlrpc_name())),
        None => Err(
            "the post names no contact: neither contactId/Id nor Email/EmailAddress2/EmailAddress3"
                .into(),
        ),
    }
}

/// The post's addresses, or none at all when one of them is not an address: the worker then
/// reads the contact rather than act on part of it.
fn posted_addresses(posted: &[(EmailField, &str)]) -> PostedAddresses {
    let parsed: Option<Vec<(EmailField, EmailAddress)>> = posted
        .iter()
        .map(|(f, raw)| Some((*f, EmailAddress::parse(raw).ok()?)))
        .collect();
    PostedAddresses::new(parsed.unwrap_or_default())
}

async fn receive(state: AppState, mut auth: KeapAuth, body: &[u8]) -> Answer {
    let now = state.clock.now();
    let tenant = authenticate(&state, &mut auth).await?;
    tracing::Span::current().record("tenant", tenant.app.as_str());
    let (subject, addresses) = parse_post(body).map_err(|msg| {
        tracing::warn!(msg = %one_line(&msg), "hook refused: bad post");
        HttpError::bad_request(msg)
    })?;
    let ev = NewEvent::received(
        tenant.id,
        EventPayload::KeapPost {
            subject: subject.clone(),
            addresses,
        },
        body,
        now,
    );
    let delivery = Delivery {
        events: vec![ev],
        token: None,
        at: now,
    };
    let acc = match state.queue.enqueue(delivery).await {
        Ok(out) => out.accepted.into_iter().next(),
        Err(e) => {
            tracing::error!(error = %one_line(&e), "opt-out post NOT stored; answering 503 so Keap retries");
            None
        }
    }
    .ok_or_else(|| HttpError::retry(StatusCode::SERVICE_UNAVAILABLE))?;
    tracing::info!(%subject, event = %acc.event_id, job = ?acc.job_id, "opt-out post accepted");
    Ok(Json(
        json!({"accepted": true, "event_id": acc.event_id, "job_id": acc.job_id}),
    ))
}

/// The tenant whose token this is; a failure counts against the caller's address, and at
/// an app that accepts the legacy token, against the app too.
async fn authenticate(state: &AppState, a: &mut KeapAuth) -> Result<TenantRow, HttpError> {
    let now = state.clock.now_ms();
    let refused = |gate: &mut super::auth_gate::AuthGate, why: &str| {
        gate.failed();
        // Never log the presented token.
        tracing::warn!(ip = %gate.ip, app = %one_line(&a.app), why, "hook refused");
        HttpError::unauthorized()
    };
    match state.tenants.authenticate_hook(&a.app, &a.auth).await {
        Ok(HookAuth::Token(t)) => Ok(t),
        Ok(HookAuth::Legacy(t)) if a.gate.failures().legacy_open(&t.app, now) => Ok(t),
        Ok(HookAuth::Legacy(_)) => Err(refused(
            &mut a.gate,
            "legacy token refused: too many failed authentications at this app this hour",
        )),
        Ok(HookAuth::Refused { legacy }) => {
            if legacy {
                a.gate.failures().legacy_failed(&a.app, now);
            }
            Err(refused(&mut a.gate, "unknown app or wrong token"))
        }
        Err(e) => {
            tracing::error!(error = %one_line(&e), "hook: the store is unavailable");
            Err(HttpError::retry(StatusCode::SERVICE_UNAVAILABLE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(body: &[u8]) -> Result<Subject, String> {
        parse_post(body).map(|(s, _)| s)
    }

    fn posted(body: &[u8]) -> Vec<(EmailField, String)> {
        let (_, a) = parse_post(body).unwrap();
        a.fields()
            .iter()
            .map(|(f, e)| (*f, e.as_str().to_string()))
            .collect()
    }

    #[test]
    fn posts_name_a_contact_or_fall_back_to_an_address() {
        assert!(
            matches!(subject(b"contactId=42&Email=a%40x.example"), Ok(Subject::Contact(id)) if id.get() == 42)
        );
        assert!(matches!(subject(b"Id=7"), Ok(Subject::Contact(id)) if id.get() == 7));
        assert!(
            matches!(subject(b"FirstName=Ann&EmailAddress2=u1%40relay.example"), Ok(Subject::Address(e)) if e.as_str() == "u1@relay.example")
        );
        assert!(subject(b"contactId=abc").is_err());
        assert!(subject(b"contactId=-1").is_err());
        assert!(subject(b"Email=not-an-address").is_err());
        assert!(subject(b"FirstName=Ann").is_err());
        // Every field posted, empty ones as `null` (what Keap's legacy action set sends).
        assert!(
            matches!(subject(b"contactId=null&Email=null&EmailAddress2=u2%40relay.example&EmailAddress3=null"), Ok(Subject::Address(e)) if e.as_str() == "u2@relay.example")
        );
        assert!(subject(b"contactId=null&Email=null").is_err());
        assert!(
            subject(br#"{"contactId": 5}"#).is_err(),
            "JSON is not a form"
        );
    }

    #[test]
    fn the_posts_addresses_are_kept_by_field() {
        assert_eq!(
            posted(b"contactId=42&EmailAddress3=null&EmailAddress2=r%40relay.example&Email=a%40x.example"),
            vec![
                (EmailField::Email1, "a@x.example".to_string()),
                (EmailField::Email2, "r@relay.example".to_string()),
            ]
        );
        assert_eq!(
            posted(b"EmailAddress2=u%40relay.example"),
            vec![(EmailField::Email2, "u@relay.example".to_string())]
        );
        assert!(posted(b"contactId=42").is_empty());
        // One field that is not an address: none kept (the worker reads the contact).
        assert!(posted(b"contactId=42&Email=a%40x.example&EmailAddress2=nope").is_empty());
    }
}
