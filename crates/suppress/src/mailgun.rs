//! Mailgun: `POST /v3/{domain}/unsubscribes` (`address`, `tag=*`: every mail of the domain) for
//! each sending domain — the lists are per domain, not per account — verified with `GET
//! /v3/{domain}/unsubscribes/{address}`. The base must be the domain's region.

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};

use crate::api::segment;
use crate::{Api, Error, Options, Provider, Scope, Suppressed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailgunRegion {
    Us,
    Eu,
}

impl MailgunRegion {
    pub fn default_url(self) -> &'static str {
        match self {
            Self::Us => "https://api.mailgun.net",
            Self::Eu => "https://api.eu.mailgun.net",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MailgunClient {
    api: Api,
    key: SecretString,
    domains: Vec<String>,
}

impl MailgunClient {
    pub fn new(
        api_url: Option<&str>,
        region: MailgunRegion,
        key: SecretString,
        domains: &[String],
        options: Options,
    ) -> Result<Self, Error> {
        if domains.is_empty() {
            return Err(Error::Config("Mailgun: at least one sending domain".into()));
        }
        Ok(Self {
            api: Api::new(
                Provider::Mailgun,
                api_url.unwrap_or(region.default_url()),
                options,
            )?,
            key,
            domains: domains.to_vec(),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.api
            .request(method, path)
            .basic_auth("api", Some(self.key.expose_secret()))
    }

    /// Unsubscribes `address` from every configured domain and reads each back.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        let mut scopes = Vec::new();
        for domain in &self.domains {
            let path = format!("/v3/{}/unsubscribes", segment(domain));
            let rb = self
                .request(Method::POST, &path)
                .form(&[("address", address), ("tag", "*")]);
            let written = self.api.send(rb).await?;
            let a = self
                .api
                .send(self.request(Method::GET, &format!("{path}/{}", segment(address))))
                .await?;
            let verified = a.status == 200
                && a.json()["address"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(address));
            // A 400 for an address that the read shows is "already there": done.
            if !(written.status == 400 && verified) {
                self.api.check(&written)?;
            }
            if a.status != 404 {
                self.api.check(&a)?;
            }
            scopes.push((Scope::Domain(domain.clone()), verified));
        }
        Ok(Suppressed {
            provider: Provider::Mailgun,
            scopes,
        })
    }
    /// Reads each domain's unsubscribe of `address` (one read per domain, nothing written).
    pub async fn lookup(&self, address: &str) -> Result<Suppressed, Error> {
        let mut scopes = Vec::new();
        for domain in &self.domains {
            let path = format!("/v3/{}/unsubscribes/{}", segment(domain), segment(address));
            let a = self.api.send(self.request(Method::GET, &path)).await?;
            if a.status != 404 {
                self.api.check(&a)?;
            }
            let found = a.status == 200
                && a.json()["address"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(address));
            scopes.push((Scope::Domain(domain.clone()), found));
        }
        Ok(Suppressed {
            provider: Provider::Mailgun,
            scopes,
        })
    }

    /// One read call per sending domain that proves the credential and the domain: the
    /// unsubscribe lookup of an address no one sends to (404 when absent is an answer).
    pub async fn check_credential(&self) -> Result<(), Error> {
        for domain in &self.domains {
            let path = format!(
                "/v3/{}/unsubscribes/{}",
                segment(domain),
                segment(crate::PROBE)
            );
            let a = self.api.send(self.request(Method::GET, &path)).await?;
            if a.status != 404 {
                self.api.check(&a)?;
            }
        }
        Ok(())
    }
}
