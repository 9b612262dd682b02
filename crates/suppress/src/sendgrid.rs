//! SendGrid: `POST /v3/asm/suppressions/global` (the (sub)user's global list: "they don't
//! receive any emails from you"), verified with `GET …/global/{email}` (`{}` for a miss).

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::api::segment;
use crate::{Api, Error, Options, Provider, Scope, Suppressed};

pub const DEFAULT_URL: &str = "https://api.sendgrid.com";

#[derive(Debug, Clone)]
pub struct SendgridClient {
    api: Api,
    key: SecretString,
    /// A subuser, sent as `on-behalf-of`.
    on_behalf_of: Option<String>,
}

impl SendgridClient {
    /// `api_url`: `None` for `https://api.sendgrid.com` (EU subusers: `https://api.eu.sendgrid.com`).
    pub fn new(
        api_url: Option<&str>,
        key: SecretString,
        on_behalf_of: Option<String>,
        options: Options,
    ) -> Result<Self, Error> {
        Ok(Self {
            api: Api::new(Provider::Sendgrid, api_url.unwrap_or(DEFAULT_URL), options)?,
            key,
            on_behalf_of,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self
            .api
            .request(method, path)
            .bearer_auth(self.key.expose_secret());
        match &self.on_behalf_of {
            Some(u) => rb.header("on-behalf-of", u),
            None => rb,
        }
    }

    /// Adds `address` to the global suppressions and reads it back.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        let rb = self
            .request(Method::POST, "/v3/asm/suppressions/global")
            .json(&json!({"recipient_emails": [address]}));
        let a = self.api.send(rb).await?;
        self.api.check(&a)?;
        self.lookup(address).await
    }

    /// Reads whether `address` is on the global suppressions (one read, nothing written).
    pub async fn lookup(&self, address: &str) -> Result<Suppressed, Error> {
        let path = format!("/v3/asm/suppressions/global/{}", segment(address));
        let a = self.api.send(self.request(Method::GET, &path)).await?;
        self.api.check(&a)?;
        let found = a.json()["recipient_email"]
            .as_str()
            .is_some_and(|e| e.eq_ignore_ascii_case(address));
        Ok(Suppressed {
            provider: Provider::Sendgrid,
            scopes: vec![(Scope::Account, found)],
        })
    }
    /// One read call that proves the credential: the global suppression lookup of an address
    /// no one sends to (200, `{}` when absent).
    pub async fn check_credential(&self) -> Result<(), Error> {
        let path = format!("/v3/asm/suppressions/global/{}", segment(crate::PROBE));
        let a = self.api.send(self.request(Method::GET, &path)).await?;
        self.api.check(&a)
    }
}
