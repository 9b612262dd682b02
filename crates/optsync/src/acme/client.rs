//! instant-acme's HTTP through our own `reqwest` client (rustls, ring), not a second HTTP
//! stack: https only, no redirects, a timeout on connecting and on every request, and a cap
//! on an answer's size (a directory, an order or a chain is a few kilobytes). The directory's
//! own HTTPS is checked against the built-in roots, plus `acme_directory_ca` for a test or
//! private CA.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use crate::error::{Error, Result};

/// The largest answer read from the CA.
const MAX_ANSWER: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AcmeHttp {
    client: reqwest::Client,
}

impl AcmeHttp {
    pub fn new(extra_root: Option<&Path>) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("optsync/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = extra_root {
            let bad = |e: &dyn std::fmt::Display| {
                Error::Config(format!("acme_directory_ca {}: {e}", path.display()))
            };
            let pem = std::fs::read(path).map_err(|e| bad(&e))?;
            let root = reqwest::Certificate::from_pem(&pem).map_err(|e| bad(&e))?;
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("ACME HTTP client: {e}")))?;
        Ok(Self { client })
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>;

impl HttpClient for AcmeHttp {
    fn request(&self, req: http::Request<BodyWrapper<Bytes>>) -> Answer {
        let client = self.client.clone();
        Box::pin(async move {
            let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let answer = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| other(with_causes(&e).into()))?;
            let mut head = http::Response::new(());
            *head.status_mut() = answer.status();
            *head.headers_mut() = answer.headers().clone();
            let body = crate::capped_body::read_capped(answer, MAX_ANSWER)
                .await
                .map_err(|e| other(format!("the ACME server's {e}").into()))?;
            let (parts, ()) = head.into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(Bytes::from(body)),
            })
        })
    }
}

/// An error with what caused it ("error sending request …: connection refused").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut words = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        words.push_str(": ");
        words.push_str(&c.to_string());
        cause = c.source();
    }
    words
}
