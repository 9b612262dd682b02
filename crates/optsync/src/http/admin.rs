//! The admin listener (`OPTSYNC_ADMIN_LISTEN`, default `127.0.0.1:9090`): `/metrics` for
//! Prometheus and the operator's [`crate::console`]. Never served on the hook listener that
//! Keap and the providers reach.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::logfmt::one_line;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(super::health::healthz))
        .merge(crate::console::router())
        .with_state(state)
}

/// The Prometheus text exposition format (0.0.4).
async fn metrics(State(state): State<AppState>) -> Response {
    match crate::telemetry::render(&state).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %one_line(&e), "metrics: the store is unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}
