//! The console's handlers: each reads what its page shows and renders a template. Forms
//! come typed, through [`CsrfForm`] when signed in; every failure is a [`ConsoleError`];
//! every action is recorded with who and when.

use crate::clock::Now as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::{self, Session, SignInLimiter};
use super::authz::Viewer;
use super::forms::{AddressForm, AddressQuery, CsrfForm, Empty, ReportQuery, SignIn};
use super::respond::{Answer, ConsoleError, page, record};
use super::views::*;
use crate::report;
use crate::retry::Retried;
use crate::state::AppState;
use crate::store::JobId;

// ---------------------------------------------------------------- signing in and out

pub async fn login_form() -> Answer {
    page(LoginPage {
        error: None,
        csrf: String::new(),
        user: String::new(),
    })
}

fn login_refused(status: StatusCode, why: String) -> Answer {
    let mut r = page(LoginPage {
        error: Some(why),
        csrf: String::new(),
        user: String::new(),
    })?;
    *r.status_mut() = status;
    Ok(r)
}

pub async fn login(
    State(state): State<AppState>,
    State(limiter): State<Arc<SignInLimiter>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Form(f): Form<SignIn>,
) -> Answer {
    let user = f.user.trim().to_string();
    match auth::check_sign_in(&state, &limiter, peer.ip(), &headers, &user, f.password).await {
        Ok(()) => start_session(&state, &user).await,
        Err(auth::SignInError::Refused(status, why)) => login_refused(status, why),
        Err(auth::SignInError::Unavailable(e)) => Err(e.into()),
    }
}

/// A new session (never one the browser brought: that would let a planted cookie in).
pub(super) async fn start_session(state: &AppState, user: &str) -> Answer {
    let token = auth::random_token();
    let now = state.clock.now();
    state
        .store
        .create_session(
            &auth::digest(&token),
            user,
            &auth::random_token(),
            now,
            now + auth::SESSION_TTL_MS,
        )
        .await?;
    record(state, user, "sign_in", "console", None).await;
    let secure = auth::cookie_secure(&state.settings);
    Ok((
        [(
            header::SET_COOKIE,
            auth::session_cookie(Some(&token), secure),
        )],
        Redirect::to("/"),
    )
        .into_response())
}

pub async fn logout(State(state): State<AppState>, f: CsrfForm<Empty>) -> Answer {
    let s = f.session;
    state.store.delete_session(&s.token_hash).await?;
    record(&state, &s.user, "sign_out", "console", None).await;
    let secure = auth::cookie_secure(&state.settings);
    Ok((
        [(header::SET_COOKIE, auth::session_cookie(None, secure))],
        Redirect::to("/login"),
    )
        .into_response())
}

// ---------------------------------------------------------------- overview

/// The home page: an operator's overview of every app, or a customer's own apps.
pub async fn home(State(state): State<AppState>, v: Viewer) -> Answer {
    if !v.is_operator() {
        return super::apps::page_for(v);
    }
    let (rows, actions) = super::overview::rows(&state).await?;
    page(OverviewPage {
        csrf: v.session.csrf,
        user: v.session.user,
        rows,
        actions,
        keap: super::connect_page::keap_view(&state, None).await?,
    })
}

// ---------------------------------------------------------------- one tenant

pub(super) async fn tenant_page(
    state: &AppState,
    s: Session,
    app: &str,
    post_url: Option<String>,
) -> Answer {
    let t = state
        .store
        .tenant_by_app(app)
        .await?
        .ok_or(ConsoleError::NotFound("no such app"))?;
    let (chart, stuck, events, providers) = super::tenant::parts(state, &t).await?;
    let keap = super::connect_page::keap_view(state, Some(t.id)).await?;
    page(TenantPage {
        keap,
        csrf: s.csrf,
        user: s.user,
        app: t.app,
        chart,
        stuck,
        events,
        providers,
        post_url,
    })
}

pub async fn tenant(State(state): State<AppState>, s: Session, Path(app): Path<String>) -> Answer {
    tenant_page(&state, s, &app, None).await
}

pub async fn reveal_post_url(
    State(state): State<AppState>,
    Path(app): Path<String>,
    f: CsrfForm<Empty>,
) -> Answer {
    let url = match state.tenants.post_url(&app).await {
        Ok(u) => u,
        Err(crate::Error::UnknownTenant(_)) => return Err(ConsoleError::NotFound("no such app")),
        Err(e) => return Err(e.into()),
    };
    record(&state, &f.session.user, "reveal_post_url", &app, None).await;
    tenant_page(&state, f.session, &app, Some(url)).await
}

/// The same retry as `optsync retry`, limited to the app the page shows.
pub async fn retry(
    State(state): State<AppState>,
    Path((app, job)): Path<(String, i64)>,
    f: CsrfForm<Empty>,
) -> Answer {
    match crate::retry::job(&state, JobId(job), Some(&app)).await? {
        Retried::Requeued => {
            let target = format!("{app} job {job}");
            record(&state, &f.session.user, "retry_job", &target, None).await;
            Ok(Redirect::to(&format!("/tenants/{app}")).into_response())
        }
        Retried::NoSuchJob => Err(ConsoleError::NotFound("no such job for this app")),
        Retried::NotRetryable => Err(ConsoleError::Conflict(Retried::NOT_RETRYABLE)),
    }
}

// ---------------------------------------------------------------- one address

pub async fn address(
    State(state): State<AppState>,
    v: Viewer,
    Query(q): Query<AddressQuery>,
) -> Answer {
    address_page(&state, v, q.email.trim().to_string(), Vec::new()).await
}

/// What is known of an address, within the apps the viewer may see.
async fn address_page(state: &AppState, v: Viewer, email: String, live: Vec<LiveView>) -> Answer {
    let (mut events, mut decisions, mut suppressed) = if email.is_empty() {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let (events, decisions) = super::address::history(state, &email).await?;
        let suppressed = super::address::suppressed(state, &email).await?;
        (events, decisions, suppressed)
    };
    events.retain(|e| v.can_see(&e.app));
    decisions.retain(|d| v.can_see(&d.app));
    suppressed.retain(|p| v.can_see(&p.app));
    page(AddressPage {
        csrf: v.session.csrf,
        user: v.session.user,
        email,
        events,
        decisions,
        suppressed,
        live,
    })
}

pub async fn address_live(
    State(state): State<AppState>,
    v: Viewer,
    f: CsrfForm<AddressForm>,
) -> Answer {
    let email = f.form.email.trim().to_string();
    let live = super::address::live(&state, &email, |app| v.can_see(app)).await?;
    record(&state, &f.session.user, "live_status", &email, None).await;
    address_page(&state, v, email, live).await
}

// ---------------------------------------------------------------- the compliance report

pub async fn report(
    State(state): State<AppState>,
    v: Viewer,
    Query(q): Query<ReportQuery>,
) -> Answer {
    let mut p = match super::report_page::period(state.clock.now(), &q) {
        Ok(p) => p,
        Err(why) => {
            let mut r = page(super::report_page::refused(v.session, &q, why))?;
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(r);
        }
    };
    p.app = v.report_app(p.app.take())?;
    let r = report::build(&state.store, &p).await?;
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    page(super::report_page::page(v.session, &p, &r, query))
}

pub async fn report_csv(
    State(state): State<AppState>,
    v: Viewer,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ConsoleError> {
    let mut p =
        super::report_page::period(state.clock.now(), &q).map_err(ConsoleError::BadRequest)?;
    p.app = v.report_app(p.app.take())?;
    let csv = report::build(&state.store, &p)
        .await
        .and_then(|r| report::to_csv(&r))?;
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"optsync-report.csv\"",
        ),
    ];
    Ok((headers, csv).into_response())
}
