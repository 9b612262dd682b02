//! The HTTP layer every client shares: a checked base URL, a timeout, a cap on what is read
//! back, and the mapping of status codes to [`Error`].

use std::net::IpAddr;
use std::time::Duration;

use keap::Clock;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};

use crate::{Error, Provider};

/// RFC 3986 unreserved characters stay; everything else in a path segment is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as one path segment (`a+b@x.com` → `a%2Bb%40x.com`).
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Limits and the clock every call uses.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whole-call timeout (default 10 s).
    pub timeout: Duration,
    /// Most bytes of an answer read (default 64 KiB); a longer answer is an error.
    pub max_body: usize,
    /// Time for SigV4 and for turning SendGrid's reset time into a wait.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            clock: Clock::system(),
        }
    }
}

/// An answer, read within the cap.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One provider's API at one base URL.
#[derive(Debug, Clone)]
pub struct Api {
    provider: Provider,
    base: url::Url,
    http: reqwest::Client,
    pub options: Options,
}

fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    }
}

impl Api {
    /// `base` must be https, or http on a loopback address (an emulator in tests).
    pub fn new(provider: Provider, base: &str, options: Options) -> Result<Self, Error> {
        let base = url::Url::parse(base.trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("{provider} API URL {base:?}: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" if loopback(&base) => {}
            _ => {
                return Err(Error::Config(format!(
                    "{provider} API URL {base}: https is required (plain http only on a loopback address)"
                )));
            }
        }
        if base.query().is_some() || !base.username().is_empty() || base.password().is_some() {
            return Err(Error::Config(format!(
                "{provider} API URL {base}: no query or credentials in the URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            provider,
            base,
            http,
            options,
        })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The base URL's path with `path` after it (already encoded).
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.base.path().trim_end_matches('/'))
    }

    /// `host[:port]` as a client sends it in `Host`.
    pub fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or("");
        match self.base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut url = self.base.clone();
        url.set_path(&self.path(path));
        self.http.request(method, url)
    }

    /// Sends and reads the answer within the cap; a transport failure is transient.
    pub async fn send(&self, req: RequestBuilder) -> Result<Answer, Error> {
        let transient = |detail: String| Error::Transient {
            provider: self.provider,
            detail,
        };
        let mut resp = req
            .send()
            .await
            .map_err(|e| transient(format!("request failed: {e}")))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transient(format!("reading the answer: {e}")))?
        {
            if body.len() + chunk.len() > self.options.max_body {
                // No provider answers these calls at that length: a wrong URL, not a hiccup.
                return Err(Error::Permanent {
                    provider: self.provider,
                    detail: format!("answer larger than {} bytes", self.options.max_body),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Ok for 2xx; otherwise the error the status means.
    pub fn check(&self, a: &Answer) -> Result<(), Error> {
        let provider = self.provider;
        let detail = format!("HTTP {}: {}", a.status, a.text());
        match a.status {
            200..=299 => Ok(()),
            429 => Err(Error::RateLimited {
                provider,
                retry_after: self.retry_after(a),
            }),
            401 | 403 => Err(Error::Auth { provider, detail }),
            408 | 500..=599 => Err(Error::Transient { provider, detail }),
            _ => Err(Error::Permanent { provider, detail }),
        }
    }

    /// `Retry-After` seconds, or SendGrid's `X-RateLimit-Reset` (epoch seconds) from now.
    fn retry_after(&self, a: &Answer) -> Option<Duration> {
        if let Some(s) = a
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_secs(s));
        }
        let reset: u64 = a.header("x-ratelimit-reset")?.trim().parse().ok()?;
        let now_s = self.options.clock.now_ms() / 1000;
        Some(Duration::from_secs(reset.saturating_sub(now_s).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_accepted() {
        let o = Options::default;
        assert!(Api::new(Provider::Sendgrid, "https://api.sendgrid.com", o()).is_ok());
        assert!(Api::new(Provider::Sendgrid, "http://127.0.0.1:9/sendgrid", o()).is_ok());
        assert!(Api::new(Provider::Sendgrid, "http://[::1]:9", o()).is_ok());
        for bad in [
            "http://api.sendgrid.com",
            "http://10.0.0.1",
            "ftp://x",
            "https://u:p@api.sendgrid.com",
            "not a url",
        ] {
            let e = Api::new(Provider::Sendgrid, bad, o()).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{bad}");
        }
        assert_eq!(segment("a+b@x.com"), "a%2Bb%40x.com");
        let api = Api::new(Provider::Ses, "http://127.0.0.1:80/ses/us-east-1/", o()).unwrap();
        assert_eq!(api.path("/v2/x"), "/ses/us-east-1/v2/x");
    }
}
