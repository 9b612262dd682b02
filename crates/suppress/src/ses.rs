//! Amazon SES v2: `PutSuppressedDestination` in every region the relay sends from, verified
//! with `GetSuppressedDestination`; `GetAccount` tells which reasons the account enforces (an
//! entry whose reason is not enforced does not stop mail).

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::api::{Answer, segment};
use crate::sigv4::{self, Signer};
use crate::{Api, Error, Options, Provider, Scope, Suppressed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SesReason {
    Bounce,
    Complaint,
}

impl SesReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "BOUNCE",
            Self::Complaint => "COMPLAINT",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SesCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

#[derive(Debug, Clone)]
pub struct SesClient {
    regions: Vec<(String, Api)>,
    credentials: SesCredentials,
    reason: SesReason,
}

fn valid_region(r: &str) -> bool {
    r.split('-').count() >= 3
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl SesClient {
    /// `api_url`: `None` for AWS (`https://email.REGION.amazonaws.com`); otherwise a base that
    /// the region is appended to as a path segment (an emulator's `…/ses`).
    pub fn new(
        api_url: Option<&str>,
        credentials: SesCredentials,
        regions: &[String],
        reason: SesReason,
        options: Options,
    ) -> Result<Self, Error> {
        if regions.is_empty() {
            return Err(Error::Config("SES: at least one region".into()));
        }
        let regions = regions
            .iter()
            .map(|r| {
                if !valid_region(r) {
                    return Err(Error::Config(format!("SES: {r:?} is not a region name")));
                }
                let base = match api_url {
                    None => format!("https://email.{r}.amazonaws.com"),
                    Some(u) => format!("{}/{r}", u.trim_end_matches('/')),
                };
                Ok((r.clone(), Api::new(Provider::Ses, &base, options.clone())?))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            regions,
            credentials,
            reason,
        })
    }

    /// A SigV4-signed call.
    async fn call(
        &self,
        region: &str,
        api: &Api,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Answer, Error> {
        let full = api.path(path);
        let mut headers = Vec::new();
        if !body.is_empty() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        let req = sigv4::Request {
            method: method.as_str(),
            path: &full,
            query: "",
            headers: headers.clone(),
            body,
        };
        let signer = Signer {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: self.credentials.secret_access_key.expose_secret(),
            region,
            service: "ses",
        };
        let signed = sigv4::sign(&req, &api.host(), &signer, api.options.clock.now_ms());
        let mut rb = api
            .request(method, path)
            .header("x-amz-date", signed.amz_date)
            .header("authorization", signed.authorization)
            .body(body.to_vec());
        for (n, v) in headers {
            rb = rb.header(n, v);
        }
        api.send(rb).await
    }

    /// The reasons the account enforces in `region` (`SuppressionAttributes.SuppressedReasons`).
    pub async fn enforced_reasons(&self, region: &str) -> Result<Vec<String>, Error> {
        let (r, api) = self
            .regions
            .iter()
            .find(|(r, _)| r == region)
            .ok_or_else(|| Error::Config(format!("SES: region {region} is not configured")))?;
        let a = self
            .call(r, api, Method::GET, "/v2/email/account", b"")
            .await?;
        api.check(&a)?;
        let reasons = a.json()["SuppressionAttributes"]["SuppressedReasons"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(reasons)
    }

    /// Fails with [`Error::ReasonNotEnforced`] unless every region enforces the configured
    /// reason.
    pub async fn check_reason(&self) -> Result<(), Error> {
        for (region, _) in &self.regions {
            let enforced = self.enforced_reasons(region).await?;
            if !enforced.iter().any(|r| r == self.reason.as_str()) {
                return Err(Error::ReasonNotEnforced {
                    region: region.clone(),
                    reason: self.reason.as_str(),
                    enforced,
                });
            }
        }
        Ok(())
    }

    /// Reads each region's entry for `address` (one read per region, nothing written): listed
    /// with the configured reason.
    pub async fn lookup(&self, address: &str) -> Result<Suppressed, Error> {
        let path = format!("/v2/email/suppression/addresses/{}", segment(address));
        let mut scopes = Vec::new();
        for (region, api) in &self.regions {
            let a = self.call(region, api, Method::GET, &path, b"").await?;
            if a.status != 404 {
                api.check(&a)?;
            }
            let reason = a.json()["SuppressedDestination"]["Reason"].clone();
            let listed = a.status == 200 && reason == self.reason.as_str();
            scopes.push((Scope::Region(region.clone()), listed));
        }
        Ok(Suppressed {
            provider: Provider::Ses,
            scopes,
        })
    }

    /// Puts `address` (exact case) on the list in every region, and reads each back.
    pub async fn suppress(&self, address: &str) -> Result<Suppressed, Error> {
        let body = json!({"EmailAddress": address, "Reason": self.reason.as_str()}).to_string();
        let mut scopes = Vec::new();
        for (region, api) in &self.regions {
            let a = self
                .call(
                    region,
                    api,
                    Method::PUT,
                    "/v2/email/suppression/addresses",
                    body.as_bytes(),
                )
                .await?;
            api.check(&a)?;
            let path = format!("/v2/email/suppression/addresses/{}", segment(address));
            let a = self.call(region, api, Method::GET, &path, b"").await?;
            if a.status == 404 {
                return Err(Error::Transient {
                    provider: Provider::Ses,
                    detail: format!(
                        "{region}: written, but GetSuppressedDestination does not find it"
                    ),
                });
            }
            api.check(&a)?;
            let reason = a.json()["SuppressedDestination"]["Reason"].clone();
            scopes.push((
                Scope::Region(region.clone()),
                reason == self.reason.as_str(),
            ));
        }
        Ok(Suppressed {
            provider: Provider::Ses,
            scopes,
        })
    }
}
