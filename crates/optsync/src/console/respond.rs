//! The console's one error type: every handler returns `Result<Response, ConsoleError>`,
//! and each kind of failure is answered (and logged) in one place.

use crate::clock::Now as _;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::logfmt::one_line;
use crate::state::AppState;

#[derive(Debug)]
pub enum ConsoleError {
    /// The app, job or page asked for does not exist.
    NotFound(&'static str),
    /// The action does not apply to the thing in its present state.
    Conflict(&'static str),
    /// The request's fields are not valid; the message says why.
    BadRequest(String),
    /// The form's CSRF token is missing or not the session's.
    StaleForm,
    /// The store could not be read or written.
    Unavailable(crate::Error),
    /// A template failed to render.
    Render(askama::Error),
}

impl From<crate::Error> for ConsoleError {
    fn from(e: crate::Error) -> Self {
        Self::Unavailable(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound(what) => (StatusCode::NOT_FOUND, what).into_response(),
            Self::Conflict(why) => (StatusCode::CONFLICT, why).into_response(),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            Self::StaleForm => (
                StatusCode::FORBIDDEN,
                "this form is stale or was not sent by the console: reload the page and try again",
            )
                .into_response(),
            Self::Unavailable(e) => {
                tracing::error!(error = %one_line(&e), "console: the store is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is unavailable; try again",
                )
                    .into_response()
            }
            Self::Render(e) => {
                tracing::error!(error = %e, "console: a page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page failed to render",
                )
                    .into_response()
            }
        }
    }
}

/// What a console handler answers.
pub type Answer = std::result::Result<Response, ConsoleError>;

/// A template, rendered.
pub fn page(t: impl Template) -> Answer {
    t.render()
        .map(|body| Html(body).into_response())
        .map_err(ConsoleError::Render)
}

/// Records a console action with who and when; a failure to record is logged, not hidden.
pub async fn record(
    state: &AppState,
    user: &str,
    action: &str,
    target: &str,
    detail: Option<&str>,
) {
    let now = state.clock.now();
    if let Err(e) = state
        .store
        .record_admin_action(now, user, action, target, detail)
        .await
    {
        tracing::error!(error = %one_line(&e), action, "console action NOT recorded");
    }
}
