//! The admin listener (`OPTSYNC_ADMIN_LISTEN`, default `127.0.0.1:9090`): `/metrics` for
//! Prometheus and the operator's [`crate::console`]. Never served on the hook listener that
//! Keap and the providers reach.
//!
//! A page the operator visits elsewhere can still reach this listener through the browser.
//! So it answers only to its own host names (`OPTSYNC_ADMIN_HOSTS`; anything else is 421,
//! which stops DNS rebinding from reading `/metrics` or the console), and refuses (403) a
//! `POST` that a browser says came from another site (`Origin` not the console's own, or
//! `Sec-Fetch-Site: cross-site`): a cross-site form cannot post failed sign-ins to lock an
//! account out.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::edge::host_name;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(super::health::healthz))
        .with_state(state.clone())
        .merge(crate::console::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state,
            own_host_and_origin,
        ))
}

/// Why a request is not for this listener, if it is not.
fn refusal(
    settings: &crate::config::Settings,
    method: &Method,
    h: &HeaderMap,
) -> Option<StatusCode> {
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(host_name);
    if !host.is_some_and(|host| settings.admin_hosts.contains(&host)) {
        return Some(StatusCode::MISDIRECTED_REQUEST);
    }
    if method != Method::POST {
        return None;
    }
    let site = h
        .get("sec-fetch-site")
        .map(|v| v.as_bytes().to_ascii_lowercase());
    if site
        .as_deref()
        .is_some_and(|s| s == b"cross-site" || s == b"same-site")
    {
        return Some(StatusCode::FORBIDDEN);
    }
    // The console's pages send no referrer, so a browser posts their forms with
    // `Origin: null`; `Sec-Fetch-Site: same-origin` vouches for those.
    let same_origin = site.as_deref() == Some(b"same-origin");
    let foreign_origin = h.get(header::ORIGIN).is_some_and(|o| {
        let o = o.to_str().unwrap_or_default().trim_end_matches('/');
        if o == "null" {
            return !same_origin;
        }
        let own = |u: &str| u.trim_end_matches('/').eq_ignore_ascii_case(o);
        let by_host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|host| own(&format!("http://{host}")) || own(&format!("https://{host}")));
        !(by_host || settings.admin_public_url.as_deref().is_some_and(own))
    });
    foreign_origin.then_some(StatusCode::FORBIDDEN)
}

async fn own_host_and_origin(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match refusal(&state.settings, req.method(), req.headers()) {
        None => next.run(req).await,
        Some(StatusCode::MISDIRECTED_REQUEST) => {
            tracing::warn!(host = ?req.headers().get(header::HOST), "admin request refused: not one of OPTSYNC_ADMIN_HOSTS");
            (
                StatusCode::MISDIRECTED_REQUEST,
                "unknown host name; see OPTSYNC_ADMIN_HOSTS\n",
            )
                .into_response()
        }
        Some(status) => {
            tracing::warn!(origin = ?req.headers().get(header::ORIGIN), "admin POST refused: sent from another site");
            (status, "refused: this form was sent from another site\n").into_response()
        }
    }
}

/// The Prometheus text exposition format (0.0.4); 200 even while the store is down
/// (`optsync_store_up 0`), when it matters most.
async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::telemetry::render(&state.store, &state.clients).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn only_own_hosts_and_own_origins() {
        let mut s = crate::config::Settings::for_dir(std::path::Path::new("/tmp/x"), None);
        s.admin_hosts = crate::config::edge::parse_hosts(
            "127.0.0.1, localhost, [::1], Console.Example.com:443",
        );
        s.admin_public_url = Some("https://console.example.com".into());
        let get = |pairs: &[(&'static str, &str)]| refusal(&s, &Method::GET, &h(pairs));
        let post = |pairs: &[(&'static str, &str)]| refusal(&s, &Method::POST, &h(pairs));
        assert_eq!(get(&[("host", "127.0.0.1:9090")]), None);
        assert_eq!(get(&[("host", "[::1]:9090")]), None);
        assert_eq!(get(&[("host", "LOCALHOST")]), None);
        assert_eq!(
            get(&[("host", "evil.example")]),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        assert_eq!(get(&[]), Some(StatusCode::MISDIRECTED_REQUEST));
        let local = ("host", "127.0.0.1:9090");
        assert_eq!(
            post(&[local]),
            None,
            "no Origin: not a browser's cross-site form"
        );
        assert_eq!(post(&[local, ("origin", "http://127.0.0.1:9090")]), None);
        assert_eq!(
            post(&[
                ("host", "console.example.com"),
                ("origin", "https://console.example.com")
            ]),
            None
        );
        assert_eq!(
            post(&[local, ("origin", "http://evil.example")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            post(&[local, ("origin", "null")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            post(&[local, ("sec-fetch-site", "cross-site")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(post(&[local, ("sec-fetch-site", "same-origin")]), None);
        assert_eq!(
            post(&[local, ("origin", "null"), ("sec-fetch-site", "same-origin")]),
            None,
            "the console's own forms (no referrer)"
        );
        assert_eq!(
            post(&[
                local,
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "same-origin")
            ]),
            Some(StatusCode::FORBIDDEN)
        );
    }
}
