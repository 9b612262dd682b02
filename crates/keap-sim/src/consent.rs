//! Keap's consent page, `GET /app/oauth/authorize` (`reference/keap-api.md` §16.1): it names
//! the client and the app, and its Allow / Deny buttons post back here; the browser is then
//! sent to the `redirect_uri` with `code` and `state`, or with `error=access_denied`.
//!
//! As in OAuth: a request whose client or redirect URI cannot be trusted is answered with a
//! page, never a redirect (the error would go to a URL nobody registered); other errors go to
//! the redirect URI. Keap demands an https redirect URI; http is taken only on a loopback
//! host, for tests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use url::Url;

use crate::state::Shared;

/// The authorize request's parameters, checked.
struct Request {
    client_id: String,
    redirect_uri: Url,
    /// As the client sent it: the code exchange must repeat it exactly.
    redirect_raw: String,
    state: Option<String>,
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    (status, Html(html)).into_response()
}

fn loopback(u: &Url) -> bool {
    match u.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The page that says why a request's client or redirect URI cannot be used.
fn untrusted(why: &str) -> Response {
    page(StatusCode::BAD_REQUEST, "Invalid request", &escape(why))
}

/// The client and redirect URI, or why they cannot be used.
fn trusted(shared: &Shared, p: &HashMap<String, String>) -> Result<Request, &'static str> {
    let client_id = p.get("client_id").filter(|c| !c.is_empty());
    let Some(client_id) = client_id else {
        return Err("client_id is missing.");
    };
    if !shared.lock().auth.has_client(client_id) {
        return Err("Unknown client_id.");
    }
    let redirect_raw = p.get("redirect_uri").cloned().unwrap_or_default();
    let redirect = p.get("redirect_uri").map(|r| Url::parse(r));
    let redirect_uri = match redirect {
        Some(Ok(u)) if u.scheme() == "https" || (u.scheme() == "http" && loopback(&u)) => u,
        Some(Ok(_)) => return Err("redirect_uri must be https."),
        _ => return Err("redirect_uri is missing or not a URL."),
    };
    if redirect_uri.fragment().is_some() {
        return Err("redirect_uri must not have a fragment.");
    }
    Ok(Request {
        client_id: client_id.clone(),
        redirect_uri,
        redirect_raw,
        state: p.get("state").cloned(),
    })
}

/// Sends the browser back to the client with these parameters (and `state`, echoed).
fn back(req: &Request, params: &[(&str, &str)]) -> Response {
    let mut u = req.redirect_uri.clone();
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = &req.state {
            q.append_pair("state", s);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, u.to_string())]).into_response()
}

/// `GET /app/oauth/authorize`: the consent page.
pub async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let req = match trusted(&shared, &p) {
        Ok(r) => r,
        Err(why) => return untrusted(why),
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return back(&req, &[("error", "unsupported_response_type")]);
    }
    if p.get("scope").is_some_and(|s| s != "full") {
        return back(&req, &[("error", "invalid_scope")]);
    }
    let app = shared.lock().config.tenant_id.clone();
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let body = format!(
        "<p>The application <strong id=\"client\">{client}</strong> asks for full access to \
         your Keap app <strong id=\"app\">{app}</strong>.</p>\
         <form method=\"post\" action=\"/app/oauth/authorize\">{}{}{}\
         <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
         </form>",
        hidden("client_id", &req.client_id),
        hidden("redirect_uri", &req.redirect_raw),
        req.state
            .as_deref()
            .map(|s| hidden("state", s))
            .unwrap_or_default(),
        client = escape(&req.client_id),
        app = escape(&app),
    );
    page(StatusCode::OK, "Allow access to your Keap app?", &body)
}

/// `POST /app/oauth/authorize`: the user's answer on the consent page.
pub async fn decide(
    State(shared): State<Arc<Shared>>,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    let req = match trusted(&shared, &p) {
        Ok(r) => r,
        Err(why) => return untrusted(why),
    };
    if p.get("decision").map(String::as_str) != Some("allow") {
        return back(&req, &[("error", "access_denied")]);
    }
    let now = shared.now_ms();
    let code = {
        let mut st = shared.lock();
        let terms = st.grant_terms(now);
        st.auth
            .issue_code(&req.client_id, Some(&req.redirect_raw), &terms)
    };
    match code {
        Some(code) => back(&req, &[("code", &code)]),
        None => page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "Unknown client_id.",
        ),
    }
}
