//! How the console words and formats what it shows: times, durations, events, job states,
//! decisions, Keap statuses and console actions — in sentences a customer can read, never
//! the stored identifiers (`keap_post`, `already_stopped`, …). Pure functions, shared by
//! every page's data gatherer; the one place the console's words live.

use std::collections::HashMap;

use keap::EmailStatus;

pub use super::moment::{Moment, day, utc_text};
use super::views::EventView;
use crate::clock::Millis;
use crate::providers::Provider;
use crate::store::{
    AddressDecision, AuditAction, AuditEntry, EventKind, EventSource, EventSummary, JobState,
    OptOutApi, Rule,
};

pub fn moment(at: Option<Millis>) -> Moment {
    Moment::maybe(at)
}

/// A moment as plain text (UTC, to the minute), for places that cannot hold a `<time>`.
pub fn when(at: Option<Millis>) -> String {
    at.map(utc_text).unwrap_or_else(|| "—".into())
}

pub fn dur(ms: Option<i64>) -> String {
    match ms {
        None => "—".into(),
        Some(m) if m < 1000 => format!("{m} ms"),
        Some(m) if m < 60_000 => format!("{:.1} s", m as f64 / 1000.0),
        Some(m) if m < 3_600_000 => format!("{:.1} min", m as f64 / 60_000.0),
        Some(m) => format!("{:.1} h", m as f64 / 3_600_000.0),
    }
}

/// The name a provider goes by.
pub fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Ses => "Amazon SES",
        Provider::Sendgrid => "SendGrid",
        Provider::Mailgun => "Mailgun",
        Provider::Postmark => "Postmark",
        Provider::Sparkpost => "SparkPost",
        Provider::Mandrill => "Mandrill",
        Provider::Mailjet => "Mailjet",
        Provider::Brevo => "Brevo",
    }
}

/// Where an event came from, in words.
pub fn source_in_words(s: EventSource) -> String {
    match s {
        EventSource::KeapPost => "Keap's opt-out post".into(),
        EventSource::Fanout => "another contact with the same address".into(),
        EventSource::Reconcile => "the nightly check".into(),
        EventSource::Provider(p) => format!("{}'s webhook", provider_name(p)),
    }
}

/// What an event says, in words.
pub fn kind_in_words(k: EventKind) -> &'static str {
    match k {
        EventKind::OptOut => "opted out of all email",
        EventKind::SharedAddress => "shares an address with an opted-out contact",
        EventKind::Discrepancy => "found by the nightly check",
        EventKind::Unsubscribe => "unsubscribed",
        EventKind::Complaint => "marked the mail as spam",
        EventKind::HardBounce => "hard bounce",
        EventKind::Suppressed => "on the provider's suppression list",
        EventKind::SoftBounce => "soft bounce",
        EventKind::Resubscribe => "subscribed again",
    }
}

/// What happened, in one phrase: where it came from and what it says, without saying the
/// same thing twice.
pub fn event_in_words(s: EventSource, k: EventKind) -> String {
    match (s, k) {
        (EventSource::KeapPost, EventKind::OptOut) => "Keap's opt-out post".into(),
        (EventSource::Reconcile, EventKind::Discrepancy) => "Found by the nightly check".into(),
        (EventSource::Fanout, EventKind::SharedAddress) => {
            "Shares an address with an opted-out contact".into()
        }
        (s, k) => capitalised(&format!("{} ({})", kind_in_words(k), source_in_words(s))),
    }
}

/// Where a job stands, in words.
pub fn state_in_words(s: JobState) -> &'static str {
    match s {
        JobState::Pending => "waiting to run",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::NotFound => "no such contact in Keap",
        JobState::Dead => "failed for good",
        JobState::Blocked => "blocked: no way to opt out works just now",
        JobState::Merged => "merged into another job",
        JobState::NoOptOut => "Keap showed no opt-out",
    }
}

/// What was decided about an address, in a few words (the full sentence is
/// [`rule_in_words`]).
pub fn decision_in_words(a: AuditAction) -> &'static str {
    match a {
        AuditAction::OptedOut => "opted out",
        AuditAction::AlreadyStopped => "already opted out",
        AuditAction::Terminal => "bounced or invalid; left as it is",
        AuditAction::NotTargeted => "not asked to opt out",
        AuditAction::Unverified => "written, not yet confirmed",
        AuditAction::ContactNotFound => "no such contact in Keap",
        AuditAction::NoHolder => "no contact holds it",
    }
}

/// A Keap status as Keap's own screens name it, and whether mail may go to it.
pub fn status_in_words(s: EmailStatus) -> String {
    let may = if s.is_marketable() {
        "mail may be sent"
    } else {
        "no marketing mail"
    };
    format!("{} ({may})", s.label())
}

/// One status before → after, as the address page shows a decision's change.
pub fn change_in_words(before: Option<EmailStatus>, after: Option<EmailStatus>) -> String {
    let label = |s: Option<EmailStatus>| s.map_or("—", EmailStatus::label);
    format!("{} → {}", label(before), label(after))
}

/// The way an app's opt-outs are written, as learned.
pub fn path_in_words(p: OptOutApi) -> &'static str {
    match p {
        OptOutApi::Rest => "Keap's REST API",
        OptOutApi::XmlRpc => "Keap's XML-RPC API",
    }
}

/// A console action as recorded (`retry_job`, …), in words; one this version does not know
/// is shown with spaces for underscores rather than as an identifier.
pub fn console_action_in_words(action: &str) -> String {
    match action {
        "sign_in" => "signed in".into(),
        "sign_out" => "signed out".into(),
        "reveal_post_url" => "showed the Post URL".into(),
        "retry_job" => "retried a job".into(),
        "live_status" => "read an address's status from Keap".into(),
        "rotate_post_url" => "made a new Post URL".into(),
        "invite" => "invited a customer".into(),
        "accept_invite" => "set a password through an invite".into(),
        "keap_connect" => "connected a Keap app".into(),
        other => other.replace('_', " "),
    }
}

/// Why an opt-out was not honoured: the report says `STATE` or `STATE: last error`; the
/// state is put in words, the error is kept as it is.
pub fn why_not_in_words(why: &str) -> String {
    let (state, rest) = match why.split_once(": ") {
        Some((s, r)) => (s, Some(r)),
        None => (why, None),
    };
    match (state.parse::<JobState>(), rest) {
        (Ok(s), Some(r)) => capitalised(&format!("{}: {r}", state_in_words(s))),
        (Ok(s), None) => capitalised(state_in_words(s)),
        (Err(_), _) if why == "no job" => "Not queued".into(),
        (Err(_), _) => why.into(),
    }
}

/// The job of an event and where it stands, in words.
pub fn job_in_words(id: Option<crate::store::JobId>, state: Option<JobState>) -> String {
    match (id, state) {
        (Some(id), Some(st)) => format!("job {id}: {}", state_in_words(st)),
        _ => "—".into(),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The addresses each contact was seen holding, from the audit: Keap's post names only a
/// contact, and a page shows the contact with its addresses.
#[derive(Debug, Default)]
pub struct KnownAddresses(HashMap<i64, Vec<String>>);

impl KnownAddresses {
    pub fn from_audit(entries: &[AuditEntry]) -> Self {
        Self::from_decisions(entries.iter().map(|a| &a.decision))
    }

    pub fn from_decisions<'a>(decisions: impl IntoIterator<Item = &'a AddressDecision>) -> Self {
        let mut map: HashMap<i64, Vec<String>> = HashMap::new();
        for d in decisions {
            let (Some(c), Some(e)) = (d.contact, d.email.as_ref()) else {
                continue;
            };
            let list = map.entry(c.get()).or_default();
            let e = e.to_string();
            if !list.iter().any(|x| x.eq_ignore_ascii_case(&e)) {
                list.push(e);
            }
        }
        Self(map)
    }

    /// The event's own address, else those its contact was seen holding.
    pub fn of(&self, email: Option<&str>, contact: Option<i64>) -> Vec<String> {
        match (email, contact) {
            (Some(e), _) if !e.is_empty() => vec![e.to_string()],
            (_, Some(c)) => self.0.get(&c).cloned().unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

pub fn contact_in_words(id: Option<i64>) -> String {
    id.map(|c| format!("contact {c}")).unwrap_or_default()
}

pub fn event_view(e: &EventSummary, known: &KnownAddresses) -> EventView {
    EventView {
        id: e.id.get(),
        app: e.app.clone(),
        received: Moment::at(e.received_at),
        what: event_in_words(e.source, e.kind),
        contact: contact_in_words(e.contact_id),
        addresses: known.of(e.email.as_deref(), e.contact_id),
        job: job_in_words(e.job_id, e.job_state),
        honoured: Moment::maybe(e.honoured_at),
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
    Provider::from_name(name).map(EventSource::Provider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keap::{ContactId, EmailAddress};

    /// 2026-11-30T12:17:07.514Z
    const AT: i64 = 1_796_041_027_514;

    fn every_source() -> Vec<EventSource> {
        let mut s = vec![
            EventSource::KeapPost,
            EventSource::Fanout,
            EventSource::Reconcile,
        ];
        s.extend(Provider::ALL.map(EventSource::Provider));
        s
    }

    /// A stored identifier showing through: snake case, or a source's `esp:` prefix.
    fn looks_like_an_identifier(words: &str) -> bool {
        words.contains('_') || words.contains("esp:")
    }

    #[test]
    fn a_missing_moment_is_a_dash() {
        assert_eq!(moment(None).to_string(), "—");
        assert_eq!(when(Some(Millis(AT))), "2026-11-30 12:17 UTC");
        assert_eq!(when(None), "—");
    }

    #[test]
    fn the_words_the_issue_names() {
        assert_eq!(
            source_in_words(EventSource::KeapPost),
            "Keap's opt-out post"
        );
        assert_eq!(
            decision_in_words(AuditAction::AlreadyStopped),
            "already opted out"
        );
        assert_eq!(
            kind_in_words(EventKind::Discrepancy),
            "found by the nightly check"
        );
        assert_eq!(
            event_in_words(
                EventSource::Provider(Provider::Sendgrid),
                EventKind::Unsubscribe
            ),
            "Unsubscribed (SendGrid's webhook)"
        );
    }

    #[test]
    fn no_stored_identifier_is_shown_as_words() {
        for s in every_source() {
            for k in EventKind::ALL {
                let w = event_in_words(s, *k);
                assert!(!looks_like_an_identifier(&w), "{s} {k}: {w}");
            }
            assert!(!looks_like_an_identifier(&source_in_words(s)), "{s}");
        }
        for s in JobState::ALL {
            assert!(!looks_like_an_identifier(state_in_words(*s)), "{s}");
        }
        for a in AuditAction::ALL {
            assert!(!looks_like_an_identifier(decision_in_words(*a)), "{a}");
            assert!(!looks_like_an_identifier(&rule_in_words(*a, None)), "{a}");
        }
        for p in [OptOutApi::Rest, OptOutApi::XmlRpc] {
            assert!(!looks_like_an_identifier(path_in_words(p)), "{p}");
        }
        for s in EmailStatus::ALL {
            assert!(!looks_like_an_identifier(&status_in_words(s)), "{s}");
        }
    }

    #[test]
    fn console_actions_in_words_even_unknown_ones() {
        assert_eq!(console_action_in_words("retry_job"), "retried a job");
        assert_eq!(
            console_action_in_words("reveal_post_url"),
            "showed the Post URL"
        );
        assert_eq!(console_action_in_words("send_invite"), "send invite");
        for recorded in ["invite", "accept_invite", "rotate_post_url"] {
            let words = console_action_in_words(recorded);
            assert!(words != recorded && !words.contains('_'), "{words}");
        }
    }

    #[test]
    fn why_not_honoured_puts_the_state_in_words_and_keeps_the_error() {
        assert_eq!(
            why_not_in_words("dead: Keap answered 500"),
            "Failed for good: Keap answered 500"
        );
        assert_eq!(why_not_in_words("no_opt_out"), "Keap showed no opt-out");
        assert_eq!(why_not_in_words("no job"), "Not queued");
        assert_eq!(why_not_in_words("something else"), "something else");
    }

    #[test]
    fn statuses_and_changes_read_as_keap_names_them() {
        assert_eq!(
            status_in_words(EmailStatus::Manual),
            "Opt-Out (no marketing mail)"
        );
        assert_eq!(
            change_in_words(Some(EmailStatus::SingleOptIn), Some(EmailStatus::Admin)),
            "Unconfirmed → Opt-Out: Admin"
        );
        assert_eq!(
            job_in_words(Some(crate::store::JobId(7)), Some(JobState::Blocked)),
            "job 7: blocked: no way to opt out works just now"
        );
    }

    #[test]
    fn a_contact_shows_the_addresses_it_was_seen_holding() {
        let email = |e: &str| EmailAddress::parse(e).ok();
        let c = ContactId::new(42);
        let decisions = [
            AddressDecision::found(c, email("a@x.example"), AuditAction::OptedOut),
            AddressDecision::found(c, email("A@x.example"), AuditAction::AlreadyStopped),
            AddressDecision::found(c, email("b@x.example"), AuditAction::OptedOut),
            AddressDecision::found(None, email("c@x.example"), AuditAction::NoHolder),
        ];
        let known = KnownAddresses::from_decisions(&decisions);
        assert_eq!(known.of(None, Some(42)), ["a@x.example", "b@x.example"]);
        assert_eq!(known.of(Some("d@x.example"), Some(42)), ["d@x.example"]);
        assert!(known.of(None, Some(7)).is_empty());
        assert_eq!(contact_in_words(Some(42)), "contact 42");
    }
}
