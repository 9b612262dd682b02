//! Everything the emulator knows, behind one lock, plus the side effects of a status change
//! (the opt-out action set's HTTP post).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use keap::EmailStatus;
use serde::Serialize;
use tokio::sync::Notify;

use crate::SimError;
use crate::auth::{Auth, GrantTerms};
use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::store::{Change, Store};
use crate::throttle::Throttles;

/// A fault the next gateway responses are forced into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    TooManyRequests,
    ServerError,
    Unauthorized,
    /// Hold the request for `fault_timeout_delay`, then answer 504.
    Timeout,
    /// Close the connection without answering.
    Drop,
}

impl FaultKind {
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "429" => Self::TooManyRequests,
            "500" => Self::ServerError,
            "401" => Self::Unauthorized,
            "timeout" => Self::Timeout,
            "drop" => Self::Drop,
            _ => return None,
        })
    }
}

/// One attempt to deliver the action-set post.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ActionPost {
    pub url: String,
    /// HTTP status of the receiver's answer; 0 when it did not answer.
    pub status: u16,
    pub at: String,
    pub contact_id: i64,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Gateway calls per REST route (`GET /crm/rest/v2/contacts/{id}`) or XML-RPC method.
    pub calls: BTreeMap<String, u64>,
    /// Gateway calls that changed an address's status.
    pub writes: u64,
    /// Gateway calls refused with 429 by a throttle (injected faults not included).
    pub throttled: u64,
    pub action_posts: Vec<ActionPost>,
    pub oauth: OAuthStats,
}

/// What `/token` answered.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct OAuthStats {
    /// Authorization codes exchanged for a pair.
    pub code_exchanges: u64,
    /// Refresh-token grants answered with a new pair.
    pub refreshes: u64,
    /// Grants refused with `invalid_grant` (a spent, expired, revoked or foreign code or
    /// refresh token, or a redirect URI that is not the code's).
    pub invalid_grant: u64,
}

impl Stats {
    /// All gateway calls, whatever the route.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    pub fn count(&mut self, key: &str) {
        match self.calls.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.calls.insert(key.to_string(), 1);
            }
        }
    }
}

#[derive(Debug)]
pub struct State {
    pub config: SimConfig,
    pub store: Store,
    pub auth: Auth,
    pub throttles: Throttles,
    pub faults: VecDeque<(FaultKind, u32)>,
    /// An outage: while not empty, every gateway call fails with the next of these kinds in
    /// turn (after the counted faults above), however long it lasts.
    pub outage: Vec<FaultKind>,
    outage_turn: usize,
    pub stats: Stats,
}

impl State {
    pub fn new(config: SimConfig) -> Self {
        Self {
            auth: Auth::new(&config.api_keys, &config.oauth_clients),
            throttles: Throttles::new(config.throttle.clone()),
            store: Store::new(),
            faults: VecDeque::new(),
            outage: Vec::new(),
            outage_turn: 0,
            stats: Stats::default(),
            config,
        }
    }

    /// The lifetimes and app a grant made now is given.
    pub fn grant_terms(&self, now_ms: u64) -> GrantTerms {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        GrantTerms {
            now_ms,
            access_ms: ms(self.config.access_token_lifetime),
            refresh_ms: ms(self.config.refresh_token_lifetime),
            code_ms: ms(self.config.auth_code_lifetime),
            tenant_id: self.config.tenant_id.clone(),
        }
    }

    /// Takes the next injected fault, if any: a counted one, else the outage's next.
    pub fn next_fault(&mut self) -> Option<FaultKind> {
        let Some((kind, left)) = self.faults.front_mut() else {
            let kind = *self
                .outage
                .get(self.outage_turn % self.outage.len().max(1))?;
            self.outage_turn = self.outage_turn.wrapping_add(1);
            return Some(kind);
        };
        let kind = *kind;
        *left -= 1;
        if *left == 0 {
            self.faults.pop_front();
        }
        Some(kind)
    }
}

/// What makes an address change in the emulated app, each with the status it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimEvent {
    /// The unsubscribe link in a Keap email → `Manual`; fires the action set.
    UnsubscribeLink,
    /// The mailbox provider's List-Unsubscribe → `ListUnsubscribe`.
    ListUnsubscribe,
    /// An ISP feedback-loop complaint → `Feedback`.
    Feedback,
    /// "This is spam" on the unsubscribe form → `Spam`; fires the action set.
    SpamForm,
    /// A user opts the address out in the app → `Admin`; fires nothing.
    ManualOptOut,
    HardBounce,
    SoftBounce,
    UnengagedMarketable,
    UnengagedNonMarketable,
    /// Any status, with no side effect.
    Set(EmailStatus),
}

impl SimEvent {
    pub fn from_name(name: &str, status: Option<EmailStatus>) -> Option<Self> {
        Some(match name {
            "unsubscribe_link" => Self::UnsubscribeLink,
            "list_unsubscribe" => Self::ListUnsubscribe,
            "feedback" => Self::Feedback,
            "spam_form" => Self::SpamForm,
            "manual_optout" => Self::ManualOptOut,
            "hard_bounce" => Self::HardBounce,
            "soft_bounce" => Self::SoftBounce,
            "unengaged_marketable" => Self::UnengagedMarketable,
            "unengaged_non_marketable" => Self::UnengagedNonMarketable,
            "set" => Self::Set(status?),
            _ => return None,
        })
    }

    pub fn status(self) -> EmailStatus {
        use EmailStatus as S;
        match self {
            Self::UnsubscribeLink => S::Manual,
            Self::ListUnsubscribe => S::ListUnsubscribe,
            Self::Feedback => S::Feedback,
            Self::SpamForm => S::Spam,
            Self::ManualOptOut => S::Admin,
            Self::HardBounce => S::HardBounce,
            Self::SoftBounce => S::Bounce,
            Self::UnengagedMarketable => S::UnengagedMarketable,
            Self::UnengagedNonMarketable => S::UnengagedNonMarketable,
            Self::Set(s) => s,
        }
    }

    fn fires_action_set(self, config: &SimConfig) -> bool {
        let t = &config.action_set_triggers;
        match self {
            Self::UnsubscribeLink => t.manual,
            Self::SpamForm => t.spam,
            Self::ManualOptOut => t.admin,
            Self::ListUnsubscribe => t.list_unsubscribe,
            Self::Feedback => t.feedback,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventOutcome {
    pub email: String,
    pub before: Option<String>,
    pub status: String,
    /// Contacts the action set was posted for.
    pub posted_for: Vec<i64>,
}

/// The state shared by the server's handlers and the in-process handle.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    pub clock: SimClock,
    http: reqwest::Client,
    posts: Notify,
}

pub fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Shared {
    pub fn new(config: SimConfig, clock: SimClock) -> Result<Arc<Self>, SimError> {
        let http = reqwest::Client::builder()
            .timeout(config.action_set_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SimError::Http(e.to_string()))?;
        Ok(Arc::new(Self {
            state: Mutex::new(State::new(config)),
            clock,
            http,
            posts: Notify::new(),
        }))
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A handler that panicked mid-update cannot leave the data half-written in a way the
        // emulator cares about; keep serving rather than poisoning every later test.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Applies a simulated event to an address and fires the action set if Keap would.
    pub fn apply_event(
        self: &Arc<Self>,
        email: &str,
        event: SimEvent,
        contact: Option<i64>,
    ) -> Result<EventOutcome, SimError> {
        let now = self.now_ms();
        let (change, holders, fire) = {
            let mut st = self.lock();
            let holders = st.store.holders(email);
            if st.store.row(email).is_none() && holders.is_empty() {
                return Err(SimError::UnknownAddress(email.to_string()));
            }
            let reason = format!("sim event {event:?}");
            let change = st.store.set_status(email, event.status(), &reason, now);
            let targets = match contact {
                Some(c) if holders.contains(&c) => vec![c],
                Some(c) => return Err(SimError::UnknownContact(c)),
                None => holders,
            };
            (change, targets, event.fires_action_set(&st.config))
        };
        let posted_for = if fire {
            self.post_action_set(&holders)
        } else {
            Vec::new()
        };
        Ok(EventOutcome {
            email: email.to_string(),
            before: change.before.map(|s| s.type_name().to_string()),
            status: change.after.type_name().to_string(),
            posted_for,
        })
    }

    /// An opt-out made through the API: fires the action set only if configured to.
    pub fn after_api_opt_out(self: &Arc<Self>, email: &str, change: Change) {
        if !change.changed() {
            return;
        }
        let holders = {
            let st = self.lock();
            if !st.config.action_set_triggers.api {
                return;
            }
            st.store.holders(email)
        };
        self.post_action_set(&holders);
    }

    /// Posts each contact's fields (see [`action_set_form`]),
    /// to the configured URL (whose own query string is kept), retrying on non-2xx.
    fn post_action_set(self: &Arc<Self>, contacts: &[i64]) -> Vec<i64> {
        let (url, attempts, backoff, bodies) = {
            let st = self.lock();
            let Some(url) = st.config.action_set_url.clone() else {
                return Vec::new();
            };
            let bodies: Vec<(i64, Vec<(String, String)>)> = contacts
                .iter()
                .filter_map(|id| st.store.contacts.get(id))
                .map(|c| {
                    let f = action_set_form(c);
                    (c.id, f)
                })
                .collect();
            (
                url,
                st.config.action_set_attempts.max(1),
                st.config.action_set_backoff,
                bodies,
            )
        };
        let ids = bodies.iter().map(|(id, _)| *id).collect();
        for (contact_id, form) in bodies {
            let me = Arc::clone(self);
            let url = url.clone();
            tokio::spawn(async move {
                me.deliver(url, contact_id, form, attempts, backoff).await;
            });
        }
        ids
    }

    async fn deliver(
        &self,
        url: String,
        contact_id: i64,
        form: Vec<(String, String)>,
        attempts: u32,
        backoff: Duration,
    ) {
        let mut delay = backoff;
        for attempt in 1..=attempts {
            let status = match self.http.post(&url).form(&form).send().await {
                Ok(r) => r.status().as_u16(),
                Err(e) => {
                    tracing::debug!(error = %e, "action-set post failed");
                    0
                }
            };
            {
                let mut st = self.lock();
                st.stats.action_posts.push(ActionPost {
                    url: url.clone(),
                    status,
                    at: rfc3339(self.now_ms()),
                    contact_id,
                    attempt,
                });
            }
            self.posts.notify_waiters();
            if (200..300).contains(&status) {
                return;
            }
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }

    /// Waits until at least `n` action-post attempts have been recorded.
    pub async fn wait_action_posts(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ActionPost>, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.posts.notified();
            {
                let st = self.lock();
                if st.stats.action_posts.len() >= n {
                    return Ok(st.stats.action_posts.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(SimError::Timeout(format!("{n} action posts")));
            }
        }
    }
}

/// The fields a legacy action set posts for a contact: every field of the record by its
/// XML-RPC name, empty ones as the string `null`, custom fields by name without the leading
/// `_`, and `contactId` (what receivers read).
pub fn action_set_form(c: &crate::store::Contact) -> Vec<(String, String)> {
    let or_null = |v: Option<&str>| {
        v.filter(|v| !v.is_empty())
            .map_or_else(|| "null".to_string(), str::to_string)
    };
    let date = |ms: u64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .ok()
            })
    };
    let mut f = vec![
        ("contactId".to_string(), c.id.to_string()),
        ("Id".to_string(), c.id.to_string()),
        ("FirstName".to_string(), or_null(Some(&c.first_name))),
        ("LastName".to_string(), or_null(Some(&c.last_name))),
    ];
    for (field, e) in keap::EmailField::ALL.iter().zip(&c.emails) {
        f.push((field.xmlrpc_name().to_string(), or_null(e.as_deref())));
    }
    for name in [
        "Company",
        "JobTitle",
        "Phone1",
        "Phone2",
        "StreetAddress1",
        "StreetAddress2",
        "City",
        "State",
        "PostalCode",
        "Country",
        "Leadsource",
        "ContactType",
        "OwnerID",
    ] {
        f.push((name.to_string(), "null".to_string()));
    }
    f.push((
        "DateCreated".into(),
        or_null(date(c.date_created_ms).as_deref()),
    ));
    f.push((
        "LastUpdated".into(),
        or_null(date(c.last_updated_ms).as_deref()),
    ));
    // A custom field (`_RelayAlias` in Keap's field list), posted without its underscore.
    f.push(("RelayAlias".into(), "null".into()));
    f
}
