//! "Connect a Keap app" (and "Reconnect"): `POST /keap/connect` sends the browser to Keap's
//! consent page with a fresh `state`; `GET /keap/callback` takes that state once, exchanges
//! the code ([`crate::keap_connect`]) and shows the app's Post URL, waiting for Keap's first
//! post (`GET /tenants/APP/keap-post.json`, polled by `/connect.js`).
//!
//! Keap sends the browser back from its own site, and browsers do not send a `SameSite=Strict`
//! cookie — the session's — on such a navigation. So each flow also sets a `SameSite=Lax`
//! cookie of its own (the "binder"): the state is stored with digests of it and of the session
//! that started the flow, and the callback needs the state, the same browser's binder, and that
//! session still signed in. A state sent to someone else's browser, or used twice, is nothing.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Session, cookie_secure, cookie_value};
use super::authz::{NO_SUCH_APP, Viewer};
use super::connect_page::ConnectedPage;
use super::forms::CsrfForm;
use super::respond::{Answer, ConsoleError, page, record};
use crate::clock::{Millis, Now as _};
use crate::config::Settings;
use crate::keap_connect::{self, Connected, Connector};
use crate::state::AppState;
use crate::store::{EventSource, NewConnectState, Role};

/// How long a flow may take from the button to Keap's answer.
const FLOW_TTL_MS: i64 = 10 * 60_000;
const BINDER: &str = "optsync_keap_connect";
/// Over https: `__Host-`, like the session cookie.
const SECURE_BINDER: &str = "__Host-optsync_keap_connect";

/// The "Connect a Keap app" form; `app` set: the Reconnect button of that app.
#[derive(Debug, Deserialize)]
pub struct ConnectForm {
    #[serde(default)]
    pub app: String,
}

/// What Keap's consent page sends the browser back with.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SinceQuery {
    #[serde(default)]
    pub since: i64,
}

fn binder_cookie(value: Option<&str>, secure: bool) -> String {
    let (name, flag) = if secure {
        (SECURE_BINDER, "; Secure")
    } else {
        (BINDER, "")
    };
    let (v, age) = match value {
        Some(v) => (v, FLOW_TTL_MS / 1000),
        None => ("", 0),
    };
    format!("{name}={v}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{flag}")
}

/// The console's Content-Security-Policy: scripts only from the console's own files (`fetch`:
/// which may also fetch from it — the connected page alone), and forms that post only to the
/// console or, for the connect form's redirect, to Keap's consent page.
pub fn content_security_policy(settings: &Settings, fetch: bool) -> HeaderValue {
    let keap = settings
        .keap_oauth
        .as_ref()
        .map(|k| format!(" {}", k.authorize_url.origin().ascii_serialization()))
        .unwrap_or_default();
    let fetch = if fetch { "connect-src 'self'; " } else { "" };
    let policy = format!(
        "default-src 'none'; script-src 'self'; {fetch}style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'{keap}; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'")
    })
}

/// `POST /keap/connect`: a new flow's state stored, the binder cookie set, and the browser
/// sent to Keap's consent page. Any account may connect a new app (a customer's is granted
/// to them); a reconnect only of an app the account can see.
pub async fn start(
    State(state): State<AppState>,
    viewer: Viewer,
    f: CsrfForm<ConnectForm>,
) -> Answer {
    let Some(k) = state.settings.keap_oauth.as_ref() else {
        return Err(ConsoleError::Conflict(
            "connecting Keap apps is not set up: set OPTSYNC_KEAP_CLIENT_ID, OPTSYNC_KEAP_CLIENT_SECRET and OPTSYNC_ADMIN_PUBLIC_URL",
        ));
    };
    let app = Some(f.form.app.trim()).filter(|a| !a.is_empty());
    if let Some(a) = app
        && (!viewer.can_see(a) || state.store.tenant_by_app(a).await?.is_none())
    {
        return Err(ConsoleError::NotFound(NO_SUCH_APP));
    }
    let (flow, binder) = (auth::random_token(), auth::random_token());
    let now = state.clock.now();
    let (state_hash, binder_hash) = (auth::digest(&flow), auth::digest(&binder));
    let row = NewConnectState {
        state_hash: &state_hash,
        binder_hash: &binder_hash,
        session_hash: &f.session.token_hash,
        app,
        expires_at: now + FLOW_TTL_MS,
    };
    state.store.create_connect_state(&row, now).await?;
    let cookie = binder_cookie(Some(&binder), cookie_secure(&state.settings));
    let to = keap_connect::authorize_url(k, &flow);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(to.as_str())).into_response())
}

/// Why a callback connected nothing, as the person is told.
fn refused(status: StatusCode, why: &str) -> Response {
    let body =
        format!("No Keap app was connected: {why}\nStart again from the console's overview.");
    (status, body).into_response()
}

/// `GET /keap/callback`: the flow's state taken (once), then the code exchanged and the app
/// connected; the binder cookie is cleared whatever the outcome.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let secure = cookie_secure(&state.settings);
    let mut resp = match finish(&state, &headers, q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&binder_cookie(None, secure)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn finish(state: &AppState, headers: &HeaderMap, q: CallbackQuery) -> Answer {
    let name = if cookie_secure(&state.settings) {
        SECURE_BINDER
    } else {
        BINDER
    };
    let forbidden = |why: &str| Ok(refused(StatusCode::FORBIDDEN, why));
    let (Some(flow), Some(binder)) = (q.state.as_deref(), cookie_value(headers, name)) else {
        return forbidden("this browser did not start a connection (or it expired).");
    };
    let now = state.clock.now();
    let taken = state
        .store
        .take_connect_state(&auth::digest(flow), &auth::digest(binder), now)
        .await?;
    let Some(taken) = taken else {
        tracing::warn!("Keap callback refused: unknown, used or expired state");
        return forbidden(
            "this link is not from a connection started here, or it was used or expired.",
        );
    };
    let Some(session) = state.store.session(&taken.session_hash, now).await? else {
        return forbidden(
            "the console session that started it has ended; sign in and start again.",
        );
    };
    if let Some(e) = q.error.as_deref() {
        let why = if e == "access_denied" {
            "access was denied on Keap's page.".to_string()
        } else {
            format!("Keap answered {:?}.", crate::logfmt::one_line(e))
        };
        return Ok(refused(StatusCode::FORBIDDEN, &why));
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return forbidden("Keap's answer carries no code.");
    };
    let who = connector(state, &session.user_name).await?;
    let connected = match keap_connect::complete(state, code, taken.app.as_deref(), &who).await {
        Ok(c) => c,
        Err(e) => return Ok(exchange_refused(e)),
    };
    connected_page(state, session, connected, now).await
}

/// Who finishes the flow: the account of the session that started it, as it is now.
async fn connector(state: &AppState, account: &str) -> Result<Connector, ConsoleError> {
    Ok(match state.store.account_role(account).await? {
        Some(Role::Customer) => Connector::Customer {
            account: account.to_string(),
            apps: state.store.granted_apps(account).await?,
        },
        Some(Role::Operator) => Connector::Operator,
        None => return Err(ConsoleError::NotFound(NO_SUCH_APP)),
    })
}

/// A code exchange that connected nothing, told in words.
fn exchange_refused(e: crate::Error) -> Response {
    tracing::warn!(error = %crate::logfmt::one_line(&e), "Keap callback: nothing connected");
    match e {
        crate::Error::Keap(keap::Error::ReconnectNeeded(_)) => refused(
            StatusCode::FORBIDDEN,
            "Keap refused the code (it was used already, or expired).",
        ),
        crate::Error::BadInput(why) => refused(StatusCode::FORBIDDEN, &why),
        crate::Error::Keap(keap::Error::Transient(_)) => refused(
            StatusCode::BAD_GATEWAY,
            "Keap could not be reached; try again.",
        ),
        _ => refused(
            StatusCode::BAD_GATEWAY,
            "Keap refused the exchange (is the developer app's client id and secret right?).",
        ),
    }
}

async fn connected_page(
    state: &AppState,
    session: crate::store::SessionRow,
    c: Connected,
    now: Millis,
) -> Answer {
    let detail = if c.created {
        "new app"
    } else {
        "connected again"
    };
    record(
        state,
        &session.user_name,
        "keap_connect",
        &c.app,
        Some(detail),
    )
    .await;
    let post_url = state.tenants.post_url(&c.app).await?;
    let mut resp = page(ConnectedPage {
        csrf: session.csrf,
        user: session.user_name,
        app: c.app,
        created: c.created,
        post_url,
        since: now.as_i64(),
    })?;
    let csp = content_security_policy(&state.settings, true);
    resp.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp);
    Ok(resp)
}

/// `GET /tenants/APP/keap-post.json?since=MS`: when Keap last posted for the app, if at or
/// after `since` (the connected page's script polls it).
pub async fn keap_post(
    State(state): State<AppState>,
    _s: Session,
    Path(app): Path<String>,
    Query(q): Query<SinceQuery>,
) -> Answer {
    let t = state
        .store
        .tenant_by_app(&app)
        .await?
        .ok_or(ConsoleError::NotFound("no such app"))?;
    let at = state
        .store
        .last_received(t.id, EventSource::KeapPost)
        .await?
        .filter(|at| *at >= Millis(q.since));
    Ok(Json(serde_json::json!({ "posted_at": at })).into_response())
}

/// `GET /connect.js`: the connected page's script (copy button, first-post poll),
/// served as a file so the policy needs no inline script.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/connect.js"),
    )
        .into_response()
}
