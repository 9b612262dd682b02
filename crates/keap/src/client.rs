//! The HTTP core: every call is paced, authenticated, sent with a timeout and without
//! following redirects, and its answer mapped to [`Error`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes_limit::read_limited;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value as Json;
use url::Url;

use crate::credentials::Credential;
use crate::error::Error;
use crate::model::OptOutMethod;
use crate::pacing::{CallPolicy, Pacer, PacingConfig};
use crate::xmlrpc::{self, Response, Value};

/// The largest answer accepted from Keap: a page of 1,000 contacts is a few hundred KiB.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Placeholder for XML-RPC's first parameter (the legacy privateKey). On the gateway the
/// header authenticates and Keap ignores the value; the real key is never put in a body.
const PRIVATE_KEY_PLACEHOLDER: &str = "optsync";

/// Keap's API client for one app (tenant).
#[derive(Debug, Clone)]
pub struct KeapClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    http: reqwest::Client,
    /// Ends with `/`: `https://api.infusionsoft.com/crm/`.
    base: Url,
    credential: Credential,
    pacer: Arc<Pacer>,
    pub(crate) method: OptOutMethod,
    max_throttle_retries: u32,
    calls: AtomicU64,
    /// The lane this client's calls take and how long one may wait for room.
    policy: CallPolicy,
}

/// Builds a [`KeapClient`].
#[derive(Debug)]
pub struct KeapClientBuilder {
    base: String,
    credential: Credential,
    pacer: Option<Arc<Pacer>>,
    method: OptOutMethod,
    timeout: Duration,
    max_throttle_retries: u32,
}

impl KeapClient {
    /// `base_url` is the URL Keap's paths hang under: `https://api.infusionsoft.com/crm` for
    /// the real service (giving `…/crm/rest/v2/…` and `…/crm/xmlrpc/v1`), `http://ADDR/crm`
    /// for keap-sim.
    pub fn builder(base_url: impl Into<String>, credential: Credential) -> KeapClientBuilder {
        KeapClientBuilder {
            base: base_url.into(),
            credential,
            pacer: None,
            method: OptOutMethod::Auto,
            timeout: Duration::from_secs(30),
            max_throttle_retries: 5,
        }
    }

    /// A client sharing this one's connection pool, credential and pacer but counting its
    /// own calls: one per job, so that each job can say how many Keap calls it made.
    pub fn scoped(&self) -> KeapClient {
        self.scoped_for(CallPolicy::default())
    }

    /// A scoped client whose calls follow `policy`: a job's calls give up waiting for room
    /// after a while (the job is rescheduled), a sweep's leave the real-time reserve alone.
    pub fn scoped_for(&self, policy: CallPolicy) -> KeapClient {
        let i = &self.inner;
        KeapClient {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                base: i.base.clone(),
                credential: i.credential.clone(),
                pacer: i.pacer.clone(),
                method: i.method,
                max_throttle_retries: i.max_throttle_retries,
                calls: AtomicU64::new(0),
                policy,
            }),
        }
    }

    /// Keap calls this client has sent (each retry counts).
    pub fn calls_made(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    pub fn pacer(&self) -> &Arc<Pacer> {
        &self.inner.pacer
    }

    pub fn method(&self) -> OptOutMethod {
        self.inner.method
    }

    pub(crate) fn rest_url(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.inner.base.join("rest/v2/").map_err(config)?;
        url.path_segments_mut()
            .map_err(|_| Error::Config("base URL cannot hold a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn xmlrpc_url(&self) -> Result<Url, Error> {
        self.inner.base.join("xmlrpc/v1").map_err(config)
    }

    /// Sends one call, pacing it, retrying it after 429s (up to a limit) and once after a
    /// refused OAuth token. Answers other than 429 come back as they are.
    async fn execute(
        &self,
        call: &CallName,
        method: Method,
        url: Url,
        body: Option<(&'static str, String)>,
    ) -> Result<(StatusCode, Vec<u8>), Error> {
        let inner = &self.inner;
        let mut force_refresh = false;
        let mut refreshed = false;
        let mut throttles = 0;
        loop {
            inner.pacer.acquire_for(inner.policy).await?;
            let mut req = inner.http.request(method.clone(), url.clone());
            if let Some((ct, b)) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, *ct)
                    .body(b.clone());
            }
            req = match &inner.credential {
                Credential::ApiKey(k) => {
                    let mut v = reqwest::header::HeaderValue::from_str(k.expose_secret())
                        .map_err(|_| Error::Config("the API key is not a valid header".into()))?;
                    v.set_sensitive(true);
                    req.header("X-Keap-API-Key", v)
                }
                Credential::OAuth(s) => {
                    let token = s.bearer(force_refresh).await?;
                    force_refresh = false;
                    req.bearer_auth(token.expose_secret())
                }
            };
            inner.calls.fetch_add(1, Ordering::Relaxed);
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    call.count("error");
                    return Err(transport(e));
                }
            };
            call.count(resp.status().as_str());
            inner.pacer.observe(resp.headers());
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                throttles += 1;
                metrics::counter!("optsync_keap_throttled_total").increment(1);
                let pause = inner.pacer.throttled(resp.headers());
                tracing::warn!(%url, attempt = throttles, pause_ms = pause.as_millis() as u64, "Keap answered 429");
                if throttles > inner.max_throttle_retries
                    || inner.policy.max_wait.is_some_and(|m| pause > m)
                {
                    return Err(Error::Throttled {
                        retry_after: pause,
                        detail: format!("{throttles} consecutive 429s"),
                    });
                }
                tokio::time::sleep(pause).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED
                && matches!(inner.credential, Credential::OAuth(_))
                && !refreshed
            {
                refreshed = true;
                force_refresh = true;
                continue;
            }
            inner.pacer.succeeded();
            let bytes = read_limited(resp, MAX_ANSWER_BYTES).await?;
            return Ok((status, bytes));
        }
    }

    /// A REST v2 call; 2xx answers come back parsed.
    pub(crate) async fn rest(
        &self,
        method: Method,
        url: Url,
        body: Option<Json>,
    ) -> Result<Json, Error> {
        let body = body.map(|b| ("application/json", b.to_string()));
        let what = format!("{method} {}", url.path());
        let call = CallName::rest(&method, &url);
        let (status, bytes) = self.execute(&call, method, url, body).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Error::Protocol(format!("{what}: invalid JSON: {e}")));
        }
        Err(http_error(status, &bytes, &what))
    }

    /// An XML-RPC call on the gateway; faults come back as [`Error::Fault`].
    pub(crate) async fn xmlrpc(&self, method: &str, params: Vec<Value>) -> Result<Value, Error> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::str(PRIVATE_KEY_PLACEHOLDER));
        all.extend(params);
        let body = xmlrpc::encode_call(method, &all);
        let call = CallName {
            api: "xmlrpc",
            operation: method.to_string(),
        };
        let (status, bytes) = self
            .execute(
                &call,
                Method::POST,
                self.xmlrpc_url()?,
                Some(("text/xml; charset=UTF-8", body)),
            )
            .await?;
        if let Some(why) = xmlrpc_unavailable(status, &bytes) {
            return Err(Error::XmlRpcUnavailable(format!("{method}: {why}")));
        }
        if !status.is_success() {
            return Err(http_error(status, &bytes, method));
        }
        match xmlrpc::parse_response(&bytes) {
            Ok(Response::Value(v)) => Ok(v),
            Ok(Response::Fault(f)) => {
                if f.string.contains("ThrottlingException") {
                    return Err(Error::Throttled {
                        retry_after: Duration::from_secs(1),
                        detail: f.string,
                    });
                }
                Err(Error::Fault {
                    code: f.code,
                    category: f.category().unwrap_or_default().to_string(),
                    message: f.message().to_string(),
                })
            }
            Err(e) => Err(Error::Protocol(format!("{method}: {e}"))),
        }
    }
}

fn config(e: url::ParseError) -> Error {
    Error::Config(format!("bad base URL: {e}"))
}

fn transport(e: reqwest::Error) -> Error {
    // The URL is ours and holds no secret; the error's text is kept short.
    Error::Transient(format!("{}", e.without_url()))
}

/// Maps a non-2xx, non-429 answer to an error, taking Keap's message where it gave one.
/// Whether an answer on the XML-RPC route says the API is not there, rather than failing
/// one call: a status that means gone or switched off, or a page (HTML, text) where XML-RPC
/// was expected. A 5xx with a JSON body (the gateway's own error) stays a transient failure;
/// 401 and 429 keep their meaning.
fn xmlrpc_unavailable(status: StatusCode, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let head = text.trim_start();
    let is_xml = head.starts_with("<?xml") || head.starts_with("<methodResponse");
    let is_json = head.starts_with('{');
    match status.as_u16() {
        401 | 403 | 429 => None,
        404 | 410 | 501 | 503 => Some(format!("HTTP {status}")),
        200..=299 if !is_xml => Some(format!("HTTP {status} with a body that is not XML-RPC")),
        500..=599 if !is_xml && !is_json && head.starts_with('<') => {
            Some(format!("HTTP {status} with an HTML page"))
        }
        _ => None,
    }
}

fn http_error(status: StatusCode, body: &[u8], what: &str) -> Error {
    let message = serde_json::from_slice::<Json>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(Json::as_str)
                .or_else(|| v.pointer("/fault/faultstring").and_then(Json::as_str))
                .map(str::to_string)
        })
        .unwrap_or_else(|| status.to_string());
    let text = format!("{what}: {message}");
    match status.as_u16() {
        300..=399 => Error::Protocol(format!(
            "{what}: unexpected redirect ({status}), not followed"
        )),
        401 | 403 => Error::Unauthorized(text),
        404 => Error::NotFound(text),
        400 | 405 | 409 | 413 | 422 => Error::InvalidRequest(text),
        _ => Error::Transient(format!("{what}: HTTP {status}: {message}")),
    }
}

impl KeapClientBuilder {
    /// Share a pacer (one per credential; an OAuth client's is shared by all its tenants).
    pub fn pacer(mut self, pacer: Arc<Pacer>) -> Self {
        self.pacer = Some(pacer);
        self
    }

    pub fn opt_out_method(mut self, method: OptOutMethod) -> Self {
        self.method = method;
        self
    }

    /// Per-call timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// 429s in a row before a call gives up with [`Error::Throttled`] (default 5).
    pub fn max_throttle_retries(mut self, n: u32) -> Self {
        self.max_throttle_retries = n;
        self
    }

    pub fn build(self) -> Result<KeapClient, Error> {
        let mut base = Url::parse(self.base.trim())
            .map_err(|e| Error::Config(format!("bad base URL {:?}: {e}", self.base)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(Error::Config(format!(
                "base URL {:?} must be http(s) with a host",
                self.base
            )));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("optsync-keap/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let pacer = self.pacer.unwrap_or_else(|| {
            Arc::new(Pacer::new(match &self.credential {
                Credential::ApiKey(_) => PacingConfig::service_account(),
                Credential::OAuth(_) => PacingConfig::oauth_client(),
            }))
        });
        Ok(KeapClient {
            inner: Arc::new(Inner {
                http,
                base,
                credential: self.credential,
                pacer,
                method: self.method,
                max_throttle_retries: self.max_throttle_retries,
                calls: AtomicU64::new(0),
                policy: CallPolicy::default(),
            }),
        })
    }
}

/// A Keap call as the metrics name it: the API, and the operation — the XML-RPC method, or
/// the REST method and path with ids and addresses replaced by `:id` (bounded labels; no
/// braces, which some exposition parsers trip over).
struct CallName {
    api: &'static str,
    operation: String,
}

impl CallName {
    fn rest(method: &Method, url: &Url) -> Self {
        let path = url.path();
        let tail = path.split_once("/rest/").map_or(path, |(_, t)| t);
        let templated: Vec<&str> = tail
            .split('/')
            .map(|seg| {
                let digits = !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit());
                let is_id = digits || seg.contains('@') || seg.contains('%');
                if is_id { ":id" } else { seg }
            })
            .collect();
        Self {
            api: "rest",
            operation: format!("{method} {}", templated.join("/")),
        }
    }

    /// Counts one answer (or `error`: no answer).
    fn count(&self, status: &str) {
        metrics::counter!(
            "optsync_keap_calls_total",
            "api" => self.api,
            "operation" => self.operation.clone(),
            "status" => status.to_string()
        )
        .increment(1);
    }
}

mod bytes_limit {
    use crate::error::Error;

    /// Reads a body, refusing one larger than `max` rather than buffering it whole.
    pub async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, Error> {
        if resp.content_length().is_some_and(|n| n as usize > max) {
            return Err(Error::Protocol(format!("answer larger than {max} bytes")));
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(super::transport)? {
            if out.len() + chunk.len() > max {
                return Err(Error::Protocol(format!("answer larger than {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}
