//! "Why did this person get mail?": every event and decision about an address across
//! tenants, and its status in Keap read live on request.

use keap::EmailAddress;

use super::format::{
    KnownAddresses, change_in_words, contact_in_words, decision_in_words, event_view, moment,
    rule_in_words, status_in_words,
};
use super::views::{DecisionView, EventView, LiveView, SuppressedView};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::TenantRow;

/// Contacts read live per tenant at most.
const MAX_LIVE_CONTACTS: usize = 10;

pub async fn history(state: &AppState, email: &str) -> Result<(Vec<EventView>, Vec<DecisionView>)> {
    let audit = state.store.audit(None, Some(email), 200).await?;
    let known = KnownAddresses::from_audit(&audit);
    let events = state
        .store
        .events_for_email(email, 200)
        .await?
        .iter()
        .map(|e| event_view(e, &known))
        .collect();
    let decisions = audit
        .into_iter()
        .map(|a| {
            let d = a.decision;
            DecisionView {
                at: moment(Some(a.honoured_at)),
                app: a.app.unwrap_or_default(),
                contact: contact_in_words(d.contact.map(|c| c.get())),
                change: change_in_words(d.before, d.after),
                action: decision_in_words(d.action).to_string(),
                rule: rule_in_words(d.action, d.rule.as_ref()),
            }
        })
        .collect();
    Ok((events, decisions))
}

/// Where the address was suppressed at the sending providers, newest first.
pub async fn suppressed(state: &AppState, email: &str) -> Result<Vec<SuppressedView>> {
    let rows = state.store.suppressions(None, Some(email), 50).await?;
    Ok(rows
        .into_iter()
        .map(|(app, s)| SuppressedView {
            at: moment(Some(s.suppressed_at)),
            app,
            provider: s.provider.title().into(),
            scope: s.scope,
            after: format!(
                "{:.1} s",
                (s.suppressed_at - s.requested_at) as f64 / 1000.0
            ),
        })
        .collect())
}

/// The address's status, read now, in the Keap of every tenant where it has been seen (an
/// event or decision naming it, a sweep that indexed it, a write of ours) and that `visible`
/// admits: an instance serving a thousand apps asks the few that know the address, not all
/// of them, and a customer's lookup asks only their own apps.
pub async fn live(
    state: &AppState,
    email: &str,
    visible: impl Fn(&str) -> bool,
) -> Result<Vec<LiveView>> {
    let address = EmailAddress::parse(email)
        .map_err(|_| Error::BadInput(format!("{email:?} is not an email address")))?;
    let mut out = Vec::new();
    let seen_in = state
        .store
        .tenants_that_saw(&address.to_string(), &address.key())
        .await?;
    for t in seen_in.into_iter().filter(|t| visible(&t.app)) {
        let client = state.clients.client(&t)?.scoped();
        let holders = match client.contacts_with_address(&address).await {
            Ok(h) => h,
            Err(e) => {
                out.push(LiveView {
                    app: t.app.clone(),
                    contact: String::new(),
                    status: format!("could not ask Keap: {e}"),
                });
                continue;
            }
        };
        for id in holders.into_iter().take(MAX_LIVE_CONTACTS) {
            let status = match client.contact(id).await {
                Ok(c) => c
                    .addresses
                    .iter()
                    .find(|a| a.email.key() == address.key())
                    .map_or("not on the contact any more".into(), |a| {
                        status_in_words(a.status)
                    }),
                Err(e) => format!("could not read: {e}"),
            };
            out.push(LiveView {
                app: t.app.clone(),
                contact: contact_in_words(Some(id.get())),
                status,
            });
        }
        out.extend(provider_lists(state, &t, &address).await?);
    }
    Ok(out)
}

/// The address on each of the tenant's push providers' lists, read now (one read per list).
async fn provider_lists(
    state: &AppState,
    t: &TenantRow,
    address: &EmailAddress,
) -> Result<Vec<LiveView>> {
    let mut out = Vec::new();
    for config in crate::push::load(&state.store, state.tenants.secrets(), t).await? {
        let options = suppress::Options {
            clock: state.clock.clone(),
            ..suppress::Options::default()
        };
        let read = match state.push_clients.get(t.id, &config, options) {
            Ok(client) => client.lookup(address.as_str()).await,
            Err(e) => Err(e),
        };
        let status = match read {
            Ok(Some(s)) => lists_in_words(&s),
            Ok(None) => "no read call: written by optsync, not readable".into(),
            Err(e) => format!("could not ask: {e}"),
        };
        out.push(LiveView {
            app: t.app.clone(),
            contact: format!("{} list", config.provider()),
            status,
        });
    }
    Ok(out)
}

/// `on the list: us-east-1, eu-west-1` / `not on the list: outbound`.
fn lists_in_words(s: &suppress::Suppressed) -> String {
    let name = |scope: &suppress::Scope| match scope {
        suppress::Scope::Region(x)
        | suppress::Scope::Domain(x)
        | suppress::Scope::Stream(x)
        | suppress::Scope::Sender(x) => x.clone(),
        suppress::Scope::Type(x) => (*x).to_string(),
        suppress::Scope::Account => "the account".into(),
        suppress::Scope::Campaigns => "campaigns".into(),
    };
    let on: Vec<String> = s
        .scopes
        .iter()
        .filter(|(_, v)| *v)
        .map(|(x, _)| name(x))
        .collect();
    let off: Vec<String> = s
        .scopes
        .iter()
        .filter(|(_, v)| !*v)
        .map(|(x, _)| name(x))
        .collect();
    match (on.is_empty(), off.is_empty()) {
        (false, true) => format!("on the list: {}", on.join(", ")),
        (true, _) => format!("not on the list: {}", off.join(", ")),
        (false, false) => format!("on: {}; not on: {}", on.join(", "), off.join(", ")),
    }
}
