//! Mailgun's per-domain suppression lists under `/mailgun/us` and `/mailgun/eu`
//! (`api.mailgun.net`, `api.eu.mailgun.net`): `POST /v3/{domain}/unsubscribes` and
//! `…/complaints` take one record as a form (urlencoded or multipart; `address`, `tag` default `*`, `created_at`) or up
//! to 1,000 as a JSON array (`Content-Type: application/json`); `GET`/`DELETE
//! /v3/{domain}/{list}/{address}`. HTTP Basic `api:KEY`; a domain asked of the other region's
//! base is "Domain not found". Answers are `{"message"}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::config::{MailgunRegion, ReAdd, SimConfig};
use crate::form;
use crate::gate::{Ctx, accepted};
use crate::provider::{Provider, valid_email};
use crate::state::{Detail, Lists, Scope, Shared};
use crate::wire;

/// Most records in one JSON insert.
const MAX_RECORDS: usize = 1000;

fn message(status: StatusCode, text: &str) -> Response {
    wire::json(status, json!({"message": text}))
}

pub fn too_many() -> Response {
    message(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
}

pub fn server_error() -> Response {
    message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

pub fn authenticate(cfg: &SimConfig, parts: &Parts) -> Result<(), Response> {
    match wire::basic_auth(parts) {
        Some((user, key)) if user == "api" && accepted(cfg, Provider::Mailgun, &key) => Ok(()),
        _ => Err((StatusCode::UNAUTHORIZED, "Forbidden").into_response()),
    }
}

/// Which list a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Unsubscribes,
    Complaints,
}

impl List {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "unsubscribes" => Some(Self::Unsubscribes),
            "complaints" => Some(Self::Complaints),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Unsubscribes => "unsubscribes",
            Self::Complaints => "complaints",
        }
    }
}

fn region(s: &str) -> Option<MailgunRegion> {
    match s {
        "us" => Some(MailgunRegion::Us),
        "eu" => Some(MailgunRegion::Eu),
        _ => None,
    }
}

/// The scope of `(region, domain, list)`, or the 404 Mailgun answers.
fn resolve(
    shared: &Shared,
    region_s: &str,
    domain: &str,
    list_s: &str,
) -> Result<(Scope, List), Response> {
    let not_found = || message(StatusCode::NOT_FOUND, "Not Found");
    let (Some(r), Some(list)) = (region(region_s), List::parse(list_s)) else {
        return Err(not_found());
    };
    if !shared.lock().config.mailgun_domain_in(r, domain) {
        return Err(message(
            StatusCode::NOT_FOUND,
            &format!("Domain not found: {domain}"),
        ));
    }
    let scope = Scope {
        region: Some(r.as_str().to_string()),
        domain: Some(domain.to_ascii_lowercase()),
        list: Some(list.name().to_string()),
        ..Scope::default()
    };
    Ok((scope, list))
}

#[derive(Deserialize)]
struct Record {
    address: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// The records of a write: one from a form, up to 1,000 from a JSON array.
fn records(headers: &HeaderMap, body: &[u8]) -> Result<(Vec<Record>, bool), Response> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let is_json = content_type.is_some_and(|v| v.starts_with("application/json"));
    let bad = |m: &str| message(StatusCode::BAD_REQUEST, m);
    let recs = if is_json {
        let recs: Vec<Record> = serde_json::from_slice(body).map_err(|_| bad("Invalid JSON"))?;
        if recs.len() > MAX_RECORDS {
            return Err(bad("Too many records: maximum is 1000"));
        }
        recs
    } else {
        let form = form::fields(content_type, body).ok_or_else(|| bad("Invalid form data"))?;
        let address = form
            .get("address")
            .cloned()
            .ok_or_else(|| bad("'address' parameter is missing"))?;
        let tag = form.get("tag").cloned().unwrap_or_else(|| "*".into());
        vec![Record {
            address,
            tags: vec![tag],
        }]
    };
    if recs.is_empty() {
        return Err(bad("No records"));
    }
    if let Some(r) = recs.iter().find(|r| !valid_email(&r.address)) {
        return Err(bad(&format!(
            "'{}' is not a valid email address",
            r.address
        )));
    }
    Ok((recs, is_json))
}

/// Upserts the records; returns how many were new.
fn write(lists: &mut Lists, scope: &Scope, list: List, recs: &[Record], now_ms: u64) -> usize {
    let mut new = 0;
    for r in recs {
        let tags = if r.tags.is_empty() {
            vec!["*".to_string()]
        } else {
            r.tags.clone()
        };
        let detail = Detail {
            reason: (list == List::Unsubscribes).then(|| tags.join(",")),
            ..Detail::default()
        };
        if lists.upsert(Provider::Mailgun, scope.clone(), &r.address, detail, now_ms) {
            new += 1;
        }
    }
    new
}

/// `POST /v3/{domain}/unsubscribes|complaints`.
pub async fn add(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path((region_s, domain, list_s)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (scope, list) = match resolve(&shared, &region_s, &domain, &list_s) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (recs, bulk) = match records(&headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (new, refuse) = {
        let mut st = shared.lock();
        let new = write(
            &mut st.lists,
            &scope,
            list,
            &recs[..ctx.applied(recs.len())],
            ctx.now_ms,
        );
        (new, st.config.readd == ReAdd::Refuse)
    };
    if ctx.partial {
        return server_error();
    }
    let reported = if refuse { new } else { recs.len() };
    if bulk {
        return message(
            StatusCode::OK,
            &format!("{reported} addresses have been added"),
        );
    }
    if reported == 0 {
        return message(
            StatusCode::BAD_REQUEST,
            &format!("Address already exists '{}'", recs[0].address),
        );
    }
    wire::json(
        StatusCode::OK,
        json!({"message": format!("Address has been added to the {} table", list.name()),
               "address": recs[0].address}),
    )
}

/// `GET /v3/{domain}/unsubscribes|complaints/{address}`.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path((region_s, domain, list_s, address)): Path<(String, String, String, String)>,
) -> Response {
    let (scope, list) = match resolve(&shared, &region_s, &domain, &list_s) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let st = shared.lock();
    let Some(e) = st.lists.get(Provider::Mailgun, &scope, &address) else {
        return message(
            StatusCode::NOT_FOUND,
            &format!("Address not found in {} table", list.name()),
        );
    };
    let mut body = json!({"address": e.address, "created_at": wire::rfc2822(e.created_ms)});
    if let Some(tags) = &e.reason {
        body["tags"] = json!(tags.split(',').collect::<Vec<_>>());
    }
    if list == List::Complaints {
        body["count"] = json!(1);
    }
    wire::json(StatusCode::OK, body)
}

/// `DELETE /v3/{domain}/unsubscribes|complaints/{address}`.
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((region_s, domain, list_s, address)): Path<(String, String, String, String)>,
) -> Response {
    let (scope, list) = match resolve(&shared, &region_s, &domain, &list_s) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match shared
        .lock()
        .lists
        .remove(Provider::Mailgun, &scope, &address)
    {
        Some(e) => wire::json(
            StatusCode::OK,
            json!({"message": format!("{} address has been removed", list.name()), "address": e.address}),
        ),
        None => message(
            StatusCode::NOT_FOUND,
            &format!("Address not found in {} table", list.name()),
        ),
    }
}
