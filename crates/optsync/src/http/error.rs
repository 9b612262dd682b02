//! The one error type of the HTTP layer: a status and a message, answered as
//! `{"error": "…"}`. Handlers return it; nothing builds refusals by hand.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Unknown app or wrong token: the same answer for both, so which apps exist does not leak.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unknown app or wrong token")
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Too many failed authentications from this address.
    pub fn too_many_failures() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; try later",
        )
    }

    /// Nothing was stored: the sender should try again (with the status that makes it).
    pub fn retry(status: StatusCode) -> Self {
        Self::new(status, "storage unavailable; retry")
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}
