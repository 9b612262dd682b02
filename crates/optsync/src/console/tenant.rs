//! What the tenant page shows: the 30-day chart, blocked and dead jobs, recent events, and
//! the providers configured with their last delivery.

use super::chart;
use super::format::{
    KnownAddresses, contact_in_words, event_view, moment, provider_name, provider_source,
    state_in_words, stuck,
};
use super::views::{EventView, ProviderView, StuckJob};
use crate::clock::Millis;
use crate::clock::Now as _;
use crate::error::Result;
use crate::report::{self, Period};
use crate::state::AppState;
use crate::store::TenantRow;

const DAY_MS: i64 = 86_400_000;

pub type Parts = (String, Vec<StuckJob>, Vec<EventView>, Vec<ProviderView>);

async fn chart_svg(state: &AppState, t: &TenantRow, now: Millis) -> Result<String> {
    let today = now - now.as_i64().rem_euclid(DAY_MS);
    let p = Period {
        app: Some(t.app.clone()),
        since: today - 29 * DAY_MS,
        until: now + 1,
    };
    let r = report::build(&state.store, &p).await?;
    let lat: Vec<(i64, i64)> = r
        .opt_outs
        .iter()
        .filter_map(|l| l.latency_ms.map(|m| (l.received_at.as_i64(), m)))
        .collect();
    Ok(chart::svg(&chart::days(&lat, today.as_i64())))
}

async fn stuck_jobs(
    state: &AppState,
    t: &TenantRow,
    known: &KnownAddresses,
) -> Result<Vec<StuckJob>> {
    let mut out: Vec<StuckJob> = Vec::new();
    for e in state.store.events(Some(t.id), None, 500).await? {
        let (Some(job), Some(st)) = (e.job_id, e.job_state) else {
            continue;
        };
        if !stuck(st) || out.iter().any(|j| j.job_id == job) {
            continue;
        }
        out.push(StuckJob {
            job_id: job,
            state: state_in_words(st).to_string(),
            subject: contact_in_words(e.contact_id),
            addresses: known.of(e.email.as_deref(), e.contact_id),
            attempts: e.attempts.unwrap_or_default(),
            why: e.last_error.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

async fn providers(state: &AppState, t: &TenantRow) -> Result<Vec<ProviderView>> {
    let mut out = Vec::new();
    for (name, at) in state.store.providers(t.id).await? {
        let last = match provider_source(&name) {
            Some(src) => state.store.last_received(t.id, src).await?,
            None => None,
        };
        let provider = crate::providers::Provider::from_name(&name);
        let url = provider
            .map(|p| state.tenants.provider_url(&t.app, p))
            .unwrap_or_default();
        out.push(ProviderView {
            name: provider.map_or(name, |p| provider_name(p).to_string()),
            configured: moment(Some(at)),
            last: moment(last),
            url,
        });
    }
    Ok(out)
}

pub async fn parts(state: &AppState, t: &TenantRow) -> Result<Parts> {
    let now = state.clock.now();
    let known = KnownAddresses::from_audit(&state.store.audit(Some(t.id), None, 1000).await?);
    let events = state
        .store
        .events(Some(t.id), None, 50)
        .await?
        .iter()
        .map(|e| event_view(e, &known))
        .collect();
    Ok((
        chart_svg(state, t, now).await?,
        stuck_jobs(state, t, &known).await?,
        events,
        providers(state, t).await?,
    ))
}
