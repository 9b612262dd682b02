//! Everything the emulator holds, behind one lock: every provider's suppression entries with
//! their scope, the contacts Mailjet and Brevo keep, Mandrill's allowlist, injected faults,
//! rate-limit windows and call counts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::clock::SimClock;
use crate::config::{RateLimit, SimConfig};
use crate::provider::Provider;

/// Where an entry applies. Only the fields that make sense for the provider are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Scope {
    /// SES region; Mailgun `us`/`eu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Mailgun sending domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Postmark message stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// SparkPost `transactional` / `non_transactional`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Brevo transactional sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// SendGrid `on-behalf-of` subuser, SparkPost / Mandrill subaccount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<String>,
    /// Which of the provider's lists: Mailgun `unsubscribes`/`complaints`, Mailjet
    /// `campaigns`, Brevo `campaigns`/`transactional`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
}

/// One address on one list in one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// As written (SES keeps case).
    pub address: String,
    #[serde(flatten)]
    pub scope: Scope,
    /// SES `BOUNCE`/`COMPLAINT`, Postmark `ManualSuppression`, Mailgun tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// When the entry starts to block (Postmark's asynchronous processing); `created_ms`
    /// elsewhere.
    pub active_from_ms: u64,
}

type ListKey = (Provider, Scope, String);

#[derive(Debug, Default)]
pub struct Lists {
    entries: BTreeMap<ListKey, Entry>,
}

/// What a write adds beyond address and scope.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub reason: Option<String>,
    pub description: Option<String>,
    /// Delay before the entry blocks.
    pub activation: Duration,
}

impl Lists {
    /// Adds or updates (upsert); true when the entry is new.
    pub fn upsert(
        &mut self,
        provider: Provider,
        scope: Scope,
        address: &str,
        detail: Detail,
        now_ms: u64,
    ) -> bool {
        let key = (provider, scope.clone(), provider.address_key(address));
        if let Some(e) = self.entries.get_mut(&key) {
            e.reason = detail.reason.or(e.reason.take());
            e.description = detail.description.or(e.description.take());
            e.updated_ms = now_ms;
            return false;
        }
        let entry = Entry {
            address: address.to_string(),
            scope,
            reason: detail.reason,
            description: detail.description,
            created_ms: now_ms,
            updated_ms: now_ms,
            active_from_ms: now_ms + detail.activation.as_millis() as u64,
        };
        self.entries.insert(key, entry);
        true
    }

    pub fn get(&self, provider: Provider, scope: &Scope, address: &str) -> Option<&Entry> {
        self.entries
            .get(&(provider, scope.clone(), provider.address_key(address)))
    }

    pub fn remove(&mut self, provider: Provider, scope: &Scope, address: &str) -> Option<Entry> {
        self.entries
            .remove(&(provider, scope.clone(), provider.address_key(address)))
    }

    /// Every entry of `provider`, in scope order.
    pub fn of(&self, provider: Provider) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |((p, _, _), _)| *p == provider)
            .map(|(_, e)| e)
    }
}

/// A fault the next responses of one provider are forced into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The provider's 429.
    TooManyRequests,
    /// The provider's 500 (nothing written).
    ServerError,
    /// Hold the request for `fault_timeout_delay`, then answer 504.
    Timeout,
    /// A write of several entries applies only the first half, then answers the provider's
    /// 500 (SparkPost documents this; the others are assumed to behave alike).
    Partial,
}

impl FaultKind {
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "429" => Self::TooManyRequests,
            "500" => Self::ServerError,
            "timeout" => Self::Timeout,
            "partial" => Self::Partial,
            _ => return None,
        })
    }
}

#[derive(Debug, Default)]
struct Faults {
    counted: VecDeque<(FaultKind, u32)>,
    until_lifted: Option<FaultKind>,
}

/// Rate-limit numbers after a call, for the headers SendGrid sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds when the window resets.
    pub reset_s: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    used: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Calls per `PROVIDER METHOD ROUTE`, whatever their answer.
    pub calls: BTreeMap<String, u64>,
    /// Calls per provider.
    pub by_provider: BTreeMap<Provider, u64>,
    /// Calls refused by a rate limit, per provider (injected 429s not included).
    pub throttled: BTreeMap<Provider, u64>,
}

/// A contact record (Mailjet and Brevo hold contacts; their flags live in [`Lists`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: u64,
    pub email: String,
    pub created_ms: u64,
}

#[derive(Debug, Default)]
pub struct Contacts {
    by_email: BTreeMap<String, Contact>,
    next_id: u64,
}

impl Contacts {
    /// The contact with this email or numeric id.
    pub fn find(&self, id_or_email: &str) -> Option<&Contact> {
        match id_or_email.parse::<u64>() {
            Ok(id) => self.by_email.values().find(|c| c.id == id),
            Err(_) => self.by_email.get(&id_or_email.to_ascii_lowercase()),
        }
    }

    /// Creates the contact; None when the email is taken.
    pub fn create(&mut self, email: &str, now_ms: u64) -> Option<Contact> {
        let key = email.to_ascii_lowercase();
        if self.by_email.contains_key(&key) {
            return None;
        }
        self.next_id += 1;
        let c = Contact {
            id: self.next_id,
            email: email.to_string(),
            created_ms: now_ms,
        };
        self.by_email.insert(key, c.clone());
        Some(c)
    }
}

#[derive(Debug)]
pub struct State {
    pub config: SimConfig,
    pub lists: Lists,
    pub mailjet_contacts: Contacts,
    pub brevo_contacts: Contacts,
    /// Mandrill's allowlist (lower-cased): a rejects/add of these has no effect.
    pub mandrill_allowlist: BTreeSet<String>,
    pub stats: Stats,
    faults: BTreeMap<Provider, Faults>,
    windows: BTreeMap<Provider, Window>,
}

impl State {
    pub fn new(config: SimConfig) -> Self {
        Self {
            config,
            lists: Lists::default(),
            mailjet_contacts: Contacts::default(),
            brevo_contacts: Contacts::default(),
            mandrill_allowlist: BTreeSet::new(),
            stats: Stats::default(),
            faults: BTreeMap::new(),
            windows: BTreeMap::new(),
        }
    }

    pub fn count_call(&mut self, provider: Provider, route: &str) {
        *self
            .stats
            .calls
            .entry(format!("{provider} {route}"))
            .or_default() += 1;
        *self.stats.by_provider.entry(provider).or_default() += 1;
    }

    /// The next `count` calls to `provider` fail with `kind`.
    pub fn inject(&mut self, provider: Provider, kind: FaultKind, count: u32) {
        if count > 0 {
            let f = self.faults.entry(provider).or_default();
            f.counted.push_back((kind, count));
        }
    }

    /// Every call to `provider` fails with `kind` (after the counted faults) until lifted
    /// with `None`.
    pub fn set_outage(&mut self, provider: Provider, kind: Option<FaultKind>) {
        self.faults.entry(provider).or_default().until_lifted = kind;
    }

    pub fn next_fault(&mut self, provider: Provider) -> Option<FaultKind> {
        let f = self.faults.get_mut(&provider)?;
        let Some((kind, left)) = f.counted.front_mut() else {
            return f.until_lifted;
        };
        let kind = *kind;
        *left -= 1;
        if *left == 0 {
            f.counted.pop_front();
        }
        Some(kind)
    }

    /// Counts a call against `provider`'s rate limit: Ok with the numbers after it, or Err
    /// when the window is used up (the refused call is not counted).
    pub fn admit(&mut self, provider: Provider, now_ms: u64) -> Result<Option<RateInfo>, RateInfo> {
        let Some(RateLimit { limit, window }) = self.config.rate_limits.get(&provider).copied()
        else {
            return Ok(None);
        };
        let window_ms = window.as_millis() as u64;
        let w = self.windows.entry(provider).or_insert(Window {
            start_ms: now_ms,
            used: 0,
        });
        if now_ms >= w.start_ms + window_ms {
            *w = Window {
                start_ms: now_ms,
                used: 0,
            };
        }
        let reset_s = (w.start_ms + window_ms).div_ceil(1000);
        if w.used >= limit {
            *self.stats.throttled.entry(provider).or_default() += 1;
            return Err(RateInfo {
                limit,
                remaining: 0,
                reset_s,
            });
        }
        w.used += 1;
        Ok(Some(RateInfo {
            limit,
            remaining: limit - w.used,
            reset_s,
        }))
    }
}

/// The emulator's state and clock, shared by every handler.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    pub clock: SimClock,
}

impl Shared {
    pub fn new(config: SimConfig, clock: SimClock) -> Self {
        Self {
            state: Mutex::new(State::new(config)),
            clock,
        }
    }

    /// The state, even after a handler panicked while holding it (the data stays usable).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_come_before_an_outage_and_an_outage_lasts_until_lifted() {
        let mut st = State::new(SimConfig::default());
        st.inject(Provider::Ses, FaultKind::TooManyRequests, 2);
        st.set_outage(Provider::Ses, Some(FaultKind::ServerError));
        let seen: Vec<_> = (0..4).map(|_| st.next_fault(Provider::Ses)).collect();
        assert_eq!(
            seen,
            [
                Some(FaultKind::TooManyRequests),
                Some(FaultKind::TooManyRequests),
                Some(FaultKind::ServerError),
                Some(FaultKind::ServerError)
            ]
        );
        assert_eq!(st.next_fault(Provider::Sendgrid), None);
        st.set_outage(Provider::Ses, None);
        assert_eq!(st.next_fault(Provider::Ses), None);
    }

    #[test]
    fn a_rate_window_refuses_past_its_limit_and_opens_again() {
        let mut cfg = SimConfig::default();
        cfg.rate_limits.insert(
            Provider::Postmark,
            RateLimit {
                limit: 2,
                window: Duration::from_secs(1),
            },
        );
        let mut st = State::new(cfg);
        assert_eq!(
            st.admit(Provider::Postmark, 1_000)
                .unwrap()
                .unwrap()
                .remaining,
            1
        );
        assert_eq!(
            st.admit(Provider::Postmark, 1_500)
                .unwrap()
                .unwrap()
                .remaining,
            0
        );
        let refused = st.admit(Provider::Postmark, 1_999).unwrap_err();
        assert_eq!(refused.reset_s, 2);
        assert!(st.admit(Provider::Postmark, 2_000).is_ok());
        assert_eq!(st.stats.throttled[&Provider::Postmark], 1);
        assert_eq!(st.admit(Provider::Mailgun, 0), Ok(None));
    }
}
