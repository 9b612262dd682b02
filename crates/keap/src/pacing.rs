//! Pacing calls to Keap's limits, per credential.
//!
//! A [`Pacer`] keeps the same rolling windows and daily quota Keap keeps (see [`crate::limits`]
//! for why not a token bucket) and makes each call wait until it fits, so a well-paced client
//! never sees a 429. It also listens to what Keap says: the `x-keap-*` headers correct its
//! counts when another process shares the credential, and a 429 anyway makes it back off
//! with jitter. One pacer per credential: an OAuth client's pacer is shared by every tenant
//! that client serves, because Keap counts that client's calls across all apps.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;

use crate::clock::Clock;
use crate::error::Error;
use crate::limits::{DailyQuota, Limits, RollingWindow};

/// How a pacer behaves around Keap's walls.
#[derive(Debug, Clone)]
pub struct PacingConfig {
    pub limits: Limits,
    /// Added to every window's length: a call is counted by Keap when it *arrives*, which is
    /// a little after we send it, so our window must release it a little later than Keap's.
    pub margin: Duration,
    /// First pause after a 429; doubles per consecutive 429, with full jitter.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Pause when Keap reports the app-wide (tenant) throttle empty.
    pub tenant_pause: Duration,
    /// Percent of every window and of the day that only [`Lane::RealTime`] calls may spend:
    /// a sweep can never use up what a person's opt-out needs.
    pub realtime_reserve_pct: u8,
}

/// Whose call it is: the share of the budget it may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lane {
    /// An opt-out somebody is waiting for: may spend the whole budget.
    #[default]
    RealTime,
    /// A reconciliation sweep: may not spend the real-time reserve.
    Sweep,
}

/// How long a call may wait in the pacer before its caller is told to come back later
/// ([`Error::Throttled`]) instead: a worker holding a job should not sleep for minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallPolicy {
    pub lane: Lane,
    /// `None`: wait as long as it takes.
    pub max_wait: Option<Duration>,
}

impl CallPolicy {
    pub fn job(max_wait: Duration) -> Self {
        Self {
            lane: Lane::RealTime,
            max_wait: Some(max_wait),
        }
    }

    pub fn sweep() -> Self {
        Self {
            lane: Lane::Sweep,
            max_wait: None,
        }
    }
}

impl PacingConfig {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            margin: Duration::from_millis(250),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            tenant_pause: Duration::from_secs(1),
            realtime_reserve_pct: 20,
        }
    }

    /// What a lane may use of `limit`: all of it in real time, less the reserve for sweeps
    /// (never less than one call, so a tiny limit still lets sweeps move).
    pub fn share(&self, lane: Lane, limit: u32) -> u32 {
        match lane {
            Lane::RealTime => limit,
            Lane::Sweep => {
                let pct = u64::from(self.realtime_reserve_pct.min(90));
                let reserve = (u64::from(limit) * pct).div_ceil(100) as u32;
                limit.saturating_sub(reserve).max(1)
            }
        }
    }

    /// Service account key / personal access token: 10/s, 240/min, 30,000/day.
    pub fn service_account() -> Self {
        Self::new(Limits::service_account())
    }

    /// OAuth client: 1,500/min, 150,000/day.
    pub fn oauth_client() -> Self {
        Self::new(Limits::oauth_client())
    }
}

/// The daily budget as the pacer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub daily_limit: Option<u32>,
    pub daily_remaining: Option<u32>,
    /// Epoch ms of the next reset (00:00 UTC).
    pub resets_at_ms: u64,
}

#[derive(Debug)]
struct PacerState {
    windows: Vec<RollingWindow>,
    daily: Option<DailyQuota>,
    /// No call before this (epoch ms): set by 429s and an empty tenant throttle.
    blocked_until: u64,
    consecutive_429: u32,
    calls: u64,
    throttled: u64,
}

#[derive(Debug)]
pub struct Pacer {
    config: PacingConfig,
    clock: Clock,
    state: Mutex<PacerState>,
}

/// What the pacer says to one call.
enum Admit {
    Now,
    After(Duration),
    DaySpent(Duration),
}

fn header_u32(headers: &HeaderMap, name: &str) -> Option<u32> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The longest `Retry-After` honoured: a wrong header must not park a credential for a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds (the HTTP-date form is not used by gateways that pace calls).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

impl Pacer {
    pub fn new(config: PacingConfig) -> Self {
        Self::with_clock(config, Clock::system())
    }

    /// A pacer reading `clock` (tests stand time still or move it forward).
    pub fn with_clock(config: PacingConfig, clock: Clock) -> Self {
        let margin = config.margin;
        let windows = config
            .limits
            .windows
            .iter()
            .map(|w| {
                // At most 5 % of the window: 250 ms on a one-second window would waste a
                // fifth of it; on a minute it costs 0.4 %.
                RollingWindow::new(crate::limits::WindowLimit {
                    limit: w.limit,
                    length: w.length + margin.min(w.length / 20),
                })
            })
            .collect();
        let daily = config.limits.daily.map(DailyQuota::new);
        Self {
            config,
            clock,
            state: Mutex::new(PacerState {
                windows,
                daily,
                blocked_until: 0,
                consecutive_429: 0,
                calls: 0,
                throttled: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until one more real-time call fits every window, then counts it.
    pub async fn acquire(&self) -> Result<(), Error> {
        self.acquire_for(CallPolicy::default()).await
    }

    /// Waits until one more call of `policy`'s lane fits every window (within its share),
    /// then counts it. Fails at once, without waiting, when the lane's share of the day is
    /// spent or the wait is longer than the policy allows: the caller should reschedule
    /// rather than hold a worker.
    pub async fn acquire_for(&self, policy: CallPolicy) -> Result<(), Error> {
        loop {
            let wait = match self.try_admit(policy.lane) {
                Admit::Now => return Ok(()),
                Admit::DaySpent(retry_after) => {
                    return Err(Error::Throttled {
                        retry_after,
                        detail: "daily quota spent".into(),
                    });
                }
                Admit::After(wait) => wait,
            };
            // Sleeping does not move a manual clock: the caller reschedules instead.
            if self.clock.is_manual() || policy.max_wait.is_some_and(|m| wait > m) {
                return Err(Error::Throttled {
                    retry_after: wait,
                    detail: "no room in Keap's limits for this credential now".into(),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts the call if it fits now; else says how long until it would.
    fn try_admit(&self, lane: Lane) -> Admit {
        let mut st = self.lock();
        let now = self.clock.now_ms();
        if let Some(d) = st.daily.as_mut() {
            let share = self.config.share(lane, d.limit());
            if d.used(now) >= share {
                let reset = DailyQuota::expiry_ms(now);
                return Admit::DaySpent(Duration::from_millis(reset - now));
            }
        }
        let mut wait = st.blocked_until.saturating_sub(now);
        for w in &mut st.windows {
            let share = self.config.share(lane, w.limit().limit);
            wait = wait.max(w.wait_ms_within(now, share));
        }
        if wait > 0 {
            return Admit::After(Duration::from_millis(wait));
        }
        for w in &mut st.windows {
            w.record(now);
        }
        if let Some(d) = st.daily.as_mut() {
            d.record(now);
        }
        st.calls += 1;
        Admit::Now
    }

    /// Takes Keap's own numbers into account after a response.
    pub fn observe(&self, headers: &HeaderMap) {
        let mut st = self.lock();
        let now = self.clock.now_ms();
        if let (Some(avail), Some(d)) = (
            header_u32(headers, "x-keap-product-quota-available"),
            st.daily.as_mut(),
        ) && avail < d.available(now)
        {
            d.set_available(now, avail);
        }
        if header_u32(headers, "x-keap-product-throttle-available") == Some(0) {
            // Someone else is using this credential too: treat the minute as full.
            if let Some(w) = st.windows.iter_mut().max_by_key(|w| w.limit().length) {
                w.fill(now);
            }
        }
        if header_u32(headers, "x-keap-tenant-throttle-available") == Some(0) {
            st.blocked_until = st
                .blocked_until
                .max(now + self.config.tenant_pause.as_millis() as u64);
        }
    }

    /// A call went through: the 429 streak is over.
    pub fn succeeded(&self) {
        self.lock().consecutive_429 = 0;
    }

    /// Keap answered 429: pause for its `Retry-After` when it sends one (it has not been seen
    /// to), else back off exponentially with full jitter. Only a window Keap's answer shows
    /// exhausted is treated as full: the minute when `x-keap-product-throttle-available` says
    /// 0 ([`Pacer::observe`] fills it), else the spike window (the shortest, when there are
    /// several). Filling the minute on any 429 would stall a credential with a large minute
    /// (say 100,000/min) for a whole minute after one spike. Returns the pause chosen.
    pub fn throttled(&self, headers: &HeaderMap) -> Duration {
        let mut st = self.lock();
        let now = self.clock.now_ms();
        st.throttled += 1;
        st.consecutive_429 = st.consecutive_429.saturating_add(1);
        let pause = match retry_after(headers) {
            Some(wait) => wait.min(MAX_RETRY_AFTER),
            None => {
                if st.windows.len() > 1
                    && let Some(w) = st.windows.iter_mut().min_by_key(|w| w.limit().length)
                {
                    w.fill(now);
                }
                self.backoff(st.consecutive_429)
            }
        };
        st.blocked_until = st.blocked_until.max(now + pause.as_millis() as u64);
        pause
    }

    /// The pause after the `streak`-th 429 in a row: doubling from the base up to the cap,
    /// full jitter, but never less than half the base, so a burst of clients spreads out
    /// without hammering again at once.
    fn backoff(&self, streak: u32) -> Duration {
        let exp = streak.saturating_sub(1).min(16);
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(1 << exp)
            .min(self.config.backoff_cap);
        let floor = self.config.backoff_base / 2;
        if ceiling <= floor {
            floor
        } else {
            rand::rng().random_range(floor..=ceiling)
        }
    }

    pub fn budget(&self) -> Budget {
        let mut st = self.lock();
        let now = self.clock.now_ms();
        Budget {
            daily_limit: st.daily.as_ref().map(DailyQuota::limit),
            daily_remaining: st.daily.as_mut().map(|d| d.available(now)),
            resets_at_ms: DailyQuota::expiry_ms(now),
        }
    }

    /// Calls admitted and 429s seen so far.
    pub fn counters(&self) -> (u64, u64) {
        let st = self.lock();
        (st.calls, st.throttled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::WindowLimit;

    fn tiny() -> PacingConfig {
        PacingConfig {
            limits: Limits {
                windows: vec![WindowLimit {
                    limit: 2,
                    length: Duration::from_millis(100),
                }],
                daily: Some(3),
            },
            margin: Duration::ZERO,
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(40),
            tenant_pause: Duration::from_millis(10),
            realtime_reserve_pct: 50,
        }
    }

    #[tokio::test]
    async fn sweeps_cannot_spend_the_real_time_reserve() {
        let clock = Clock::manual(1_000_000);
        let p = Pacer::with_clock(tiny(), clock);
        p.acquire_for(CallPolicy::sweep()).await.unwrap();
        let refused = p.acquire_for(CallPolicy::sweep()).await.unwrap_err();
        assert!(
            matches!(refused, Error::Throttled { .. }),
            "the sweep's half of the window is spent"
        );
        p.acquire().await.expect("a real-time call still fits");
        let long = p.acquire_for(CallPolicy::job(Duration::from_millis(1)));
        assert!(matches!(long.await, Err(Error::Throttled { .. })));
    }

    #[tokio::test]
    async fn a_job_is_told_to_come_back_rather_than_wait_long() {
        let p = Pacer::new(tiny());
        p.acquire().await.unwrap();
        p.acquire().await.unwrap();
        let started = std::time::Instant::now();
        let err = p
            .acquire_for(CallPolicy::job(Duration::from_millis(5)))
            .await
            .unwrap_err();
        let Error::Throttled { retry_after, .. } = err else {
            panic!("expected Throttled, got {err:?}");
        };
        assert!(retry_after > Duration::from_millis(5));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "it did not sleep"
        );
    }

    #[tokio::test]
    async fn waits_for_the_window_and_refuses_when_the_day_is_spent() {
        let p = Pacer::new(tiny());
        let start = std::time::Instant::now();
        for _ in 0..3 {
            p.acquire().await.unwrap();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "the third call waited for the window"
        );
        let err = p.acquire().await.unwrap_err();
        assert!(matches!(err, Error::Throttled { .. }));
        assert_eq!(p.budget().daily_remaining, Some(0));
    }

    #[test]
    fn backoff_grows_within_its_cap_and_headers_correct_the_day() {
        let p = Pacer::new(tiny());
        for _ in 0..10 {
            let d = p.throttled(&HeaderMap::new());
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(40));
        }
        assert_eq!(p.counters().1, 10);
        let mut h = HeaderMap::new();
        h.insert("x-keap-product-quota-available", "1".parse().unwrap());
        p.observe(&h);
        assert_eq!(p.budget().daily_remaining, Some(1));
    }
}
