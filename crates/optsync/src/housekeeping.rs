//! Hourly upkeep beside the workers: forgets webhook signature tokens too old to be replayed
//! (they would be refused as stale anyway) and console sessions that have expired.

use crate::clock::Now as _;
use tokio::sync::watch;

use crate::logfmt::one_line;
use crate::state::AppState;

/// How long accepted signature tokens are remembered; signed timestamps older than this are
/// refused anyway (provider settings cannot allow more).
pub const TOKEN_MEMORY_MS: i64 = crate::providers::MAX_SIGNED_AGE_SECS as i64 * 1000;

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        prune(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One round of upkeep; a failure is logged and tried again next round.
pub async fn prune(state: &AppState) {
    let now = state.clock.now();
    match state.store.prune_seen_tokens(now - TOKEN_MEMORY_MS).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "forgot old webhook signature tokens"),
        Err(e) => {
            tracing::warn!(error = %one_line(&e), "could not prune webhook signature tokens")
        }
    }
    match state.store.prune_sessions(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "forgot expired console sessions"),
        Err(e) => tracing::warn!(error = %one_line(&e), "could not prune console sessions"),
    }
    match state.store.prune_invites(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "forgot expired console invites"),
        Err(e) => tracing::warn!(error = %one_line(&e), "could not prune console invites"),
    }
}
