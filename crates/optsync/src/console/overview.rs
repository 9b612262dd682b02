//! The overview: one row per tenant with its queue, time to honour, quota, learned path,
//! last sweep and a verdict in plain words; and the console's recent actions.

use std::collections::HashMap;

use super::format::{console_action_in_words, dur, moment, path_in_words};
use super::views::{ActionRow, OverviewRow};
use crate::clock::Millis;
use crate::clock::Now as _;
use crate::error::Result;
use crate::report;
use crate::state::AppState;
use crate::store::{HonourTimes, JobState, TenantId, TenantOverview};

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

/// Each tenant's honoured opt-outs in the last day and the last 30 days, by tenant id: one
/// query for every app, the numbers the report gives for each app and period.
type Times = HashMap<(TenantId, i64), HonourTimes>;

/// The periods the overview shows, in the order [`Times`] indexes them: the last 24 hours
/// and the last 30 days, as the report counts a period ending now.
fn periods(now: Millis) -> [(Millis, Millis); 2] {
    [(now - DAY_MS, now + 1), (now - 30 * DAY_MS, now + 1)]
}

/// p50 / p99 of one tenant's opt-outs in one period.
fn percentiles(times: &Times, tenant_id: TenantId, period: i64) -> String {
    let t = times.get(&(tenant_id, period));
    format!(
        "{} / {} ({} honoured)",
        dur(t.and_then(|t| t.p50_ms)),
        dur(t.and_then(|t| t.p99_ms)),
        t.map_or(0, |t| t.honoured)
    )
}

fn row(state: &AppState, t: &TenantOverview, times: &Times, now: Millis) -> OverviewRow {
    let n = |s: JobState| t.jobs.get(&s).copied().unwrap_or(0);
    let quota = state
        .clients
        .daily_remaining(&t.tenant)
        .ok()
        .flatten()
        .map_or_else(|| "unlimited".into(), |q| q.to_string());
    let (path, path_at) = match t.tenant.opt_out_path {
        Some(p) => (
            path_in_words(p).to_string(),
            moment(t.tenant.opt_out_path_at),
        ),
        None => ("not learned yet".into(), moment(None)),
    };
    let (healthy, health) = health(t, now);
    OverviewRow {
        app: t.app().to_string(),
        healthy,
        health,
        last_post: moment(t.last_post_at),
        pending: n(JobState::Pending),
        running: n(JobState::Running),
        blocked: n(JobState::Blocked),
        dead: n(JobState::Dead),
        day: percentiles(times, t.tenant_id(), 0),
        month: percentiles(times, t.tenant_id(), 1),
        quota,
        path,
        path_at,
        last_sweep: moment(t.last_sweep_at),
    }
}

pub async fn rows(state: &AppState) -> Result<(Vec<OverviewRow>, Vec<ActionRow>)> {
    let now = state.clock.now();
    let times: Times = state
        .store
        .honour_times(&report::OPT_OUT_KINDS, &periods(now))
        .await?
        .into_iter()
        .map(|t| ((t.tenant_id, t.period), t))
        .collect();
    let rows = state
        .store
        .overview()
        .await?
        .iter()
        .map(|t| row(state, t, &times, now))
        .collect();
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
