//! Time, injectable: the service reads the clock through this so tests can fix it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub enum Clock {
    System,
    Fixed(Arc<AtomicU64>),
}

impl Clock {
    /// A clock that stands at `ms` (epoch milliseconds) until moved.
    pub fn fixed(ms: u64) -> Self {
        Self::Fixed(Arc::new(AtomicU64::new(ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Self::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Self::Fixed(t) => t.load(Ordering::SeqCst) as i64,
        }
    }

    pub fn advance_ms(&self, ms: u64) {
        if let Self::Fixed(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// Epoch ms as RFC 3339, for people.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
