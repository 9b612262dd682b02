//! The operations the service needs, each over REST v2 or XML-RPC.

mod opt_out;
mod pages;

use reqwest::Method;
use serde_json::Value as Json;

use crate::client::KeapClient;
use crate::error::Error;
use crate::ids::{ContactId, EmailAddress, EmailField};
use crate::model::{
    Address, AddressStatus, Api, AttemptOutcome, Contact, ContactsPage, OptOutMethod, OptOutPath,
    OptOutReport, OptedOutPage, PathAttempt,
};
use crate::status::EmailStatus;
use crate::xmlrpc::Value;

/// Largest page Keap serves.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Statuses in which an address is not marketable: what "opted out" lists cover.
fn not_marketable() -> impl Iterator<Item = EmailStatus> {
    EmailStatus::ALL.into_iter().filter(|s| !s.is_marketable())
}

fn protocol(what: &str) -> Error {
    Error::Protocol(what.to_string())
}

fn parse_status(s: &str) -> Result<EmailStatus, Error> {
    s.parse()
        .map_err(|e: crate::UnknownStatus| Error::Protocol(e.to_string()))
}

/// REST filters use `==`, `,` and `;` as syntax and `*` as a wildcard; XML-RPC queries use
/// `%`. An address holding one of them cannot be looked up exactly, so it is refused rather
/// than matched loosely.
fn lookup_safe(email: &EmailAddress) -> Result<(), Error> {
    if email.as_str().contains(['*', ',', ';', '%', '=']) {
        return Err(Error::InvalidRequest(format!(
            "{email} cannot be looked up exactly"
        )));
    }
    Ok(())
}

/// A v2 id: a JSON string (as Keap's document says), or a number (as v1 sent them).
fn rest_id(v: Option<&Json>) -> Option<ContactId> {
    match v? {
        Json::String(s) => s.parse().ok(),
        Json::Number(n) => n.as_i64().and_then(ContactId::new),
        _ => None,
    }
}

/// The properties a contact read asks for: `id` is a field like any other in v2.
const CONTACT_FIELDS: &str = "id,email_addresses";

fn rest_contact(v: &Json) -> Result<Contact, Error> {
    let id = rest_id(v.get("id")).ok_or_else(|| protocol("contact without a valid id"))?;
    let mut addresses = Vec::new();
    for a in v
        .get("email_addresses")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let field = match a.get("field").and_then(Json::as_str) {
            Some(f) => match f.parse::<EmailField>() {
                Ok(f) => f,
                // EMAIL_FIELD_UNSPECIFIED and future fields: not one of the three we sync.
                Err(_) => continue,
            },
            None => continue,
        };
        let email = a
            .get("email")
            .and_then(Json::as_str)
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| protocol("address without email"))?;
        let status = match a.get("email_opt_status").and_then(Json::as_str) {
            Some(s) => parse_status(s)?,
            None => return Err(protocol("address without email_opt_status")),
        };
        addresses.push(Address {
            field,
            email: EmailAddress::from_stored(email),
            status,
        });
    }
    addresses.sort_by_key(|a| a.field);
    Ok(Contact { id, addresses })
}

fn next_token(v: &Json) -> Option<String> {
    v.get("next_page_token")
        .and_then(Json::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

impl KeapClient {
    fn read_api(&self) -> Api {
        match self.inner.method {
            OptOutMethod::XmlRpc => Api::XmlRpc,
            OptOutMethod::Rest | OptOutMethod::Auto => Api::Rest,
        }
    }

    /// A REST v2 list URL: the resource, its query parameters, a page size and the page
    /// token to continue from.
    fn rest_page_url(
        &self,
        resource: &str,
        params: &[(&str, &str)],
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<url::Url, Error> {
        let mut url = self.rest_url(&[resource])?;
        {
            let mut q = url.query_pairs_mut();
            q.extend_pairs(params)
                .append_pair("page_size", &page_size.to_string());
            if let Some(t) = page_token {
                q.append_pair("page_token", t);
            }
        }
        Ok(url)
    }

    /// A contact's addresses with each one's status. One call over REST; over XML-RPC one
    /// call plus one per address.
    pub async fn contact(&self, id: ContactId) -> Result<Contact, Error> {
        match self.read_api() {
            Api::Rest => {
                let mut url = self.rest_url(&["contacts", &id.to_string()])?;
                url.query_pairs_mut().append_pair("fields", CONTACT_FIELDS);
                rest_contact(&self.rest(Method::GET, url, None).await?)
            }
            Api::XmlRpc => {
                let fields = EmailField::ALL
                    .iter()
                    .map(|f| Value::str(f.xmlrpc_name()))
                    .collect();
                let v = self
                    .xmlrpc(
                        "ContactService.load",
                        vec![Value::Int(id.get() as i32), Value::Array(fields)],
                    )
                    .await
                    .map_err(|e| match e {
                        Error::Fault {
                            code: 5, message, ..
                        } => Error::NotFound(message),
                        e => e,
                    })?;
                let addresses = self.xmlrpc_addresses(&v).await?;
                Ok(Contact { id, addresses })
            }
        }
    }

    /// The addresses of an XML-RPC `Contact` struct, each with its status (one
    /// `EmailAddStatus` query per address: XML-RPC has no join).
    async fn xmlrpc_addresses(&self, row: &Value) -> Result<Vec<Address>, Error> {
        let mut addresses = Vec::new();
        for field in EmailField::ALL {
            let Some(raw) = row
                .member(field.xmlrpc_name())
                .and_then(Value::as_str)
                .filter(|r| !r.trim().is_empty())
            else {
                continue;
            };
            let email = EmailAddress::from_stored(raw);
            // An address with no EmailAddStatus row has no recorded consent.
            let status = self
                .status_xmlrpc(&email)
                .await?
                .unwrap_or(EmailStatus::NonMarketable);
            addresses.push(Address {
                field,
                email,
                status,
            });
        }
        Ok(addresses)
    }

    /// Every contact holding `email` in Email, Email 2 or Email 3.
    pub async fn contacts_with_address(
        &self,
        email: &EmailAddress,
    ) -> Result<Vec<ContactId>, Error> {
        lookup_safe(email)?;
        let mut ids = Vec::new();
        match self.read_api() {
            Api::Rest => {
                let mut token: Option<String> = None;
                loop {
                    let filter = format!("email=={}", email.as_str());
                    let url = self.rest_page_url(
                        "contacts",
                        &[("filter", &filter), ("fields", "id")],
                        MAX_PAGE_SIZE,
                        token.as_deref(),
                    )?;
                    let v = self.rest(Method::GET, url, None).await?;
                    for c in v
                        .get("contacts")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                    {
                        ids.push(
                            rest_id(c.get("id"))
                                .ok_or_else(|| protocol("contact without a valid id"))?,
                        );
                    }
                    token = next_token(&v);
                    if token.is_none() {
                        break;
                    }
                }
            }
            Api::XmlRpc => {
                let v = self
                    .xmlrpc(
                        "ContactService.findByEmail",
                        vec![
                            Value::str(email.as_str()),
                            Value::Array(vec![Value::str("Id")]),
                        ],
                    )
                    .await?;
                for c in v
                    .as_array()
                    .ok_or_else(|| protocol("findByEmail: not an array"))?
                {
                    let id = c
                        .member("Id")
                        .and_then(Value::as_i64)
                        .and_then(ContactId::new)
                        .ok_or_else(|| protocol("findByEmail: row without Id"))?;
                    ids.push(id);
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The status of one address; `None` when Keap has no record of it.
    pub async fn address_status(&self, email: &EmailAddress) -> Result<Option<EmailStatus>, Error> {
        match self.read_api() {
            Api::Rest => self.status_rest(email).await,
            Api::XmlRpc => self.status_xmlrpc(email).await,
        }
    }

    async fn status_rest(&self, email: &EmailAddress) -> Result<Option<EmailStatus>, Error> {
        let url = self.rest_url(&["emailAddresses", email.as_str(), "status"])?;
        match self.rest(Method::GET, url, None).await {
            Ok(v) => {
                let s = v
                    .get("status")
                    .and_then(Json::as_str)
                    .ok_or_else(|| protocol("status answer without status"))?;
                parse_status(s).map(Some)
            }
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn status_xmlrpc(&self, email: &EmailAddress) -> Result<Option<EmailStatus>, Error> {
        lookup_safe(email)?;
        let v = self
            .xmlrpc(
                "DataService.query",
                vec![
                    Value::str("EmailAddStatus"),
                    Value::Int(10),
                    Value::Int(0),
                    Value::Struct(vec![("Email".into(), Value::str(email.as_str()))]),
                    Value::Array(vec![Value::str("Email"), Value::str("Type")]),
                ],
            )
            .await?;
        let rows = v
            .as_array()
            .ok_or_else(|| protocol("query: not an array"))?;
        let want = email.key();
        for r in rows {
            let matches = r
                .member("Email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.trim().to_lowercase() == want);
            if let (true, Some(t)) = (matches, r.member("Type").and_then(Value::as_str)) {
                return parse_status(t).map(Some);
            }
        }
        Ok(None)
    }
}
