//! The public HTTP listener that Keap and the providers reach: the hook routes, `/healthz`
//! and `/readyz` (the operator's `/metrics` is on the [`admin`] listener, never here). One module per job: [`keap_post`] (Keap's action-set post),
//! [`provider_hooks`] (the sending providers' webhooks), [`health`]; the failed-auth gate
//! both hook routes pass is [`auth_gate`], and every refusal is an [`HttpError`].

pub mod admin;
pub mod auth_gate;
pub mod error;
pub mod health;
pub mod keap_post;
pub mod per_client;
pub mod provider_hooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath};
use axum::http::{Request, StatusCode, Uri};
use axum::routing::{get, post};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::HttpError;

use crate::acme::challenge::ACME_TLS_ALPN;
use crate::state::AppState;
use auth_gate::AuthFailures;

/// What the hook routes share: the application, and the failed-authentication gate's
/// counts, which live as long as the listener.
#[derive(Clone)]
pub struct HookState {
    pub app: AppState,
    pub auth_failures: Arc<AuthFailures>,
}

impl axum::extract::FromRef<HookState> for AppState {
    fn from_ref(s: &HookState) -> Self {
        s.app.clone()
    }
}

impl axum::extract::FromRef<HookState> for Arc<AuthFailures> {
    fn from_ref(s: &HookState) -> Self {
        s.auth_failures.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let state = HookState {
        auth_failures: Arc::new(AuthFailures::new(
            state.settings.failed_auth_per_minute,
            state.settings.legacy_failed_auth_per_hour,
        )),
        app: state,
    };
    Router::new()
        .route("/process_optout.php", post(keap_post::receive_post))
        .route("/hooks/keap/{app}", post(keap_post::receive_post))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            keap_post::body_within_timeout,
        ))
        .layer(DefaultBodyLimit::max(keap_post::MAX_BODY))
        .route(
            "/hooks/esp/{provider}/{app}",
            post(provider_hooks::receive)
                .head(provider_hooks::head)
                .layer(DefaultBodyLimit::max(provider_hooks::MAX_BODY)),
        )
        .route(
            "/hooks/esp/sparkpost/{app}/token",
            post(provider_hooks::sparkpost_token).layer(DefaultBodyLimit::max(8 * 1024)),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(axum::middleware::from_fn(count_request))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// Counts each answered request by route and status.
async fn count_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        // `/hooks/esp/:provider/:app`: the route, without the braces some parsers trip over.
        .map_or_else(
            || "(unmatched)".to_string(),
            |m| m.as_str().replace('{', ":").replace('}', ""),
        );
    let resp = next.run(req).await;
    metrics::counter!(
        crate::telemetry::HOOK_REQUESTS,
        "route" => route,
        "status" => resp.status().as_str().to_string()
    )
    .increment(1);
    resp
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

/// Serves the router on `listener` until `stop` resolves, within the settings' limits: a
/// header-read timeout on every connection (slow-loris clients are cut off, and idle
/// keep-alive connections closed), a timeout on every request, and a cap on open
/// connections (HTTP/1: one request at a time on each, so this caps requests too), in
/// total and per client ([`per_client`]). On stop, connections finish the request in hand.
///
/// With `tls`, every connection is TLS, its handshake bounded by the header-read timeout.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    tls: Option<crate::tls::Tls>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let s = state.settings.clone();
    serve_on(router(state), &s, listener, tls, stop).await
}

/// [`serve`] for any router, in plain HTTP: the admin listener's.
pub async fn serve_router(
    app: Router,
    s: &crate::config::Settings,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    serve_on(app, s, listener, None, stop).await
}

async fn serve_on(
    app: Router,
    s: &crate::config::Settings,
    listener: tokio::net::TcpListener,
    tls: Option<crate::tls::Tls>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = app.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        s.request_timeout,
    ));
    let slots = Arc::new(Semaphore::new(s.max_connections));
    let per_client = per_client::PerClient::default();
    let (closing, closed) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(own) =
            per_client.take(peer.ip(), s.max_connections_per_client, &s.trusted_proxies)
        else {
            tracing::warn!(%peer, max = s.max_connections_per_client, "connection refused: too many open from this client");
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = s.max_connections, "connection refused: too many open");
            continue;
        };
        let acceptor = tls.as_ref().map(crate::tls::Tls::acceptor);
        let (app, timeout, closed) = (app.clone(), s.header_timeout, closed.clone());
        let conn = async move {
            match acceptor {
                None => connection(app, stream, peer, timeout, closed).await,
                Some(a) => match tokio::time::timeout(timeout, a.accept(stream)).await {
                    // The CA's TLS-ALPN-01 validation: the handshake was all it wanted.
                    Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {
                        tracing::debug!(%peer, "ACME TLS-ALPN-01 validation handshake");
                    }
                    Ok(Ok(tls)) => connection(app, tls, peer, timeout, closed).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        };
        conns.spawn(async move {
            conn.await;
            drop((slot, own));
        });
        while conns.try_join_next().is_some() {}
    }
    let _ = closing.send(true);
    while conns.join_next().await.is_some() {}
}

/// One HTTP/1 connection, with the peer's address for the handlers.
async fn connection<S>(
    app: Router,
    stream: S,
    peer: SocketAddr,
    header_timeout: Duration,
    mut closed: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        tower_service::Service::call(&mut app.clone(), req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    let stopping = async move {
        let _ = closed.wait_for(|c| *c).await;
    };
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stopping => None,
    };
    let ended = match ended {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended");
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
