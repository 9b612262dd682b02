//! Hourly upkeep beside the workers: forgets webhook signature tokens too old to be replayed
//! (they would be refused as stale anyway).

use tokio::sync::watch;

use crate::state::AppState;

/// How long accepted signature tokens are remembered; signed timestamps older than this are
/// refused anyway (provider settings cannot allow more).
pub const TOKEN_MEMORY_MS: i64 = crate::providers::MAX_SIGNED_AGE_SECS as i64 * 1000;

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let horizon = state.clock.epoch_ms() - TOKEN_MEMORY_MS;
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
