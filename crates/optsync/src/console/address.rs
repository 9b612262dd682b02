//! "Why did this person get mail?": every event and decision about an address across
//! tenants, and its status in Keap read live on request.

use keap::EmailAddress;

use super::format::{event_view, rule_in_words, when};
use super::views::{DecisionView, EventView, LiveView};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Contacts read live per tenant at most.
const MAX_LIVE_CONTACTS: usize = 10;

pub async fn history(state: &AppState, email: &str) -> Result<(Vec<EventView>, Vec<DecisionView>)> {
    let events = state
        .store
        .events_for_email(email, 200)
        .await?
        .iter()
        .map(event_view)
        .collect();
    let decisions = state
        .store
        .audit(None, Some(email), 200)
        .await?
        .into_iter()
        .map(|a| {
            let d = a.decision;
            let status = |s: Option<keap::EmailStatus>| s.map_or("—", |s| s.type_name());
            DecisionView {
                at: when(Some(a.honoured_at)),
                app: a.app.unwrap_or_default(),
                contact: d.contact.map(|c| c.to_string()).unwrap_or_default(),
                change: format!("{} → {}", status(d.before), status(d.after)),
                action: d.action.to_string(),
                rule: rule_in_words(d.action, d.rule.as_ref()),
            }
        })
        .collect();
    Ok((events, decisions))
}

/// The address's status in every tenant's Keap, read now.
pub async fn live(state: &AppState, email: &str) -> Result<Vec<LiveView>> {
    let address = EmailAddress::parse(email)
        .map_err(|_| Error::BadInput(format!("{email:?} is not an email address")))?;
    let mut out = Vec::new();
    for t in state.store.tenants().await? {
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
                        a.status.to_string()
                    }),
                Err(e) => format!("could not read: {e}"),
            };
            out.push(LiveView {
                app: t.app.clone(),
                contact: id.to_string(),
                status,
            });
        }
    }
    Ok(out)
}
