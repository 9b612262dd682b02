//! The console's pages as compile-time checked templates (`templates/`), and the rows they
//! show, already formatted: templates only lay out and escape.

use askama::Template;

use super::moment::Moment;
use crate::store::JobId;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub error: Option<String>,
    pub csrf: String,
    pub user: String,
}

pub struct OverviewRow {
    pub app: String,
    pub healthy: bool,
    pub health: String,
    pub last_post: Moment,
    pub pending: i64,
    pub running: i64,
    pub blocked: i64,
    pub dead: i64,
    pub day: String,
    pub month: String,
    pub quota: String,
    /// The way opt-outs are written, in words, and when it last worked.
    pub path: String,
    pub path_at: Moment,
    pub last_sweep: Moment,
}

pub struct ActionRow {
    pub at: Moment,
    pub user: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub csrf: String,
    pub user: String,
    pub rows: Vec<OverviewRow>,
    pub actions: Vec<ActionRow>,
    pub keap: super::connect_page::KeapView,
}

pub struct StuckJob {
    pub job_id: JobId,
    pub state: String,
    pub subject: String,
    pub addresses: Vec<String>,
    pub attempts: i64,
    pub why: String,
}

pub struct EventView {
    pub id: i64,
    pub app: String,
    pub received: Moment,
    /// Where it came from and what it says, in words.
    pub what: String,
    pub contact: String,
    /// The event's address, or those its contact was seen holding.
    pub addresses: Vec<String>,
    pub job: String,
    pub honoured: Moment,
}

pub struct ProviderView {
    pub name: String,
    pub configured: Moment,
    pub last: Moment,
    pub url: String,
}

#[derive(Template)]
#[template(path = "tenant.html")]
pub struct TenantPage {
    pub csrf: String,
    pub user: String,
    pub app: String,
    /// An SVG drawn by [`super::chart`] from numbers only.
    pub chart: String,
    pub stuck: Vec<StuckJob>,
    pub events: Vec<EventView>,
    pub providers: Vec<ProviderView>,
    pub post_url: Option<String>,
    pub keap: super::connect_page::KeapView,
}

pub struct DecisionView {
    pub at: Moment,
    pub app: String,
    pub contact: String,
    pub change: String,
    pub action: String,
    pub rule: String,
}

/// Where the address was put on a sending provider's own list, and when.
pub struct SuppressedView {
    pub at: Moment,
    pub app: String,
    pub provider: String,
    pub scope: String,
    /// Time to suppressed, from the opt-out's arrival.
    pub after: String,
}

pub struct LiveView {
    pub app: String,
    pub contact: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "address.html")]
pub struct AddressPage {
    pub csrf: String,
    pub user: String,
    pub email: String,
    pub events: Vec<EventView>,
    pub decisions: Vec<DecisionView>,
    pub suppressed: Vec<SuppressedView>,
    pub live: Vec<LiveView>,
}

pub struct ReportRow {
    pub received: Moment,
    pub honoured: Moment,
    pub latency: String,
    pub app: String,
    pub what: String,
    pub contact: String,
    /// Each address and what was done about it, in words.
    pub addresses: Vec<(String, &'static str)>,
    pub why: String,
}

#[derive(Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    pub csrf: String,
    pub user: String,
    /// The period's first and last day, as the date pickers hold them.
    pub since: String,
    pub until: String,
    pub app: String,
    /// Why the period asked for was refused (nothing else is shown then).
    pub error: Option<String>,
    pub query: String,
    pub summary: Vec<String>,
    pub rows: Vec<ReportRow>,
}
