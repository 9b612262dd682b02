//! Keap's published rate limits and the rolling-window arithmetic both sides of the wire need.
//!
//! Keap's gateway (Apigee) counts calls in *rolling* windows (10/s and 240/min per service
//! account key; 1,500/min per OAuth client; 10,000/min per app) plus a daily quota that
//! resets at 00:00 UTC. A token bucket (GCRA) is not the same thing: after a burst of 240 it
//! would let a call through 250 ms later, while the rolling minute still holds 240 calls and
//! the gateway answers 429. So pacing keeps the exact timestamps of recent calls, which is
//! cheap at these sizes (at most a few thousand entries), and the emulator uses the very same
//! arithmetic to decide when to refuse.

use std::collections::VecDeque;
use std::time::Duration;

const DAY_MS: u64 = 86_400_000;

/// At most `limit` calls in any window of `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    pub limit: u32,
    pub length: Duration,
}

impl WindowLimit {
    pub const fn per_second(limit: u32) -> Self {
        Self {
            limit,
            length: Duration::from_secs(1),
        }
    }
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            length: Duration::from_secs(60),
        }
    }
}

/// The limits that apply to one credential (or to one app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Rolling windows, shortest first.
    pub windows: Vec<WindowLimit>,
    /// Calls per UTC day, if the credential has a daily quota.
    pub daily: Option<u32>,
}

impl Limits {
    /// Service account keys and personal access tokens (`X-Keap-API-Key`): 10/s, 240/min,
    /// 30,000/day, per key.
    pub fn service_account() -> Self {
        Self {
            windows: vec![WindowLimit::per_second(10), WindowLimit::per_minute(240)],
            daily: Some(30_000),
        }
    }

    /// An OAuth client (key/secret pair), shared by every app that client serves: 1,500/min,
    /// 150,000/day.
    pub fn oauth_client() -> Self {
        Self {
            windows: vec![WindowLimit::per_minute(1_500)],
            daily: Some(150_000),
        }
    }

    /// One Keap app, across all its credentials (effective 2026-06-08): 10,000/min,
    /// 250,000/day.
    pub fn tenant() -> Self {
        Self {
            windows: vec![WindowLimit::per_minute(10_000)],
            daily: Some(250_000),
        }
    }

    /// The per-minute window Keap reports in `x-keap-*-throttle-*` headers (the longest window
    /// shorter than a day).
    pub fn throttle_window(&self) -> Option<WindowLimit> {
        self.windows.iter().copied().max_by_key(|w| w.length)
    }

    /// The spike window reported as `x-keap-product-spike-limit` (`10ps`), when the longest
    /// window is not the only one.
    pub fn spike_window(&self) -> Option<WindowLimit> {
        (self.windows.len() > 1)
            .then(|| self.windows.iter().copied().min_by_key(|w| w.length))
            .flatten()
    }
}

/// Timestamps (ms) of the calls inside one rolling window.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    limit: WindowLimit,
    hits: VecDeque<u64>,
}

impl RollingWindow {
    pub fn new(limit: WindowLimit) -> Self {
        Self {
            limit,
            hits: VecDeque::with_capacity(limit.limit.min(4096) as usize),
        }
    }

    pub fn limit(&self) -> WindowLimit {
        self.limit
    }

    fn length_ms(&self) -> u64 {
        self.limit.length.as_millis() as u64
    }

    fn prune(&mut self, now_ms: u64) {
        let len = self.length_ms();
        while let Some(&t) = self.hits.front() {
            if t + len <= now_ms {
                self.hits.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn used(&mut self, now_ms: u64) -> u32 {
        self.prune(now_ms);
        self.hits.len() as u32
    }

    pub fn available(&mut self, now_ms: u64) -> u32 {
        self.limit.limit.saturating_sub(self.used(now_ms))
    }

    /// How long until one more call fits (0 when it fits now).
    pub fn wait_ms(&mut self, now_ms: u64) -> u64 {
        self.wait_ms_within(now_ms, self.limit.limit)
    }

    /// How long until one more call fits under `limit` (at most the window's own limit):
    /// what a caller held to a share of the window waits.
    pub fn wait_ms_within(&mut self, now_ms: u64, limit: u32) -> u64 {
        self.prune(now_ms);
        let limit = limit.min(self.limit.limit).max(1);
        if (self.hits.len() as u32) < limit {
            return 0;
        }
        // The call that frees a slot is the one `len - limit + 1` from the front.
        let excess = self.hits.len() + 1 - limit as usize;
        let t = self.hits[excess - 1];
        (t + self.length_ms()).saturating_sub(now_ms)
    }

    pub fn record(&mut self, now_ms: u64) {
        self.hits.push_back(now_ms);
    }

    /// Treat the window as full from now on: what a client does when the server says 429
    /// although its own count disagrees (another process shares the credential).
    pub fn fill(&mut self, now_ms: u64) {
        while (self.hits.len() as u32) < self.limit.limit {
            self.hits.push_back(now_ms);
        }
    }
}

/// A daily quota that resets at 00:00 UTC.
#[derive(Debug, Clone)]
pub struct DailyQuota {
    limit: u32,
    day: u64,
    used: u32,
}

impl DailyQuota {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            day: 0,
            used: 0,
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    fn roll(&mut self, now_ms: u64) {
        let day = now_ms / DAY_MS;
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
    }

    pub fn used(&mut self, now_ms: u64) -> u32 {
        self.roll(now_ms);
        self.used
    }

    pub fn available(&mut self, now_ms: u64) -> u32 {
        self.limit.saturating_sub(self.used(now_ms))
    }

    pub fn record(&mut self, now_ms: u64) {
        self.roll(now_ms);
        self.used += 1;
    }

    /// Take the server's word for what is left today.
    pub fn set_available(&mut self, now_ms: u64, available: u32) {
        self.roll(now_ms);
        self.used = self.limit.saturating_sub(available);
    }

    /// Epoch ms of the next reset (next 00:00 UTC), as `x-keap-product-quota-expiry-time`.
    pub fn expiry_ms(now_ms: u64) -> u64 {
        (now_ms / DAY_MS + 1) * DAY_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_window_counts_and_waits_exactly() {
        let mut w = RollingWindow::new(WindowLimit {
            limit: 3,
            length: Duration::from_millis(1000),
        });
        for t in [0, 100, 200] {
            assert_eq!(w.wait_ms(t), 0);
            w.record(t);
        }
        assert_eq!(w.available(250), 0);
        // The oldest call (t=0) leaves the window at t=1000.
        assert_eq!(w.wait_ms(250), 750);
        assert_eq!(w.wait_ms(1000), 0);
        assert_eq!(w.used(1000), 2);
        w.fill(1000);
        assert_eq!(w.wait_ms(1000), 100);
    }

    #[test]
    fn daily_quota_resets_at_utc_midnight() {
        let mut q = DailyQuota::new(2);
        let t = 5 * DAY_MS + 10;
        q.record(t);
        q.record(t);
        assert_eq!(q.available(t), 0);
        assert_eq!(DailyQuota::expiry_ms(t), 6 * DAY_MS);
        assert_eq!(q.available(6 * DAY_MS), 2);
    }

    #[test]
    fn published_profiles() {
        let sak = Limits::service_account();
        assert_eq!(sak.throttle_window(), Some(WindowLimit::per_minute(240)));
        assert_eq!(sak.spike_window(), Some(WindowLimit::per_second(10)));
        assert_eq!(Limits::oauth_client().spike_window(), None);
    }
}
