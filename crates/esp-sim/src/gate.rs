//! What stands in front of every provider's routes, in the order a provider's edge applies
//! it: the call is counted, the body read within the size limit, an injected fault answered,
//! the credential checked (from the raw bytes: SigV4 signs them, Mandrill carries its key in
//! them), the rate limit applied, and SendGrid's `X-RateLimit-*` headers added.

use std::sync::Arc;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::config::SimConfig;
use crate::provider::Provider;
use crate::state::{FaultKind, RateInfo, Shared};
use crate::{brevo, mailgun, mailjet, mandrill, postmark, sendgrid, ses, sparkpost};

/// What the gate tells a handler about the call.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// An injected partial failure: apply part of the write, then answer 500.
    pub partial: bool,
    pub now_ms: u64,
}

impl Ctx {
    /// How many of `n` entries a write applies: all, or (partial failure) the first half,
    /// rounded up, so that a one-entry write is applied and still answered with an error.
    pub fn applied(&self, n: usize) -> usize {
        if self.partial { n.div_ceil(2) } else { n }
    }
}

/// Whether `presented` is one of `provider`'s configured secrets (constant time per secret).
pub fn accepted(cfg: &SimConfig, provider: Provider, presented: &str) -> bool {
    cfg.secrets(provider).fold(false, |ok, s| {
        ok | bool::from(s.as_bytes().ct_eq(presented.as_bytes()))
    })
}

/// The provider's answer to an exhausted rate limit.
fn too_many(provider: Provider, info: Option<RateInfo>) -> Response {
    match provider {
        Provider::Ses => ses::too_many(),
        Provider::Sendgrid => sendgrid::too_many(info),
        Provider::Mailgun => mailgun::too_many(),
        Provider::Postmark => postmark::too_many(),
        Provider::Sparkpost => sparkpost::too_many(),
        Provider::Mandrill => mandrill::too_many(),
        Provider::Mailjet => mailjet::too_many(),
        Provider::Brevo => brevo::too_many(),
    }
}

/// The provider's answer to a failure on its side.
pub fn server_error(provider: Provider) -> Response {
    match provider {
        Provider::Ses => ses::server_error(),
        Provider::Sendgrid => sendgrid::server_error(),
        Provider::Mailgun => mailgun::server_error(),
        Provider::Postmark => postmark::server_error(),
        Provider::Sparkpost => sparkpost::server_error(),
        Provider::Mandrill => mandrill::server_error(),
        Provider::Mailjet => mailjet::server_error(),
        Provider::Brevo => brevo::server_error(),
    }
}

fn authenticate(
    shared: &Shared,
    provider: Provider,
    parts: &Parts,
    body: &[u8],
) -> Result<(), Response> {
    let st = shared.lock();
    let cfg = &st.config;
    match provider {
        Provider::Ses => ses::authenticate(cfg, parts, body, shared.now_ms()),
        Provider::Sendgrid => sendgrid::authenticate(cfg, parts),
        Provider::Mailgun => mailgun::authenticate(cfg, parts),
        Provider::Postmark => postmark::authenticate(cfg, parts),
        Provider::Sparkpost => sparkpost::authenticate(cfg, parts),
        Provider::Mandrill => mandrill::authenticate(cfg, body),
        Provider::Mailjet => mailjet::authenticate(cfg, parts),
        Provider::Brevo => brevo::authenticate(cfg, parts),
    }
}

fn too_large() -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
}

/// The gate for one provider's routes.
pub async fn gate(
    State((shared, provider)): State<(Arc<Shared>, Provider)>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let (limit, fault) = {
        let mut st = shared.lock();
        st.count_call(provider, &format!("{} {route}", req.method()));
        (st.config.max_body_bytes, st.next_fault(provider))
    };
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, limit).await else {
        return too_large();
    };
    let partial = match fault {
        Some(FaultKind::TooManyRequests) => return too_many(provider, None),
        Some(FaultKind::ServerError) => return server_error(provider),
        Some(FaultKind::Timeout) => {
            let delay = shared.lock().config.fault_timeout_delay;
            tokio::time::sleep(delay).await;
            return (StatusCode::GATEWAY_TIMEOUT, "gateway timeout").into_response();
        }
        Some(FaultKind::Partial) => true,
        None => false,
    };
    if let Err(refused) = authenticate(&shared, provider, &parts, &bytes) {
        return refused;
    }
    let now_ms = shared.now_ms();
    let admitted = shared.lock().admit(provider, now_ms);
    let info = match admitted {
        Ok(info) => info,
        Err(info) => return too_many(provider, Some(info)),
    };
    parts.extensions.insert(Ctx { partial, now_ms });
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(Bytes::clone(&bytes))))
        .await;
    if provider == Provider::Sendgrid
        && let Some(info) = info
    {
        rate_headers(&mut resp, info);
    }
    resp
}

/// SendGrid's `X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch seconds).
pub fn rate_headers(resp: &mut Response, info: RateInfo) {
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", info.limit as u64),
        ("x-ratelimit-remaining", info.remaining as u64),
        ("x-ratelimit-reset", info.reset_s),
    ] {
        h.insert(name, HeaderValue::from(value));
    }
}
