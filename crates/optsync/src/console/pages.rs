//! The console's handlers: each reads what its page shows, formats it, and renders a
//! template. Every form posts its session's CSRF token; every action is recorded with who
//! and when.

use std::collections::HashMap;
use std::net::SocketAddr;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::auth::{self, Session};
use super::views::*;
use crate::clock::rfc3339;
use crate::logfmt::one_line;
use crate::report::{self, Period};
use crate::state::AppState;
use crate::store::{AuditAction, EventSource, EventSummary, JobId, JobState, Rule};

type Fields = HashMap<String, String>;

const DAY_MS: i64 = 86_400_000;

pub(super) fn when(ms: Option<i64>) -> String {
    ms.map(rfc3339).unwrap_or_else(|| "—".into())
}

pub(super) fn dur(ms: Option<i64>) -> String {
    match ms {
        None => "—".into(),
        Some(m) if m < 60_000 => format!("{:.1} s", m as f64 / 1000.0),
        Some(m) if m < 3_600_000 => format!("{:.1} min", m as f64 / 60_000.0),
        Some(m) => format!("{:.1} h", m as f64 / 3_600_000.0),
    }
}

fn page(t: impl Template) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// Anything that went wrong reading the store: said once in the log, a plain 503 to the user.
fn unavailable(e: crate::Error) -> Response {
    tracing::error!(error = %one_line(&e), "console: the store is unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is unavailable; try again",
    )
        .into_response()
}

fn forbidden_form() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this form is stale or was not sent by the console: reload the page and try again",
    )
        .into_response()
}

/// Records a console action with who and when; a failure to record is logged, not hidden.
async fn record(state: &AppState, user: &str, action: &str, target: &str, detail: Option<&str>) {
    let now = state.clock.epoch_ms();
    if let Err(e) = state
        .store
        .record_admin_action(now, user, action, target, detail)
        .await
    {
        tracing::error!(error = %one_line(&e), action, "console action NOT recorded");
    }
}

// ---------------------------------------------------------------- signing in and out

pub async fn login_form() -> Response {
    page(LoginPage {
        error: None,
        csrf: String::new(),
        user: String::new(),
    })
}

fn login_refused(status: StatusCode, why: String) -> Response {
    let mut r = page(LoginPage {
        error: Some(why),
        csrf: String::new(),
        user: String::new(),
    });
    *r.status_mut() = status;
    r
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let user = f
        .get("user")
        .map(|u| u.trim())
        .unwrap_or_default()
        .to_string();
    let password = f.get("password").cloned().unwrap_or_default();
    match auth::check_sign_in(&state, peer.ip(), &headers, &user, password).await {
        Ok(()) => start_session(&state, &user).await,
        Err(auth::SignInError::Refused(status, why)) => login_refused(status, why),
        Err(auth::SignInError::Unavailable(e)) => unavailable(e),
    }
}

/// A new session (never one the browser brought: that would let a planted cookie in).
async fn start_session(state: &AppState, user: &str) -> Response {
    let token = auth::random_token();
    let now = state.clock.epoch_ms();
    if let Err(e) = state
        .store
        .create_session(
            &auth::digest(&token),
            user,
            &auth::random_token(),
            now,
            now + (state.settings.console_idle.as_millis() as i64).min(auth::SESSION_TTL_MS),
        )
        .await
    {
        return unavailable(e);
    }
    record(state, user, "sign_in", "console", None).await;
    let secure = auth::cookie_secure(&state.settings);
    (
        [(
            header::SET_COOKIE,
            auth::session_cookie(Some(&token), secure),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

pub async fn logout(State(state): State<AppState>, s: Session, Form(f): Form<Fields>) -> Response {
    if !s.csrf_ok(f.get("csrf").map(String::as_str)) {
        return forbidden_form();
    }
    if let Err(e) = state.store.delete_session(&s.token_hash).await {
        return unavailable(e);
    }
    record(&state, &s.user, "sign_out", "console", None).await;
    let secure = auth::cookie_secure(&state.settings);
    (
        [(header::SET_COOKIE, auth::session_cookie(None, secure))],
        Redirect::to("/login"),
    )
        .into_response()
}

// ---------------------------------------------------------------- overview

pub async fn overview(State(state): State<AppState>, s: Session) -> Response {
    match super::overview::rows(&state).await {
        Ok((rows, actions)) => page(OverviewPage {
            csrf: s.csrf,
            user: s.user,
            rows,
            actions,
        }),
        Err(e) => unavailable(e),
    }
}

// ---------------------------------------------------------------- one tenant

pub(super) fn event_view(e: &EventSummary) -> EventView {
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

async fn tenant_page(
    state: &AppState,
    s: Session,
    app: &str,
    post_url: Option<String>,
) -> Response {
    let t = match state.store.tenant_by_app(app).await {
        Ok(Some(t)) => t,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such app").into_response(),
        Err(e) => return unavailable(e),
    };
    match super::tenant::parts(state, &t).await {
        Ok((chart, stuck, events, providers)) => page(TenantPage {
            csrf: s.csrf,
            user: s.user,
            app: t.app,
            chart,
            stuck,
            events,
            providers,
            post_url,
        }),
        Err(e) => unavailable(e),
    }
}

pub async fn tenant(
    State(state): State<AppState>,
    s: Session,
    Path(app): Path<String>,
) -> Response {
    tenant_page(&state, s, &app, None).await
}

pub async fn reveal_post_url(
    State(state): State<AppState>,
    s: Session,
    Path(app): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if !s.csrf_ok(f.get("csrf").map(String::as_str)) {
        return forbidden_form();
    }
    let url = match state.tenants.post_url(&app).await {
        Ok(u) => u,
        Err(crate::Error::UnknownTenant(_)) => {
            return (StatusCode::NOT_FOUND, "no such app").into_response();
        }
        Err(e) => return unavailable(e),
    };
    record(&state, &s.user, "reveal_post_url", &app, None).await;
    tenant_page(&state, s, &app, Some(url)).await
}

pub async fn retry(
    State(state): State<AppState>,
    s: Session,
    Path((app, job)): Path<(String, i64)>,
    Form(f): Form<Fields>,
) -> Response {
    if !s.csrf_ok(f.get("csrf").map(String::as_str)) {
        return forbidden_form();
    }
    let belongs = match state.store.tenant_by_app(&app).await {
        Ok(Some(t)) => state
            .store
            .job_tenant(JobId(job))
            .await
            .map(|o| o == Some(t.id)),
        Ok(None) => Ok(false),
        Err(e) => Err(e),
    };
    match belongs {
        Ok(true) => {}
        Ok(false) => return (StatusCode::NOT_FOUND, "no such job for this app").into_response(),
        Err(e) => return unavailable(e),
    }
    match state.queue.retry(JobId(job), state.clock.epoch_ms()).await {
        Ok(()) => {
            record(
                &state,
                &s.user,
                "retry_job",
                &format!("{app} job {job}"),
                None,
            )
            .await;
            Redirect::to(&format!("/tenants/{app}")).into_response()
        }
        Err(crate::Error::BadInput(why)) => (StatusCode::CONFLICT, why).into_response(),
        Err(e) => unavailable(e),
    }
}

// ---------------------------------------------------------------- one address

pub async fn address(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<Fields>,
) -> Response {
    let email = q
        .get("email")
        .map(|e| e.trim().to_string())
        .unwrap_or_default();
    address_page(&state, s, email, Vec::new()).await
}

async fn address_page(
    state: &AppState,
    s: Session,
    email: String,
    live: Vec<LiveView>,
) -> Response {
    let (events, decisions) = if email.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        match super::address::history(state, &email).await {
            Ok(h) => h,
            Err(e) => return unavailable(e),
        }
    };
    page(AddressPage {
        csrf: s.csrf,
        user: s.user,
        email,
        events,
        decisions,
        live,
    })
}

pub async fn address_live(
    State(state): State<AppState>,
    s: Session,
    Form(f): Form<Fields>,
) -> Response {
    if !s.csrf_ok(f.get("csrf").map(String::as_str)) {
        return forbidden_form();
    }
    let email = f
        .get("email")
        .map(|e| e.trim().to_string())
        .unwrap_or_default();
    let live = match super::address::live(&state, &email).await {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    record(&state, &s.user, "live_status", &email, None).await;
    address_page(&state, s, email, live).await
}

// ---------------------------------------------------------------- the compliance report

/// The period a report form asks for (default: the last 30 days), or what is wrong with it.
fn period(state: &AppState, q: &Fields) -> std::result::Result<Period, String> {
    let now = state.clock.epoch_ms();
    let date = |k: &str| -> std::result::Result<Option<i64>, String> {
        match q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => crate::report::parse_date(v)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    };
    let since = date("since")?.unwrap_or(now - 30 * DAY_MS);
    let until = date("until")?.unwrap_or(now + 1);
    if until <= since {
        return Err("the period must end after it starts".into());
    }
    let app = q
        .get("app")
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    Ok(Period { app, since, until })
}

pub async fn report(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<Fields>,
) -> Response {
    let p = match period(&state, &q) {
        Ok(p) => p,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let r = match report::build(&state.store, &p).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    page(super::report_page::page(s, &p, &r, query))
}

pub async fn report_csv(
    State(state): State<AppState>,
    _s: Session,
    Query(q): Query<Fields>,
) -> Response {
    let p = match period(&state, &q) {
        Ok(p) => p,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let csv = match report::build(&state.store, &p)
        .await
        .and_then(|r| report::to_csv(&r))
    {
        Ok(csv) => csv,
        Err(e) => return unavailable(e),
    };
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"optsync-report.csv\"",
        ),
    ];
    (headers, csv).into_response()
}

/// Whether a job state is one the tenant page offers to retry.
pub(super) fn stuck(state: JobState) -> bool {
    matches!(state, JobState::Blocked | JobState::Dead)
}

/// The words for one decision about an address.
pub(super) fn rule_in_words(action: AuditAction, rule: Option<&Rule>) -> String {
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
pub(super) fn provider_source(name: &str) -> Option<EventSource> {
    crate::providers::Provider::from_name(name).map(EventSource::Provider)
}
