//! Time, injectable: the service reads the workspace's one clock ([`keap::Clock`]) so that
//! tests can fix it, as a [`Millis`] ([`Now::now`]), the one type a moment has in the store's
//! signatures; people see it as RFC 3339.

use std::fmt;
use std::ops::{Add, Sub};

pub use keap::Clock;

/// A moment as epoch milliseconds, stored as it is (an integer column). Spans of time stay
/// plain milliseconds: a moment plus or minus an `i64` is a moment, the difference of two
/// moments an `i64`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub fn as_i64(self) -> i64 {
        self.0
    }
}

impl From<i64> for Millis {
    fn from(ms: i64) -> Self {
        Self(ms)
    }
}

impl From<Millis> for i64 {
    fn from(m: Millis) -> Self {
        m.0
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Add<i64> for Millis {
    type Output = Millis;
    fn add(self, ms: i64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl Sub<i64> for Millis {
    type Output = Millis;
    fn sub(self, ms: i64) -> Millis {
        Millis(self.0.saturating_sub(ms))
    }
}

impl Sub for Millis {
    type Output = i64;
    fn sub(self, earlier: Millis) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The clock's reading as a [`Millis`].
pub trait Now {
    fn now(&self) -> Millis;
}

impl Now for Clock {
    fn now(&self) -> Millis {
        Millis(self.epoch_ms())
    }
}

/// A moment as RFC 3339, for people.
pub fn rfc3339(at: impl Into<Millis>) -> String {
    let ms = at.into().0;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
