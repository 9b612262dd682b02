//! Where an app's OAuth pair lives between calls, shared by every process that serves the app.
//!
//! Keap's refresh tokens work once: two processes that each refresh with the pair they hold
//! leave one of them with a dead token (`reference/keap-api.md` §16.2). So the store is the
//! one truth: a refresh happens only under the store's lease (one refresher per app at a
//! time), the new pair is stored before it is used, and a process whose pair is older than the
//! stored one takes the stored pair instead of spending its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::oauth::OAuthTokens;

/// What a store call returns; `Err` is the store's own failure (the database is down).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// The pair as stored, with its generation: bumped each time a new pair is stored, so that a
/// process can tell its pair is older than the stored one.
#[derive(Debug, Clone)]
pub struct StoredPair {
    pub tokens: OAuthTokens,
    pub generation: u64,
    /// Set when Keap refused this pair for good (`invalid_grant`); a newly stored pair (a
    /// person authorised the app again) clears it.
    pub reconnect_needed: Option<String>,
}

/// One app's stored pair and its refresh lease.
pub trait TokenStore: Send + Sync {
    /// The stored pair; `None` when the app was never connected.
    fn load(&self) -> StoreFuture<'_, Option<StoredPair>>;

    /// Takes the refresh lease for `holder` until `until_ms`, unless another holder's lease
    /// runs past `now_ms`. Whether `holder` has it.
    fn lease(&self, holder: &str, now_ms: u64, until_ms: u64) -> StoreFuture<'_, bool>;

    /// Stores `tokens` in place of generation `replaces` and lets the lease go. The new
    /// generation, or `None` when the stored pair is no longer `replaces` (another pair was
    /// stored meanwhile: the app was connected again).
    fn save(
        &self,
        holder: &str,
        replaces: u64,
        tokens: OAuthTokens,
    ) -> StoreFuture<'_, Option<u64>>;

    /// Lets `holder`'s lease go without storing anything.
    fn release(&self, holder: &str) -> StoreFuture<'_, ()>;

    /// Keap refused generation `generation` for good; a person must authorise the app again.
    /// Lets `holder`'s lease go.
    fn mark_reconnect_needed(
        &self,
        holder: &str,
        generation: u64,
        reason: &str,
    ) -> StoreFuture<'_, ()>;
}

/// A store in memory: for one process that keeps nothing across restarts, and for tests.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    pair: Option<StoredPair>,
    lease: Option<(String, u64)>,
}

impl MemoryTokenStore {
    /// A store holding `tokens` as generation 1.
    pub fn new(tokens: OAuthTokens) -> Self {
        let store = Self::default();
        store.connect(tokens);
        store
    }

    /// Stores a pair from a new authorization (a newer generation; clears "reconnect needed").
    pub fn connect(&self, tokens: OAuthTokens) {
        let mut i = self.lock();
        let generation = i.pair.as_ref().map_or(1, |p| p.generation + 1);
        i.pair = Some(StoredPair {
            tokens,
            generation,
            reconnect_needed: None,
        });
    }

    pub fn stored(&self) -> Option<StoredPair> {
        self.lock().pair.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn let_go(i: &mut MemoryInner, holder: &str) {
        if i.lease.as_ref().is_some_and(|(h, _)| h == holder) {
            i.lease = None;
        }
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> StoreFuture<'_, Option<StoredPair>> {
        let pair = self.lock().pair.clone();
        Box::pin(async move { Ok(pair) })
    }

    fn lease(&self, holder: &str, now_ms: u64, until_ms: u64) -> StoreFuture<'_, bool> {
        let mut i = self.lock();
        let free = match &i.lease {
            Some((h, until)) => h == holder || *until <= now_ms,
            None => true,
        };
        if free {
            i.lease = Some((holder.to_string(), until_ms));
        }
        Box::pin(async move { Ok(free) })
    }

    fn save(
        &self,
        holder: &str,
        replaces: u64,
        tokens: OAuthTokens,
    ) -> StoreFuture<'_, Option<u64>> {
        let mut i = self.lock();
        let current = i.pair.as_ref().map(|p| p.generation);
        let saved = (current == Some(replaces)).then(|| {
            i.pair = Some(StoredPair {
                tokens,
                generation: replaces + 1,
                reconnect_needed: None,
            });
            replaces + 1
        });
        Self::let_go(&mut i, holder);
        Box::pin(async move { Ok(saved) })
    }

    fn release(&self, holder: &str) -> StoreFuture<'_, ()> {
        Self::let_go(&mut self.lock(), holder);
        Box::pin(async { Ok(()) })
    }

    fn mark_reconnect_needed(
        &self,
        holder: &str,
        generation: u64,
        reason: &str,
    ) -> StoreFuture<'_, ()> {
        let mut i = self.lock();
        if let Some(p) = i.pair.as_mut().filter(|p| p.generation == generation) {
            p.reconnect_needed = Some(reason.to_string());
        }
        Self::let_go(&mut i, holder);
        Box::pin(async { Ok(()) })
    }
}
