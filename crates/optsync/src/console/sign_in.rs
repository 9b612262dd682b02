//! Limits on console sign-ins, per account and per client (IPv6: per /64, the client found
//! as the hook routes find it). An attempt is reserved before its password is verified and
//! counted as a failure until it proves otherwise, so a burst of concurrent guesses cannot
//! all pass the check before the first failure is recorded: past [`FREE_FAILURES`], each
//! further attempt waits twice as long as the last (up to [`MAX_WAIT`]). Verifying is
//! Argon2id (~19 MiB and tens of milliseconds each), so at most [`MAX_VERIFYING`] run at once;
//! the rest wait briefly, then are refused. The table is bounded, and when full it refuses
//! new keys rather than forgetting the ones it holds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client::ClientKey;

/// Failures that cost nothing; from the next on, each attempt waits.
pub const FREE_FAILURES: u32 = 3;
/// How long a key is remembered after its last attempt.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Keys (accounts and clients) tracked at most.
pub const MAX_TRACKED: usize = 10_000;
/// Password verifications at once (each holds ~19 MiB of Argon2 memory).
pub const MAX_VERIFYING: usize = 4;
/// How long a sign-in waits for a verification slot before it is refused.
pub const VERIFY_WAIT: Duration = Duration::from_secs(3);
/// The longest user name looked at; longer ones are refused before anything is counted.
pub const MAX_USER_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Client(ClientKey),
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    in_flight: u32,
    /// The last failure or reservation.
    last_ms: u64,
}

/// Why a sign-in is not even tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures: try again after this long.
    Wait(Duration),
    /// Too many sign-ins at once (the table is full, or every verification slot is busy).
    Busy,
}

/// How a reserved attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    Succeeded,
    /// Not decided (the store was unavailable): released uncounted.
    Abandoned,
}

pub struct SignInLimiter {
    entries: Mutex<HashMap<Key, Entry>>,
    verifying: std::sync::Arc<Semaphore>,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            verifying: std::sync::Arc::new(Semaphore::new(MAX_VERIFYING)),
        }
    }
}

/// The wait owed after `count` failures (attempts in flight counted as failures).
fn backoff(count: u32) -> Duration {
    if count <= FREE_FAILURES {
        return Duration::ZERO;
    }
    Duration::from_secs(1 << (count - FREE_FAILURES).min(10)).min(MAX_WAIT)
}

fn keys(user: &str, client: ClientKey) -> [Key; 2] {
    [Key::User(user.to_string()), Key::Client(client)]
}

impl SignInLimiter {
    /// Reserves an attempt for `user` from `client`, or says why not.
    pub fn begin(&self, user: &str, client: ClientKey, now_ms: u64) -> Result<(), Refusal> {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let keys = keys(user, client);
        // A key quiet for a whole window starts afresh.
        for k in &keys {
            if let Some(e) = m.get_mut(k)
                && e.in_flight == 0
                && now_ms.saturating_sub(e.last_ms) >= WINDOW.as_millis() as u64
            {
                e.failures = 0;
            }
        }
        let wait = keys
            .iter()
            .filter_map(|k| m.get(k))
            .map(|e| {
                let since = Duration::from_millis(now_ms.saturating_sub(e.last_ms));
                backoff(e.failures + e.in_flight).saturating_sub(since)
            })
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Err(Refusal::Wait(wait));
        }
        let new = keys.iter().filter(|k| !m.contains_key(k)).count();
        if m.len() + new > MAX_TRACKED {
            m.retain(|_, e| {
                e.in_flight > 0 || now_ms.saturating_sub(e.last_ms) < WINDOW.as_millis() as u64
            });
            if m.len() + new > MAX_TRACKED {
                return Err(Refusal::Busy);
            }
        }
        for k in keys {
            let e = m.entry(k).or_insert(Entry {
                failures: 0,
                in_flight: 0,
                last_ms: now_ms,
            });
            e.in_flight += 1;
            e.last_ms = now_ms;
        }
        Ok(())
    }

    /// Ends a reserved attempt.
    pub fn finish(&self, user: &str, client: ClientKey, outcome: Outcome, now_ms: u64) {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys(user, client) {
            if outcome == Outcome::Succeeded {
                m.remove(&k);
                continue;
            }
            if let Some(e) = m.get_mut(&k) {
                e.in_flight = e.in_flight.saturating_sub(1);
                if outcome == Outcome::Failed {
                    e.failures += 1;
                    e.last_ms = now_ms;
                }
            }
        }
    }

    /// A verification slot, waiting at most [`VERIFY_WAIT`] for one.
    pub async fn verification_slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        tokio::time::timeout(VERIFY_WAIT, self.verifying.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Refusal::Busy)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(s: &str) -> ClientKey {
        ClientKey::from(s.parse::<std::net::IpAddr>().unwrap())
    }

    #[test]
    fn concurrent_attempts_are_reserved_before_any_is_verified() {
        let l = SignInLimiter::default();
        let c = client("192.0.2.1");
        // Attempts in flight count as failures: a burst gets the free ones and one more.
        let passed = (0..200).filter(|_| l.begin("admin", c, 0).is_ok()).count();
        assert_eq!(passed, FREE_FAILURES as usize + 1);
        // From another client too: the account is limited on its own.
        assert!(matches!(
            l.begin("admin", client("198.51.100.9"), 0),
            Err(Refusal::Wait(_))
        ));
        for _ in 0..passed {
            l.finish("admin", c, Outcome::Failed, 0);
        }
        let Err(Refusal::Wait(first)) = l.begin("admin", c, 0) else {
            panic!("slowed")
        };
        assert!(l.begin("admin", c, first.as_millis() as u64).is_ok());
        l.finish("admin", c, Outcome::Failed, first.as_millis() as u64);
        let Err(Refusal::Wait(second)) = l.begin("admin", c, first.as_millis() as u64) else {
            panic!("slowed")
        };
        assert!(second > first);
        // Once the wait has passed, the right password resets both keys.
        let later = 3_600_000;
        assert!(l.begin("admin", c, later).is_ok());
        l.finish("admin", c, Outcome::Succeeded, later);
        assert!(l.begin("admin", c, later).is_ok());
    }

    #[test]
    fn ipv6_clients_are_one_per_64() {
        let l = SignInLimiter::default();
        for i in 0..=FREE_FAILURES {
            let c = client(&format!("2001:db8:1:2::{}", i + 1));
            assert!(l.begin(&format!("user{i}"), c, 0).is_ok());
            l.finish(&format!("user{i}"), c, Outcome::Failed, 0);
        }
        assert!(
            l.begin("another", client("2001:db8:1:2:ffff::1"), 0)
                .is_err()
        );
        assert!(l.begin("another", client("2001:db8:1:3::1"), 0).is_ok());
    }

    #[test]
    fn a_full_table_refuses_instead_of_forgetting() {
        let l = SignInLimiter::default();
        let admin_client = client("192.0.2.1");
        for _ in 0..=FREE_FAILURES {
            l.begin("admin", admin_client, 0).unwrap();
            l.finish("admin", admin_client, Outcome::Failed, 0);
        }
        let mut i = 0u32;
        while l.tracked() + 2 <= MAX_TRACKED {
            let c = ClientKey::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(i)));
            if l.begin(&format!("u{i}"), c, 1).is_ok() {
                l.finish(&format!("u{i}"), c, Outcome::Failed, 1);
            }
            i += 1;
        }
        let c = client("203.0.113.1");
        assert_eq!(l.begin("new-user", c, 2), Err(Refusal::Busy));
        // The account under attack is still remembered.
        assert!(matches!(
            l.begin("admin", client("198.51.100.1"), 2),
            Err(Refusal::Wait(_))
        ));
        // Once the window has passed, idle keys are forgotten to make room.
        assert!(
            l.begin("new-user", c, WINDOW.as_millis() as u64 + 10)
                .is_ok()
        );
    }
}
