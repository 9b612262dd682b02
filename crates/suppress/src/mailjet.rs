//! Mailjet: `IsExcludedFromCampaigns` on the contact (created when Mailjet has none). It
//! blocks marketing mail only — "The contacts will still receive all transactional emails" —
//! hence [`Scope::Campaigns`]. The answer carries the contact, which is the read-back.

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::api::{Answer, segment};
use crate::{Api, Error, Options, Provider, Scope, Suppressed};

pub const DEFAULT_URL: &str = "https://api.mailjet.com";

#[derive(Debug, Clone)]
pub struct MailjetClient {
    api: Api,
    public_key: String,
    private_key: SecretString,
}

impl MailjetClient {
    pub fn new(
        api_url: Option<&str>,
        public_key: String,
        private_key: SecretString,
        options: Options,
    ) -> Result<Self, Error> {
        Ok(Self {
            api: Api::new(Provider::Mailjet, api_url.unwrap_or(DEFAULT_URL), options)?,
            public_key,
            private_key,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.api
            .request(method, path)
            .basic_auth(&self.public_key, Some(self.private_key.expose_secret()))
    }

    async fn exclude(&self, address: &str) -> Result<Answer, Error> {
        let rb = self
            .request(
                Method::PUT,
                &format!("/v3/REST/contact/{}", segment(address)),
            )
            .json(&json!({"IsExcludedFromCampaigns": true}));
        self.api.send(rb).await
    }

    /// Excludes `address` from campaigns, creating the contact if Mailjet has none.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        let mut a = self.exclude(address).await?;
        if a.status == 404 {
            let rb = self
                .request(Method::POST, "/v3/REST/contact")
                .json(&json!({"Email": address, "IsExcludedFromCampaigns": true}));
            a = self.api.send(rb).await?;
            if a.status == 400 {
                // Created meanwhile by someone else (MJ18): set the flag on it.
                a = self.exclude(address).await?;
            }
        }
        self.api.check(&a)?;
        let excluded = a.json()["Data"][0]["IsExcludedFromCampaigns"] == true;
        Ok(Suppressed {
            provider: Provider::Mailjet,
            scopes: vec![(Scope::Campaigns, excluded)],
        })
    }
    /// One read call that proves the key pair: the contact lookup of an address no one sends
    /// to (404 when absent is an answer).
    pub async fn check_credential(&self) -> Result<(), Error> {
        let path = format!("/v3/REST/contact/{}", segment(crate::PROBE));
        let a = self.api.send(self.request(Method::GET, &path)).await?;
        if a.status != 404 {
            self.api.check(&a)?;
        }
        Ok(())
    }
}
