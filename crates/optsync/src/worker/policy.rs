//! What becomes of a job: the retry, bury and backoff policy for one that failed, and the end
//! of one that ran — pure functions of what happened and the settings, so they are tested
//! without a queue.

use crate::clock::Millis;
use std::time::Duration;

use crate::store::{Outcome, Requeue};

/// The settings the policy reads.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_attempts: i64,
    pub bury_after: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub blocked_retry: Duration,
}

/// How a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No opt-out path works for the app just now.
    Blocked,
    /// Keap asked us to wait this long (its rate limit): not an attempt.
    RateLimited(Duration),
    /// Anything else: an attempt that counts.
    Failed,
}

/// The failed job as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Including this one.
    pub attempts: i64,
    /// How long ago the job was first queued.
    pub age: Duration,
    pub now: Millis,
    /// A number in `[0.8, 1.2)` that spreads retries of jobs failed together.
    pub jitter: f64,
}

impl Policy {
    /// Where a failed job goes: blocked until the blocked-retry interval, deferred to when
    /// Keap has room, retried with backoff, or buried once its attempts are spent *and* it is
    /// older than the bury horizon.
    pub fn after_failure(&self, f: Failure, a: Attempt) -> Requeue {
        match f {
            Failure::Blocked => Requeue::Block(a.now + ms(self.blocked_retry)),
            Failure::RateLimited(wait) => Requeue::Defer(a.now + ms(wait)),
            Failure::Failed if a.attempts >= self.max_attempts && a.age >= self.bury_after => {
                Requeue::Bury
            }
            Failure::Failed => Requeue::Retry(a.now + ms(self.backoff(a.attempts, a.jitter))),
        }
    }

    /// Exponential in the attempts, capped, times the jitter.
    pub fn backoff(&self, attempts: i64, jitter: f64) -> Duration {
        let exp = (attempts - 1).clamp(0, 20) as u32;
        let ceiling = self.retry_base.saturating_mul(1 << exp).min(self.retry_cap);
        ceiling.mul_f64(jitter)
    }
}

/// The longest a tenant's backed-off jobs go without one of them trying Keap again: after an
/// outage of any length, the first to go through releases the rest
/// (`Queue::release_backoff`), so a backlog clears within about this long of Keap's return
/// instead of waiting out an hour's backoff.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);

/// When a job failing again is retried: at its backoff, unless that leaves the tenant with
/// no failed job due within [`PROBE_EVERY`] (`next_other`: the tenant's next one, if any);
/// then this one is the probe, retried after `PROBE_EVERY` times the jitter.
pub fn probing(at: Millis, now: Millis, next_other: Option<Millis>, jitter: f64) -> Millis {
    let within = now + ms(PROBE_EVERY);
    if at <= within || next_other.is_some_and(|o| o <= within) {
        return at;
    }
    now + ms(PROBE_EVERY.mul_f64(jitter.min(1.0)))
}

/// How long a Keap post for a contact that shows no stop status is read again for: Keap's
/// state may lag its post by a little.
pub const RECHECK_FOR: Duration = Duration::from_secs(5 * 60);

/// How often it is read again meanwhile.
pub const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// What a job that ran saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Contacts Keap had.
    pub found: usize,
    /// Some event of the job is Keap's post, which claims a stop in Keap.
    pub keap_post: bool,
    /// Some contact showed a stop status (or a signal or write asked for one).
    pub stop: bool,
    /// When the first of the job's events arrived.
    pub received_at: Millis,
    pub now: Millis,
}

/// How a job that ran ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete(Outcome),
    /// Read the contact again at this time (epoch ms).
    Recheck(Millis),
}

/// "Honoured" means something was true in Keap: a post whose contact shows no stop is read
/// again for a few minutes, then ends as [`Outcome::NoOptOut`], never as done.
pub fn ending(s: Seen) -> Ending {
    if s.found == 0 {
        return Ending::Complete(Outcome::NotFound);
    }
    if !s.keap_post || s.stop {
        return Ending::Complete(Outcome::Done);
    }
    if s.now - s.received_at < ms(RECHECK_FOR) {
        Ending::Recheck(s.now + ms(RECHECK_EVERY))
    } else {
        Ending::Complete(Outcome::NoOptOut)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> Policy {
        Policy {
            max_attempts: 3,
            bury_after: HOUR,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(60),
            blocked_retry: Duration::from_secs(600),
        }
    }

    fn attempt(attempts: i64, age: Duration) -> Attempt {
        Attempt {
            attempts,
            age,
            now: Millis(1_000),
            jitter: 1.0,
        }
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let p = policy();
        assert_eq!(
            p.after_failure(Failure::Failed, attempt(1, HOUR)),
            Requeue::Retry(Millis(2_000))
        );
        assert_eq!(
            p.after_failure(Failure::Failed, attempt(2, HOUR)),
            Requeue::Retry(Millis(3_000))
        );
        assert_eq!(p.backoff(4, 1.0), Duration::from_secs(8));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(60), "capped");
        assert_eq!(p.backoff(1, 0.8), Duration::from_millis(800), "jittered");
    }

    #[test]
    fn a_job_is_buried_only_when_spent_and_old() {
        let p = policy();
        assert_eq!(
            p.after_failure(Failure::Failed, attempt(3, HOUR)),
            Requeue::Bury
        );
        assert!(matches!(
            p.after_failure(Failure::Failed, attempt(3, HOUR / 2)),
            Requeue::Retry(_)
        ));
        assert!(matches!(
            p.after_failure(Failure::Failed, attempt(2, 2 * HOUR)),
            Requeue::Retry(_)
        ));
    }

    #[test]
    fn blocks_and_rate_limits_are_not_attempts() {
        let p = policy();
        assert_eq!(
            p.after_failure(Failure::Blocked, attempt(9, 9 * HOUR)),
            Requeue::Block(Millis(601_000))
        );
        assert_eq!(
            p.after_failure(
                Failure::RateLimited(Duration::from_secs(2)),
                attempt(9, 9 * HOUR)
            ),
            Requeue::Defer(Millis(3_000))
        );
    }

    #[test]
    fn a_tenant_always_has_a_failed_job_due_within_the_probe_interval() {
        let (now, probe) = (Millis(1_000), ms(PROBE_EVERY));
        let hour_away = now + ms(HOUR);
        assert_eq!(probing(hour_away, now, None, 1.0), now + probe, "the probe");
        assert_eq!(probing(hour_away, now, None, 0.8), now + probe * 4 / 5);
        assert_eq!(
            probing(hour_away, now, Some(now + probe), 1.0),
            hour_away,
            "another job probes already"
        );
        assert_eq!(probing(hour_away, now, Some(hour_away), 1.1), now + probe);
        assert_eq!(probing(now + 5, now, None, 1.0), now + 5, "sooner anyway");
    }

    fn seen(keap_post: bool, stop: bool, after: Duration) -> Seen {
        Seen {
            found: 1,
            keap_post,
            stop,
            received_at: Millis(0),
            now: Millis(ms(after)),
        }
    }

    #[test]
    fn a_post_without_a_stop_in_keap_is_read_again_then_not_honoured() {
        let minute = Duration::from_secs(60);
        assert_eq!(
            ending(seen(true, false, Duration::ZERO)),
            Ending::Recheck(Millis(60_000))
        );
        assert_eq!(
            ending(seen(true, false, 4 * minute)),
            Ending::Recheck(Millis(300_000))
        );
        assert_eq!(
            ending(seen(true, false, 5 * minute)),
            Ending::Complete(Outcome::NoOptOut)
        );
        assert_eq!(
            ending(seen(true, true, Duration::ZERO)),
            Ending::Complete(Outcome::Done)
        );
        assert_eq!(
            ending(seen(false, false, Duration::ZERO)),
            Ending::Complete(Outcome::Done),
            "a sweep or provider job looks, and is done"
        );
        let nobody = Seen {
            found: 0,
            ..seen(true, false, Duration::ZERO)
        };
        assert_eq!(ending(nobody), Ending::Complete(Outcome::NotFound));
    }
}
