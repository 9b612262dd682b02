//! How the console words and formats what it shows: times, durations, events, decisions.
//! Pure functions, shared by the pages' data gatherers.

use super::views::EventView;
use crate::clock::Millis;
use crate::clock::rfc3339;
use crate::store::{AuditAction, EventSource, EventSummary, JobState, Rule};

pub fn when(at: Option<Millis>) -> String {
    at.map(rfc3339).unwrap_or_else(|| "—".into())
}

pub fn dur(ms: Option<i64>) -> String {
    match ms {
        None => "—".into(),
        Some(m) if m < 60_000 => format!("{:.1} s", m as f64 / 1000.0),
        Some(m) if m < 3_600_000 => format!("{:.1} min", m as f64 / 60_000.0),
        Some(m) => format!("{:.1} h", m as f64 / 3_600_000.0),
    }
}

pub fn event_view(e: &EventSummary) -> EventView {
    EventView {
        id: e.id.get(),
        app: e.app.clone(),
        received: rfc3339(e.received_at),
        source: e.source.to_string(),
        kind: e.kind.to_string(),
        contact: e.contact_id.map(|c| c.to_string()).unwrap_or_default(),
        email: e.email.clone().unwrap_or_default(),
        job: match (e.job_id, e.job_state) {
            (Some(id), Some(st)) => format!("{id} ({st})"),
            _ => "—".into(),
        },
        honoured: when(e.honoured_at),
    }
}

/// Whether a job state is one the tenant page offers to retry.
pub fn stuck(state: JobState) -> bool {
    matches!(state, JobState::Blocked | JobState::Dead)
}

/// The words for one decision about an address.
pub fn rule_in_words(action: AuditAction, rule: Option<&Rule>) -> String {
    match (action, rule) {
        (AuditAction::OptedOut, Some(Rule::Propagation { source })) => format!(
            "Opted out: {source} holds a stop status on this contact, and every address of a contact holding a stop source is opted out."
        ),
        (AuditAction::OptedOut, Some(Rule::Bounce)) => {
            "Opted out, this address alone: hard bounce.".into()
        }
        (AuditAction::OptedOut, None) => "Opted out.".into(),
        (action, _) => action_in_words(action),
    }
}

/// The words for what was found about an address that was not written.
fn action_in_words(action: AuditAction) -> String {
    match action {
        AuditAction::OptedOut => "Opted out.".into(),
        AuditAction::AlreadyStopped => "Already in a stop status; nothing written.".into(),
        AuditAction::Terminal => {
            "In a terminal status (bounced, invalid, …) that nobody changes; nothing written."
                .into()
        }
        AuditAction::NotTargeted => {
            "No stop source on this contact: nothing asks for this address to be opted out.".into()
        }
        AuditAction::Unverified => {
            "A write was sent but the read-back did not show a stop status; tried again.".into()
        }
        AuditAction::ContactNotFound => "Keap has no such contact; nothing to honour.".into(),
        AuditAction::NoHolder => "No contact in Keap holds this address; nothing to honour.".into(),
    }
}

/// Where each provider's last delivery came from, for the tenant page.
pub fn provider_source(name: &str) -> Option<EventSource> {
    crate::providers::Provider::from_name(name).map(EventSource::Provider)
}
