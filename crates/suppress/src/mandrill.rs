//! Mandrill: `POST /api/1.0/rejects/add` with the key in the body. Mandrill answers its errors
//! with HTTP 500 and a `name`, so the name decides: `Invalid_Key` is a refused credential,
//! `ValidationError` and the like are permanent, the rest transient. `added: false` means the
//! address is allowlisted (the add had no effect) or already listed (`rejects/list` tells).

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::api::Answer;
use crate::{Api, Error, Options, Provider, Scope, Suppressed};

pub const DEFAULT_URL: &str = "https://mandrillapp.com";

#[derive(Debug, Clone)]
pub struct MandrillClient {
    api: Api,
    key: SecretString,
    subaccount: Option<String>,
}

impl MandrillClient {
    pub fn new(
        api_url: Option<&str>,
        key: SecretString,
        subaccount: Option<String>,
        options: Options,
    ) -> Result<Self, Error> {
        Ok(Self {
            api: Api::new(Provider::Mandrill, api_url.unwrap_or(DEFAULT_URL), options)?,
            key,
            subaccount,
        })
    }

    fn check(&self, a: &Answer) -> Result<(), Error> {
        let body = a.json();
        if a.status != 500 || body["status"] != "error" {
            return self.api.check(a);
        }
        let provider = Provider::Mandrill;
        let detail = format!("{}: {}", body["name"], body["message"]);
        Err(match body["name"].as_str().unwrap_or("") {
            "Invalid_Key" | "PaymentRequired" => Error::Auth { provider, detail },
            "ValidationError" | "Unknown_Subaccount" => Error::Permanent { provider, detail },
            _ => Error::Transient { provider, detail },
        })
    }

    /// Whether `rejects/list` holds `address` (an `added: false` may mean "already there").
    async fn listed(&self, address: &str) -> Result<bool, Error> {
        let mut body = json!({"key": self.key.expose_secret(), "email": address});
        if let Some(s) = &self.subaccount {
            body["subaccount"] = json!(s);
        }
        let rb = self
            .api
            .request(Method::POST, "/api/1.0/rejects/list")
            .json(&body);
        let a = self.api.send(rb).await?;
        self.check(&a)?;
        Ok(a.json().as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                r["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(address))
            })
        }))
    }

    /// Reads whether `rejects/list` holds `address` (one read, nothing written).
    pub async fn lookup(&self, address: &str) -> Result<Suppressed, Error> {
        Ok(Suppressed {
            provider: Provider::Mandrill,
            scopes: vec![(Scope::Account, self.listed(address).await?)],
        })
    }

    /// Adds `address` to the rejection denylist and reads `rejects/list` back.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        let mut body = json!({
            "key": self.key.expose_secret(),
            "email": address,
            "comment": "Opted out",
        });
        if let Some(s) = &self.subaccount {
            body["subaccount"] = json!(s);
        }
        let rb = self
            .api
            .request(Method::POST, "/api/1.0/rejects/add")
            .json(&body);
        let a = self.api.send(rb).await?;
        self.check(&a)?;
        let added = a.json()["added"] == true;
        let listed = self.listed(address).await?;
        if !added && !listed {
            return Err(Error::NoEffect {
                provider: Provider::Mandrill,
                detail: format!("{address} is on the allowlist, so the add had no effect"),
            });
        }
        Ok(Suppressed {
            provider: Provider::Mandrill,
            scopes: vec![(Scope::Account, listed)],
        })
    }
    /// One read call that proves the key: `rejects/list` for an address no one sends to.
    pub async fn check_credential(&self) -> Result<(), Error> {
        self.listed(crate::PROBE).await.map(|_| ())
    }
}
