//! The console's routes as one table: each path with its methods and who may use it
//! ([`Access`]). The router is built from the table, each route behind the guard its access
//! names, and [`routes`] lists it, so a test can try every route and a new one cannot be
//! added without saying who may use it.

use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;

use super::{ConsoleState, accounts, authz, connect, invite, pages, post_url};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: signing in, and an invite's page (its link is its authority).
    Public,
    /// Any signed-in account; the handler shows only what the account may see.
    SignedIn,
    /// One app's pages and forms (`{app}` in the path): an account that may see the app.
    App,
    /// Operators only; anyone else gets 404.
    Operator,
}

/// A route as [`routes`] lists it.
#[derive(Debug, Clone)]
pub struct Route {
    pub path: &'static str,
    pub methods: Vec<Method>,
    pub access: Access,
}

struct Entry {
    route: Route,
    handlers: MethodRouter<ConsoleState>,
}

fn at(path: &'static str, access: Access) -> Entry {
    Entry {
        route: Route {
            path,
            methods: Vec::new(),
            access,
        },
        handlers: MethodRouter::new(),
    }
}

impl Entry {
    fn get<H: Handler<T, ConsoleState>, T: 'static>(mut self, h: H) -> Self {
        self.route.methods.push(Method::GET);
        self.handlers = self.handlers.get(h);
        self
    }

    fn post<H: Handler<T, ConsoleState>, T: 'static>(mut self, h: H) -> Self {
        self.route.methods.push(Method::POST);
        self.handlers = self.handlers.post(h);
        self
    }
}

fn table() -> Vec<Entry> {
    use Access::*;
    vec![
        at("/login", Public)
            .get(pages::login_form)
            .post(pages::login),
        at("/console.js", Public).get(super::script),
        at("/invite/{token}", Public)
            .get(invite::form)
            .post(invite::accept),
        at("/logout", SignedIn).post(pages::logout),
        at("/", SignedIn).get(pages::home),
        at("/address", SignedIn).get(pages::address),
        at("/address/live", SignedIn).post(pages::address_live),
        at("/report", SignedIn).get(pages::report),
        at("/report.csv", SignedIn).get(pages::report_csv),
        at("/tenants/{app}", App).get(pages::tenant),
        at("/tenants/{app}/post-url", App).post(pages::reveal_post_url),
        at("/tenants/{app}/post-url/rotate", App).post(post_url::rotate),
        at("/tenants/{app}/jobs/{job}/retry", App).post(pages::retry),
        at("/accounts", Operator).get(accounts::page_of_accounts),
        at("/accounts/invite", Operator).post(accounts::invite),
        // Keap's redirect back: its authority is the flow's state and cookie, bound to the
        // operator's session that started it (the session cookie does not come cross-site).
        at("/keap/callback", Public).get(connect::callback),
        at("/connect.js", Public).get(connect::script),
        at("/keap/connect", SignedIn).post(connect::start),
        at("/tenants/{app}/keap-post.json", App).get(connect::keap_post),
    ]
}

/// Every console route, its methods and its access.
pub fn routes() -> Vec<Route> {
    table().into_iter().map(|e| e.route).collect()
}

/// The console's router: each route behind the guard its access names.
pub fn router(state: ConsoleState) -> axum::Router<ConsoleState> {
    table().into_iter().fold(axum::Router::new(), |router, e| {
        let handlers = match e.route.access {
            Access::Public | Access::SignedIn => e.handlers,
            Access::App => e
                .handlers
                .route_layer(from_fn_with_state(state.clone(), authz::app_guard)),
            Access::Operator => e
                .handlers
                .route_layer(from_fn_with_state(state.clone(), authz::operator_guard)),
        };
        router.route(e.route.path, handlers)
    })
}
