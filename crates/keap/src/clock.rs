//! Time, injectable: the one clock the client's pacer, the emulator and the service all read,
//! so that a test can stand time still or move it forward (a minute's throttle window passes
//! without waiting a minute).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
enum Inner {
    System,
    Manual(AtomicU64),
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Inner::System))
    }

    /// A clock standing still at `start_ms` (epoch ms) until [`Self::advance`] moves it.
    pub fn manual(start_ms: u64) -> Self {
        Self(Arc::new(Inner::Manual(AtomicU64::new(start_ms))))
    }

    /// Epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            Inner::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            Inner::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Epoch milliseconds as a signed integer, the way SQL stores them.
    pub fn epoch_ms(&self) -> i64 {
        i64::try_from(self.now_ms()).unwrap_or(i64::MAX)
    }

    pub fn is_manual(&self) -> bool {
        matches!(&*self.0, Inner::Manual(_))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert!(c.advance(Duration::from_millis(500)));
        assert_eq!(c.epoch_ms(), 1_500);
        let s = Clock::system();
        assert!(!s.advance(Duration::from_secs(1)));
        assert!(s.now_ms() > 1_700_000_000_000);
    }
}
