//! The emulator's settings, including a switch for every behaviour of Keap's that is not
//! known for certain (`reference/keap-api.md` §14). Each default is the most plausible reading
//! of the evidence and is stated on the field.

use std::time::Duration;

use keap::{EmailStatus, Limits};

/// Which product limits the gateway applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throttle {
    /// No limits; usage is still counted in `/sim/stats`.
    Off,
    /// Each credential gets the limits of its kind: API keys the service-account profile
    /// (10/s, 240/min, 30,000/day), bearer tokens their OAuth client's (1,500/min,
    /// 150,000/day); the app as a whole 10,000/min and 250,000/day.
    Real,
    /// Every credential gets these limits (scaled-down profiles for tests); the app's limits
    /// still apply when `tenant` is set.
    Custom {
        product: Limits,
        tenant: Option<Limits>,
    },
}

impl Throttle {
    /// `pat`: the service-account profile for every credential. `oauth`: the OAuth-client
    /// profile for every credential. `real`: by credential kind. `off`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "off" => Some(Self::Off),
            "real" => Some(Self::Real),
            "pat" => Some(Self::Custom {
                product: Limits::service_account(),
                tenant: Some(Limits::tenant()),
            }),
            "oauth" => Some(Self::Custom {
                product: Limits::oauth_client(),
                tenant: Some(Limits::tenant()),
            }),
            _ => None,
        }
    }
}

/// What a REST v2 `PATCH …/status {"opted_in": false}` does; Keap documents only the opt-in
/// direction, so every reading is a guess and each is a world to test against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestOptOut {
    /// Writes this status (default `Admin`: an opt-out made by a user of the app).
    Set(EmailStatus),
    /// Answers 200 with the status unchanged (Keap ignores the request).
    SilentNoOp,
    /// Answers 400 with the `Error` schema (Keap refuses an opt-out over REST).
    Reject,
}

/// What the gateway's 401 looks like: Apigee's fault (seen on v1 and XML-RPC), or the v2
/// document's `Error` schema (declared for 401, never captured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthorized401 {
    Apigee,
    ErrorSchema,
}

/// Which body a 429 carries (three shapes have been seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleBody {
    /// Pick by the limit that was hit: spike → SpikeArrestViolation, daily → QuotaViolation,
    /// minute → the v2-style `{"code":"429","message":"Quota Exceeded",…}`.
    ByLimit,
    V2,
    QuotaViolation,
    SpikeArrest,
}

/// Which opt-outs fire the "When someone opts out of all email marketing" action set. Keap
/// fires it for the unsubscribe link; the rest is unknown or known not to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSetTriggers {
    /// Unsubscribe link (`Manual`): fires (documented).
    pub manual: bool,
    /// "This is spam" on the unsubscribe form (`Spam`): same form flow, so on (inferred).
    pub spam: bool,
    /// A user's opt-out in the app (`Admin`): does not fire (documented by the setup guide).
    pub admin: bool,
    /// `APIEmailService.optOut` / REST opt-out: off (inferred: an admin-style opt-out).
    pub api: bool,
    /// List-Unsubscribe: off (unknown).
    pub list_unsubscribe: bool,
    /// ISP complaint (`Feedback`): off (unknown).
    pub feedback: bool,
}

impl Default for ActionSetTriggers {
    fn default() -> Self {
        Self {
            manual: true,
            spam: true,
            admin: false,
            api: false,
            list_unsubscribe: false,
            feedback: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `X-Keap-API-Key` values accepted (service account keys / PATs).
    pub api_keys: Vec<String>,
    /// OAuth clients: (client id, client secret).
    pub oauth_clients: Vec<(String, String)>,
    /// Lifetime of issued access tokens (Keap: 24 h).
    pub access_token_lifetime: Duration,
    /// Lifetime of issued refresh tokens (Keap: 45 days; each works once).
    pub refresh_token_lifetime: Duration,
    /// Lifetime of an authorization code (Keap does not say; OAuth's advice is at most ten
    /// minutes, so ten).
    pub auth_code_lifetime: Duration,
    /// Accept `?access_token=` on the URL (old Mashery-era clients).
    pub accept_query_token: bool,
    pub throttle: Throttle,
    pub throttle_body: ThrottleBody,
    pub rest_opt_out: RestOptOut,
    /// XML-RPC is served (Keap switches it off on 2026-12-31, after brownouts). Off, its
    /// routes answer 503 with an HTML page, never an XML-RPC fault.
    pub xmlrpc_available: bool,
    /// A contact read without `fields` includes `id` (unknown: the v2 document makes `id` a
    /// selectable field; default off, so a client must ask for it).
    pub contact_id_by_default: bool,
    pub unauthorized_401: Unauthorized401,
    /// Status `APIEmailService.optOut` writes (unknown; default `Admin`).
    pub xmlrpc_opt_out_status: EmailStatus,
    /// Whether REST v2 opt-in may revive an `Admin` opt-out (Keap's text says "Opt-Out:
    /// Manual", most likely meaning the user-applied one; default on).
    pub rest_opt_in_from_admin: bool,
    /// Whether XML-RPC `optIn` may revive `UnengagedMarketable` (mirrors v2; default off).
    pub xmlrpc_opt_in_from_unengaged_marketable: bool,
    pub action_set_url: Option<String>,
    pub action_set_triggers: ActionSetTriggers,
    /// Attempts per action-set post before giving up ("a few times"; default 3).
    pub action_set_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub action_set_backoff: Duration,
    /// The receiver's time to answer an action-set post.
    pub action_set_timeout: Duration,
    /// Added to every gateway call before it is answered: Keap's real round trip (hundreds of
    /// milliseconds) as part of the picture.
    pub latency: Duration,
    /// How long an injected `timeout` fault holds the request before answering 504.
    pub fault_timeout_delay: Duration,
    /// The app (`APP.infusionsoft.com`): sent in `x-keap-tenant-id`, named on the consent
    /// page and in the `scope` of every token answer (`full|APP.infusionsoft.com`).
    pub tenant_id: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            oauth_clients: Vec::new(),
            access_token_lifetime: Duration::from_secs(24 * 3600),
            refresh_token_lifetime: Duration::from_secs(45 * 24 * 3600),
            auth_code_lifetime: Duration::from_secs(600),
            accept_query_token: false,
            throttle: Throttle::Off,
            throttle_body: ThrottleBody::ByLimit,
            rest_opt_out: RestOptOut::Set(EmailStatus::Admin),
            xmlrpc_available: true,
            contact_id_by_default: false,
            unauthorized_401: Unauthorized401::Apigee,
            xmlrpc_opt_out_status: EmailStatus::Admin,
            rest_opt_in_from_admin: true,
            xmlrpc_opt_in_from_unengaged_marketable: false,
            action_set_url: None,
            action_set_triggers: ActionSetTriggers::default(),
            action_set_attempts: 3,
            action_set_backoff: Duration::from_millis(200),
            action_set_timeout: Duration::from_secs(10),
            latency: Duration::ZERO,
            fault_timeout_delay: Duration::from_secs(60),
            tenant_id: "sim.infusionsoft.com".into(),
        }
    }
}
