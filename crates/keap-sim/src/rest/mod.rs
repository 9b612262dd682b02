//! REST v2: contacts with their addresses, and the email-address status endpoints.

mod addresses;
mod contacts;

pub use addresses::{get_status, list_addresses, patch_status};
pub use contacts::{create_contact, get_contact, list_contacts};

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::config::RestOptOut;
use crate::gateway::rest_error;
use crate::state::{Shared, rfc3339};
use crate::store::{AddressRow, Contact, Store, email_key};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

type Params = Query<HashMap<String, String>>;

/// A 400 on its way out, kept small so that `Result`s carrying it stay cheap.
struct BadRequest(String, &'static str);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        rest_error(StatusCode::BAD_REQUEST, self.0, self.1)
    }
}

fn bad_request(msg: impl Into<String>, resource: &'static str) -> BadRequest {
    BadRequest(msg.into(), resource)
}

fn page_size(q: &HashMap<String, String>, resource: &'static str) -> Result<usize, BadRequest> {
    match q.get("page_size").map(|s| s.trim()) {
        None | Some("") => Ok(DEFAULT_PAGE_SIZE),
        Some(s) => match s.parse::<usize>() {
            Ok(0) => Ok(DEFAULT_PAGE_SIZE),
            Ok(n) if n <= MAX_PAGE_SIZE => Ok(n),
            _ => Err(bad_request(
                "page_size must be between 0 and 1000",
                resource,
            )),
        },
    }
}

fn encode_token(v: Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_token(
    q: &HashMap<String, String>,
    resource: &'static str,
) -> Result<Option<Value>, BadRequest> {
    match q
        .get("page_token")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => Ok(None),
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .map(Some)
            .ok_or_else(|| bad_request("page_token is invalid", resource)),
    }
}

/// What every list route reads from its query: page size, filter clauses, page token.
struct ListParams {
    size: usize,
    filter: Vec<(String, String, String)>,
    token: Option<Value>,
}

fn list_params(
    q: &HashMap<String, String>,
    resource: &'static str,
) -> Result<ListParams, BadRequest> {
    Ok(ListParams {
        size: page_size(q, resource)?,
        filter: parse_filter(q.get("filter"), resource)?,
        token: decode_token(q, resource)?,
    })
}

/// `key==value` clauses joined by `;` (also `>`, `<`, `>=`, `<=` where a key allows them).
fn parse_filter(
    raw: Option<&String>,
    resource: &'static str,
) -> Result<Vec<(String, String, String)>, BadRequest> {
    let Some(raw) = raw.map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    raw.split(';')
        .map(|clause| {
            for op in ["==", ">=", "<=", ">", "<"] {
                if let Some((k, v)) = clause.split_once(op) {
                    return Ok((k.trim().to_string(), op.to_string(), v.trim().to_string()));
                }
            }
            Err(bad_request(format!("Invalid filter: {clause}"), resource))
        })
        .collect()
}
