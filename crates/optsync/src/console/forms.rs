//! What the console's forms post, typed, and [`CsrfForm`]: the extractor that every form of
//! a signed-in page goes through, so no handler checks the CSRF token by hand.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::auth::Session;
use super::respond::ConsoleError;
use crate::state::AppState;

/// The sign-in form (posted without a session, so without a CSRF token).
#[derive(Debug, Deserialize)]
pub struct SignIn {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
}

/// A form with nothing but its CSRF token (sign out, reveal, retry).
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// The address to read live in Keap.
#[derive(Debug, Deserialize)]
pub struct AddressForm {
    #[serde(default)]
    pub email: String,
}

/// The address page's query.
#[derive(Debug, Deserialize)]
pub struct AddressQuery {
    #[serde(default)]
    pub email: String,
}

/// The report's period and app, as the report form sends them (empty: the default).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ReportQuery {
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub app: String,
}

#[derive(Deserialize)]
struct Token {
    #[serde(default)]
    csrf: String,
}

/// A signed-in user's form, its CSRF token checked (constant time) against the session's.
pub struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
}

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let urlencoded = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !urlencoded {
            return Err(ConsoleError::StaleForm.into_response());
        }
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token: Token = serde_urlencoded::from_bytes(&body)
            .map_err(|_| ConsoleError::StaleForm.into_response())?;
        if !session.csrf_ok(Some(&token.csrf)) {
            return Err(ConsoleError::StaleForm.into_response());
        }
        let form = serde_urlencoded::from_bytes(&body).map_err(|e| {
            ConsoleError::BadRequest(format!("the form is not valid: {e}")).into_response()
        })?;
        Ok(Self { session, form })
    }
}
