//! The emulator's clock: the system clock, or a manual one that tests move forward so that a
//! minute's throttle window passes without waiting a minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct SimClock(Arc<Inner>);

#[derive(Debug)]
enum Inner {
    System,
    Manual(AtomicU64),
}

impl SimClock {
    pub fn system() -> Self {
        Self(Arc::new(Inner::System))
    }

    /// A clock standing still at `start_ms` (epoch ms) until [`Self::advance`] moves it.
    pub fn manual(start_ms: u64) -> Self {
        Self(Arc::new(Inner::Manual(AtomicU64::new(start_ms))))
    }

    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            Inner::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            Inner::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; returns false for the system clock.
    pub fn advance(&self, by: Duration) -> bool {
        match &*self.0 {
            Inner::System => false,
            Inner::Manual(t) => {
                t.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
                true
            }
        }
    }
}
