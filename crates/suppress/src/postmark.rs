//! Postmark: `POST /message-streams/{stream}/suppressions` on every stream the relay sends
//! through, checked per address, then the dump. Postmark processes suppressions
//! asynchronously ("can take a minute"), so a write the dump does not show yet is
//! [`Error::NotConfirmedYet`]: call [`PostmarkClient::verify`] later, it does not write again.

use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::{Api, Error, Options, Provider, Scope, Suppressed};

pub const DEFAULT_URL: &str = "https://api.postmarkapp.com";
/// When to look again after a write the dump does not show.
const CONFIRM_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct PostmarkClient {
    api: Api,
    token: SecretString,
    streams: Vec<String>,
}

impl PostmarkClient {
    pub fn new(
        api_url: Option<&str>,
        server_token: SecretString,
        streams: &[String],
        options: Options,
    ) -> Result<Self, Error> {
        if streams.is_empty() {
            return Err(Error::Config(
                "Postmark: at least one message stream".into(),
            ));
        }
        Ok(Self {
            api: Api::new(Provider::Postmark, api_url.unwrap_or(DEFAULT_URL), options)?,
            token: server_token,
            streams: streams.to_vec(),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.api
            .request(method, path)
            .header("Accept", "application/json")
            .header("X-Postmark-Server-Token", self.token.expose_secret())
    }

    fn stream_path(stream: &str) -> String {
        format!(
            "/message-streams/{}/suppressions",
            crate::api::segment(stream)
        )
    }

    /// Suppresses `address` on every stream, then verifies.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        for stream in &self.streams {
            let rb = self
                .request(Method::POST, &Self::stream_path(stream))
                .json(&json!({"Suppressions": [{"EmailAddress": address}]}));
            let a = self.api.send(rb).await?;
            self.api.check(&a)?;
            let row = a.json()["Suppressions"][0].clone();
            if row["Status"] != "Suppressed" {
                return Err(Error::Permanent {
                    provider: Provider::Postmark,
                    detail: format!("{stream}: {} {}", row["Status"], row["Message"]),
                });
            }
        }
        self.verify(address).await
    }

    /// Reads each stream's dump; [`Error::NotConfirmedYet`] while any stream does not show
    /// the address.
    pub async fn verify(&self, address: &str) -> Result<Suppressed, Error> {
        let shown = self.lookup(address).await?;
        if !shown.all_verified() {
            return Err(Error::NotConfirmedYet {
                provider: Provider::Postmark,
                retry_after: CONFIRM_AFTER,
            });
        }
        Ok(shown)
    }

    /// Reads which streams' dumps show `address` as active (one read per stream).
    pub async fn lookup(&self, address: &str) -> Result<Suppressed, Error> {
        let mut scopes = Vec::new();
        for stream in &self.streams {
            let path = format!("{}/dump", Self::stream_path(stream));
            let rb = self
                .request(Method::GET, &path)
                .query(&[("EmailAddress", address)]);
            let a = self.api.send(rb).await?;
            self.api.check(&a)?;
            let shown = a.json()["Suppressions"].as_array().is_some_and(|rows| {
                rows.iter().any(|r| {
                    r["EmailAddress"]
                        .as_str()
                        .is_some_and(|e| e.eq_ignore_ascii_case(address))
                })
            });
            scopes.push((Scope::Stream(stream.clone()), shown));
        }
        Ok(Suppressed {
            provider: Provider::Postmark,
            scopes,
        })
    }
    /// One read call per stream that proves the server token and the stream: the dump,
    /// filtered to an address no one sends to.
    pub async fn check_credential(&self) -> Result<(), Error> {
        for stream in &self.streams {
            let path = format!("{}/dump", Self::stream_path(stream));
            let rb = self
                .request(Method::GET, &path)
                .query(&[("EmailAddress", crate::PROBE)]);
            let a = self.api.send(rb).await?;
            self.api.check(&a)?;
        }
        Ok(())
    }
}
