//! Brevo: one `POST /v3/contacts` with `updateEnabled` (creates or updates) that sets
//! `emailBlacklisted` (campaigns) and `smtpBlacklistSender` with every sender the relay uses
//! (transactional mail is blocked per sender only).

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::{Api, Error, Options, Provider, Scope, Suppressed};

pub const DEFAULT_URL: &str = "https://api.brevo.com";

#[derive(Debug, Clone)]
pub struct BrevoClient {
    api: Api,
    key: SecretString,
    senders: Vec<String>,
}

impl BrevoClient {
    pub fn new(
        api_url: Option<&str>,
        key: SecretString,
        senders: &[String],
        options: Options,
    ) -> Result<Self, Error> {
        Ok(Self {
            api: Api::new(Provider::Brevo, api_url.unwrap_or(DEFAULT_URL), options)?,
            key,
            senders: senders.to_vec(),
        })
    }

    /// Blocklists `address` for campaigns and for each configured sender.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        let body = json!({
            "email": address,
            "emailBlacklisted": true,
            "smtpBlacklistSender": self.senders,
            "updateEnabled": true,
        });
        let rb = self
            .api
            .request(Method::POST, "/v3/contacts")
            .header("api-key", self.key.expose_secret())
            .header("Accept", "application/json")
            .json(&body);
        let a = self.api.send(rb).await?;
        self.api.check(&a)?;
        let mut scopes = vec![(Scope::Campaigns, false)];
        scopes.extend(
            self.senders
                .iter()
                .map(|s| (Scope::Sender(s.clone()), false)),
        );
        Ok(Suppressed {
            provider: Provider::Brevo,
            scopes,
        })
    }
    /// One read call that proves the key: the contact lookup of an address no one sends to
    /// (404 when absent is an answer).
    pub async fn check_credential(&self) -> Result<(), Error> {
        let path = format!("/v3/contacts/{}", crate::api::segment(crate::PROBE));
        let rb = self
            .api
            .request(Method::GET, &path)
            .header("api-key", self.key.expose_secret())
            .header("Accept", "application/json");
        let a = self.api.send(rb).await?;
        if a.status != 404 {
            self.api.check(&a)?;
        }
        Ok(())
    }
}
