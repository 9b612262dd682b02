//! Pacing pushes per provider credential (one push setting: an app and a provider): at most
//! `OPTSYNC_PUSH_PER_SECOND` pushes in any second, counted in this process. A push that finds
//! no room is deferred to when there is room, so no worker waits in the pacer; a 429 fills the
//! credential's window, so its other pushes wait too instead of meeting the same 429.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use keap::{RollingWindow, WindowLimit};
use suppress::Provider;

use crate::store::TenantId;

#[derive(Debug)]
pub struct PushPacer {
    per_second: u32,
    windows: Mutex<HashMap<(TenantId, Provider), RollingWindow>>,
}

impl PushPacer {
    /// At most `per_second` pushes per credential in any second (at least one).
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: per_second.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, key: (TenantId, Provider), f: impl FnOnce(&mut RollingWindow) -> T) -> T {
        // A poisoned lock only means another worker panicked mid-count: the counts still hold.
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = map
            .entry(key)
            .or_insert_with(|| RollingWindow::new(WindowLimit::per_second(self.per_second)));
        f(w)
    }

    /// Takes room for one push now, or says how long until there is some.
    pub fn take(&self, tenant: TenantId, provider: Provider, now_ms: u64) -> Result<(), Duration> {
        self.with((tenant, provider), |w| match w.wait_ms(now_ms) {
            0 => {
                w.record(now_ms);
                Ok(())
            }
            wait => Err(Duration::from_millis(wait)),
        })
    }

    /// The provider said 429: no more pushes on this credential for the rest of the window.
    pub fn throttled(&self, tenant: TenantId, provider: Provider, now_ms: u64) {
        self.with((tenant, provider), |w| {
            // Calls that left the window first, so it is full from now on.
            w.used(now_ms);
            w.fill(now_ms);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_pace_in_any_second_per_credential() {
        let p = PushPacer::new(2);
        let (t1, t2) = (TenantId(1), TenantId(2));
        assert!(p.take(t1, Provider::Sendgrid, 1_000).is_ok());
        assert!(p.take(t1, Provider::Sendgrid, 1_400).is_ok());
        assert_eq!(
            p.take(t1, Provider::Sendgrid, 1_500),
            Err(Duration::from_millis(500))
        );
        // Another app's credential, or another provider, has its own room.
        assert!(p.take(t2, Provider::Sendgrid, 1_500).is_ok());
        assert!(p.take(t1, Provider::Ses, 1_500).is_ok());
        assert!(p.take(t1, Provider::Sendgrid, 2_000).is_ok());
        p.throttled(t1, Provider::Ses, 3_000);
        assert!(p.take(t1, Provider::Ses, 3_500).is_err());
        assert!(p.take(t1, Provider::Ses, 4_000).is_ok());
    }
}
