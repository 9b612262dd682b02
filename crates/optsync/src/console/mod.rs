//! The operator's console, on the admin listener beside `/metrics`: server-rendered pages
//! (templates checked at compile time; one small static script, `/console.js`, only puts
//! times in the viewer's time zone and age), signed in with a password set by
//! `optsync admin set-password` (an operator) or through an invite ([`invite`]: a
//! customer). [`auth`] signs in and out; [`authz`] decides what each account may see, and
//! [`routes`] is the table of routes with who may use each; [`pages`] are the handlers,
//! which take [`forms`] (the CSRF check is an extractor) and answer through [`respond`];
//! [`overview`], [`tenant`], [`address`] and [`report_page`] gather what each page shows,
//! worded by [`format`] (times as [`moment`]s); [`chart`] draws the time-to-honour chart;
//! [`views`] are the templates' structs; [`accounts`] is the operator's list of accounts and
//! invite form, [`apps`] a customer's home page, [`post_url`] rotates an app's Post URL;
//! [`connect`] and [`connect_page`] connect Keap apps through Keap's OAuth consent (the page
//! after it has a script of its own, `/connect.js`).

pub mod accounts;
pub mod address;
pub mod apps;
pub mod auth;
pub mod authz;
pub mod chart;
pub mod connect;
pub mod connect_page;
pub mod format;
pub mod forms;
pub mod invite;
pub mod moment;
pub mod overview;
pub mod pages;
pub mod post_url;
pub mod report_page;
pub mod respond;
pub mod routes;
pub mod sign_in;
pub mod tenant;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;

use crate::state::AppState;
use auth::SignInLimiter;

/// What the console's handlers share: the application, and the failed sign-ins, which live
/// as long as the console's router.
#[derive(Clone)]
pub struct ConsoleState {
    pub app: AppState,
    pub sign_in: Arc<SignInLimiter>,
}

impl FromRef<ConsoleState> for AppState {
    fn from_ref(s: &ConsoleState) -> Self {
        s.app.clone()
    }
}

impl FromRef<ConsoleState> for Arc<SignInLimiter> {
    fn from_ref(s: &ConsoleState) -> Self {
        s.sign_in.clone()
    }
}

/// The console's routes ([`routes`]); every page but signing in and an invite's page needs
/// a session, and what each account may see is decided by [`authz`].
pub fn router(state: AppState) -> Router {
    let state = ConsoleState {
        app: state,
        sign_in: Arc::default(),
    };
    let csp = connect::content_security_policy(&state.app.settings, false);
    routes::router(state.clone())
        .layer(axum::middleware::from_fn_with_state(csp, security_headers))
        .with_state(state)
}

/// The console's script on every page: it rewrites each `<time>` to the viewer's time zone and its
/// age. A file of the console's own, because the CSP allows no inline script.
async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/console.js"),
    )
}

/// No framing, no script but the console's own file, nothing cached, no referrer leaving the console.
async fn security_headers(
    axum::extract::State(csp): axum::extract::State<HeaderValue>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}
