//! Who may see what, decided in one place. [`Viewer`] is the signed-in account with its
//! role and, for a customer, the apps granted to it; the router puts every page of one app
//! behind [`app_guard`] and every operator page behind [`operator_guard`] (see
//! [`super::routes`]), so a handler never checks by hand. What a customer may not see
//! answers 404, exactly as an app that does not exist: nothing tells them it is there.

use std::collections::HashMap;

use axum::extract::{FromRef, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Session;
use super::respond::ConsoleError;
use crate::state::AppState;
use crate::store::Role;

/// What a customer is told of an app that is not theirs: what an unknown app answers.
pub const NO_SUCH_APP: &str = "no such app";
/// What a customer is told of an operator's page.
const NO_SUCH_PAGE: &str = "no such page";

/// The signed-in account, its role and what it may see.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session: Session,
    pub role: Role,
    /// The apps granted to a customer, by name, in order (unused for an operator).
    apps: Vec<String>,
}

impl Viewer {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Whether this account may see the app's pages, events and reports.
    pub fn can_see(&self, app: &str) -> bool {
        self.is_operator() || self.apps.iter().any(|a| a == app)
    }

    /// A customer's apps.
    pub fn apps(&self) -> &[String] {
        &self.apps
    }

    /// The app a report covers: an operator's choice (none: every app); for a customer, one
    /// of their apps (by default the first), never "every app".
    pub fn report_app(&self, asked: Option<String>) -> Result<Option<String>, ConsoleError> {
        match asked {
            Some(app) if self.can_see(&app) => Ok(Some(app)),
            Some(_) => Err(ConsoleError::NotFound(NO_SUCH_APP)),
            None if self.is_operator() => Ok(None),
            None => self
                .apps
                .first()
                .cloned()
                .map(Some)
                .ok_or(ConsoleError::NotFound(
                    "no app yet: connect a Keap app first",
                )),
        }
    }

    async fn load(state: &AppState, session: Session) -> Result<Option<Self>, ConsoleError> {
        let Some(role) = state.store.account_role(&session.user).await? else {
            return Ok(None);
        };
        let apps = match role {
            Role::Operator => Vec::new(),
            Role::Customer => state.store.granted_apps(&session.user).await?,
        };
        Ok(Some(Self {
            session,
            role,
            apps,
        }))
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let session = Session::from_request_parts(parts, state).await?;
        let state = AppState::from_ref(state);
        match Viewer::load(&state, session).await {
            Ok(Some(v)) => {
                parts.extensions.insert(v.clone());
                Ok(v)
            }
            // The account is gone: its session is worth nothing.
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// In front of every route with an `{app}` in its path: the app must be one the viewer
/// may see, or the answer is 404 before the handler (or its CSRF check) runs.
pub async fn app_guard(
    viewer: Viewer,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    match params.get("app") {
        Some(app) if viewer.can_see(app) => next.run(req).await,
        _ => ConsoleError::NotFound(NO_SUCH_APP).into_response(),
    }
}

/// In front of every operator page: a customer gets 404, as for a page that is not there.
pub async fn operator_guard(viewer: Viewer, req: Request, next: Next) -> Response {
    if viewer.is_operator() {
        next.run(req).await
    } else {
        ConsoleError::NotFound(NO_SUCH_PAGE).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(role: Role, apps: &[&str]) -> Viewer {
        Viewer {
            session: Session {
                user: "u".into(),
                csrf: "c".into(),
                token_hash: "h".into(),
            },
            role,
            apps: apps.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn a_customer_sees_only_their_apps_and_never_every_app() {
        let c = viewer(Role::Customer, &["alpha", "gamma"]);
        assert!(c.can_see("alpha") && c.can_see("gamma") && !c.can_see("beta"));
        assert_eq!(c.report_app(None).unwrap().as_deref(), Some("alpha"));
        assert!(c.report_app(Some("beta".into())).is_err());
        let none = viewer(Role::Customer, &[]);
        assert!(
            none.report_app(None).is_err(),
            "never the report of every app"
        );
        let op = viewer(Role::Operator, &[]);
        assert!(op.can_see("beta"));
        assert_eq!(op.report_app(None).unwrap(), None);
    }
}
