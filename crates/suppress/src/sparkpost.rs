//! SparkPost: one bulk upsert with both types (`transactional` and `non_transactional`: each
//! blocks only its kind of mail), verified with `GET /api/v1/suppression-list/{email}`. A 5xx
//! may leave a partial insert; the upsert is idempotent, so the retry completes it.

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::api::segment;
use crate::{Api, Error, Options, Provider, Scope, Suppressed};

pub const DEFAULT_URL: &str = "https://api.sparkpost.com";
const TYPES: [&str; 2] = ["transactional", "non_transactional"];

#[derive(Debug, Clone)]
pub struct SparkpostClient {
    api: Api,
    key: SecretString,
    subaccount: Option<String>,
}

impl SparkpostClient {
    pub fn new(
        api_url: Option<&str>,
        key: SecretString,
        subaccount: Option<String>,
        options: Options,
    ) -> Result<Self, Error> {
        Ok(Self {
            api: Api::new(Provider::Sparkpost, api_url.unwrap_or(DEFAULT_URL), options)?,
            key,
            subaccount,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        // SparkPost takes the raw key, without "Bearer".
        let rb = self
            .api
            .request(method, path)
            .header("Authorization", self.key.expose_secret());
        match &self.subaccount {
            Some(s) => rb.header("X-MSYS-SUBACCOUNT", s),
            None => rb,
        }
    }

    /// Writes both types for `address` and reads them back.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        let recipients: Vec<_> = TYPES
            .iter()
            .map(|t| json!({"recipient": address, "type": t, "description": "Opted out"}))
            .collect();
        let rb = self
            .request(Method::PUT, "/api/v1/suppression-list/")
            .json(&json!({"recipients": recipients}));
        let a = self.api.send(rb).await?;
        self.api.check(&a)?;
        self.lookup(address).await
    }

    /// Reads which types hold `address` (one read, nothing written).
    pub async fn lookup(&self, address: &str) -> Result<Suppressed, Error> {
        let path = format!("/api/v1/suppression-list/{}", segment(address));
        let a = self.api.send(self.request(Method::GET, &path)).await?;
        if a.status != 404 {
            self.api.check(&a)?;
        }
        let held = a.json()["results"].clone();
        let has = |t: &str| {
            held.as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["type"] == t))
        };
        Ok(Suppressed {
            provider: Provider::Sparkpost,
            scopes: TYPES.iter().map(|t| (Scope::Type(t), has(t))).collect(),
        })
    }
    /// One read call that proves the key: the lookup of an address no one sends to (404 when
    /// absent is an answer).
    pub async fn check_credential(&self) -> Result<(), Error> {
        let path = format!("/api/v1/suppression-list/{}", segment(crate::PROBE));
        let a = self.api.send(self.request(Method::GET, &path)).await?;
        if a.status != 404 {
            self.api.check(&a)?;
        }
        Ok(())
    }
}
