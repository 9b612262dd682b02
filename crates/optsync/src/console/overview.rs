//! The overview: one row per tenant with its queue, time to honour, quota, learned path,
//! last sweep and a verdict in plain words; and the console's recent actions.

use super::format::{console_action_in_words, dur, moment, path_in_words};
use super::views::{ActionRow, OverviewRow};
use crate::clock::Millis;
use crate::clock::Now as _;
use crate::error::Result;
use crate::report::{self, Period};
use crate::state::AppState;
use crate::store::{JobState, TenantOverview, TenantRow};

const DAY_MS: i64 = 86_400_000;
/// A tenant whose Keap posts stopped this long ago is flagged.
const QUIET_POSTS_MS: i64 = 7 * DAY_MS;

/// The verdict and its reason: whatever leaves someone mailable comes first.
fn health(t: &TenantOverview, now: Millis) -> (bool, String) {
    if t.dead_subjects > 0 {
        return (
            false,
            format!(
                "{} opt-out(s) dead: retry them from the app's page",
                t.dead_subjects
            ),
        );
    }
    if t.blocked_subjects > 0 {
        return (
            false,
            format!(
                "{} opt-out(s) blocked: no opt-out path works (run optsync doctor)",
                t.blocked_subjects
            ),
        );
    }
    match t.last_post_at {
        Some(at) if now - at > QUIET_POSTS_MS => (
            false,
            format!(
                "no Keap post for {} days: is Keap's action set still posting?",
                (now - at) / DAY_MS
            ),
        ),
        None => (true, "healthy; no Keap post received yet".into()),
        Some(_) => (true, "healthy".into()),
    }
}

/// p50 / p99 of one tenant's opt-outs received in the last `days`.
async fn percentiles(state: &AppState, app: &str, now: Millis, days: i64) -> Result<String> {
    let p = Period {
        app: Some(app.to_string()),
        since: now - days * DAY_MS,
        until: now + 1,
    };
    let s = report::build(&state.store, &p).await?.summary;
    Ok(format!(
        "{} / {} ({} honoured)",
        dur(s.p50_ms),
        dur(s.p99_ms),
        s.honoured
    ))
}

async fn row(
    state: &AppState,
    t: &TenantOverview,
    tenants: &[TenantRow],
    now: Millis,
) -> Result<OverviewRow> {
    let n = |s: JobState| t.jobs.get(&s).copied().unwrap_or(0);
    let row = tenants.iter().find(|r| r.id == t.tenant_id);
    let quota = row
        .and_then(|r| state.clients.client(r).ok())
        .and_then(|c| c.pacer().budget().daily_remaining)
        .map_or_else(|| "unlimited".into(), |q| q.to_string());
    let (path, path_at) = match row.and_then(|r| r.opt_out_path.map(|p| (p, r.opt_out_path_at))) {
        Some((p, at)) => (path_in_words(p).to_string(), moment(at)),
        None => ("not learned yet".into(), moment(None)),
    };
    let (healthy, health) = health(t, now);
    Ok(OverviewRow {
        app: t.app.clone(),
        healthy,
        health,
        last_post: moment(t.last_post_at),
        pending: n(JobState::Pending),
        running: n(JobState::Running),
        blocked: n(JobState::Blocked),
        dead: n(JobState::Dead),
        day: percentiles(state, &t.app, now, 1).await?,
        month: percentiles(state, &t.app, now, 30).await?,
        quota,
        path,
        path_at,
        last_sweep: moment(t.last_sweep_at),
    })
}

pub async fn rows(state: &AppState) -> Result<(Vec<OverviewRow>, Vec<ActionRow>)> {
    let now = state.clock.now();
    let tenants = state.store.tenants().await?;
    let mut rows = Vec::new();
    for t in state.store.overview().await? {
        rows.push(row(state, &t, &tenants, now).await?);
    }
    let actions = state
        .store
        .admin_actions(20)
        .await?
        .into_iter()
        .map(|a| ActionRow {
            at: moment(Some(a.at)),
            user: a.user_name,
            action: console_action_in_words(&a.action),
            target: a.target,
            detail: a.detail.unwrap_or_default(),
        })
        .collect();
    Ok((rows, actions))
}
