//! The HTTP side: hook routes, health, and serving them with the workers in one process.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::intake;
use crate::state::AppState;
use crate::worker::Worker;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/process_optout.php", post(intake::process_optout_php))
        .route("/hooks/keap/{app}", post(intake::hooks_keap))
        .layer(DefaultBodyLimit::max(intake::MAX_BODY))
        .route(
            "/hooks/esp/{provider}/{app}",
            post(crate::esp::receive)
                .head(crate::esp::head)
                .layer(DefaultBodyLimit::max(crate::esp::MAX_BODY)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// Ready when the database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable\n".to_string(),
            )
        }
    }
}

/// The HTTP server and the workers, running.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets the workers finish the job in hand, and waits for both.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.http.await;
        for w in self.workers {
            let _ = w.await;
        }
    }

    /// A receiver that turns true when the server stops (for tasks that live beside it).
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// Binds `listen` and starts the server with `workers` worker tasks (0: the caller drives
/// the queue itself, as tests do).
pub async fn start(state: AppState, listen: SocketAddr, workers: usize) -> Result<Running> {
    start_on(state, bind(listen).await?, workers).await
}

pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))
}

/// Like [`start`], on a listener bound beforehand (so its address can go into the state).
pub async fn start_on(
    state: AppState,
    listener: tokio::net::TcpListener,
    workers: usize,
) -> Result<Running> {
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let mut http_rx = rx.clone();
    let http = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = http_rx.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    let mut workers: Vec<JoinHandle<()>> = (0..workers)
        .map(|_| tokio::spawn(Worker::new(state.clone()).run(rx.clone())))
        .collect();
    workers.push(tokio::spawn(housekeeping(state.clone(), rx.clone())));
    Ok(Running {
        addr,
        shutdown: tx,
        http,
        workers,
    })
}

/// How long accepted signature tokens are remembered; signed timestamps older than this are
/// refused anyway (provider settings cannot allow more).
pub const TOKEN_MEMORY_MS: i64 = crate::providers::MAX_SIGNED_AGE_SECS as i64 * 1000;

/// Hourly upkeep: forgets signature tokens too old to be replayed (they would be refused as
/// stale).
async fn housekeeping(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let horizon = state.clock.now_ms() - TOKEN_MEMORY_MS;
        match state.store.prune_seen_tokens(horizon).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "forgot old webhook signature tokens"),
            Err(e) => tracing::warn!(error = %e, "could not prune webhook signature tokens"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
