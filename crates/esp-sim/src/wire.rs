//! Small pieces every provider's handlers share: JSON answers, header and Basic-auth reading,
//! and the time formats the providers print.

use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

pub fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Authorization: Basic base64(user:password)` → (user, password).
pub fn basic_auth(parts: &Parts) -> Option<(String, String)> {
    let value = header(parts, header::AUTHORIZATION.as_str())?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn at(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-30T12:00:00Z`.
pub fn rfc3339(ms: u64) -> String {
    at(ms).format(&Rfc3339).unwrap_or_default()
}

/// `Mon, 30 Nov 2026 12:00:00 +0000` (Mailgun's `created_at`).
pub fn rfc2822(ms: u64) -> String {
    at(ms).format(&Rfc2822).unwrap_or_default()
}

/// Epoch seconds with a fraction, as AWS's JSON protocols send timestamps.
pub fn epoch_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
