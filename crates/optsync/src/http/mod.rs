//! The public HTTP listener that Keap and the providers reach: the hook routes, `/healthz`
//! and `/readyz`. One module per job: [`keap_post`] (Keap's action-set post),
//! [`provider_hooks`] (the sending providers' webhooks), [`health`]; the failed-auth gate
//! both hook routes pass is [`auth_gate`], and every refusal is an [`HttpError`].

pub mod auth_gate;
pub mod error;
pub mod health;
pub mod keap_post;
pub mod provider_hooks;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{Request, Uri};
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

pub use error::HttpError;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/process_optout.php", post(keap_post::process_optout_php))
        .route("/hooks/keap/{app}", post(keap_post::hooks_keap))
        .layer(DefaultBodyLimit::max(keap_post::MAX_BODY))
        .route(
            "/hooks/esp/{provider}/{app}",
            post(provider_hooks::receive)
                .head(provider_hooks::head)
                .layer(DefaultBodyLimit::max(provider_hooks::MAX_BODY)),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// A span per request: method, route and the URI with the `auth` token redacted; the
/// handler records the tenant once it knows it.
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        uri = %redacted(req.uri()),
        tenant = tracing::field::Empty,
    )
}

/// The URI with the value of any `auth` query parameter replaced.
pub fn redacted(uri: &Uri) -> String {
    let Some(q) = uri.query() else {
        return uri.path().to_string();
    };
    let q: Vec<String> = q
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("auth", _)) => "auth=***".to_string(),
            _ => pair.to_string(),
        })
        .collect();
    format!("{}?{}", uri.path(), q.join("&"))
}

/// Serves the router on `listener` until `stop` resolves.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_reaches_a_log_line() {
        let uri: Uri = "/process_optout.php?app=rc135&auth=s3cret-token&x=1"
            .parse()
            .unwrap();
        let r = redacted(&uri);
        assert_eq!(r, "/process_optout.php?app=rc135&auth=***&x=1");
        assert!(!r.contains("s3cret"));
        assert_eq!(redacted(&"/healthz".parse().unwrap()), "/healthz");
    }
}
