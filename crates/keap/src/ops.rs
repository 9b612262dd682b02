//! The operations the service needs, each over REST v2 or XML-RPC.

use reqwest::Method;
use serde_json::{Value as Json, json};

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

    /// Opts an address out through the configured method: REST v2, XML-RPC, or (`Auto`)
    /// REST v2 first and XML-RPC when REST leaves the address marketable (Keap's REST
    /// opt-out is undocumented). See [`Self::opt_out_via`].
    pub async fn opt_out(&self, email: &EmailAddress, reason: &str) -> Result<OptOutReport, Error> {
        let order: &[Api] = match self.inner.method {
            OptOutMethod::Rest => &[Api::Rest],
            OptOutMethod::XmlRpc => &[Api::XmlRpc],
            OptOutMethod::Auto => &[Api::Rest, Api::XmlRpc],
        };
        self.opt_out_via(email, reason, order, false).await
    }

    /// Tries each write path in `order` until a read-back shows the address in a stop or
    /// terminal status. A path that is ignored, refused or unavailable is recorded and the
    /// next is tried; the report is `verified` only when a read-back showed it. Errors that
    /// a retry may cure (timeouts, 5xx, throttling) end the attempt.
    ///
    /// `trust_answer`: take the REST write's own answer as the read-back when it shows a stop
    /// status (for an app whose REST path a read-back has already proven; one call saved).
    pub async fn opt_out_via(
        &self,
        email: &EmailAddress,
        reason: &str,
        order: &[Api],
        trust_answer: bool,
    ) -> Result<OptOutReport, Error> {
        let reason = if reason.trim().is_empty() {
            "API Opt Out"
        } else {
            reason
        };
        let before = self.calls_made();
        let mut attempts: Vec<PathAttempt> = Vec::new();
        let mut status_after = None;
        for &api in order {
            let outcome = match api {
                Api::Rest => self.try_rest_opt_out(email, reason, trust_answer).await?,
                Api::XmlRpc => self.try_xmlrpc_opt_out(email, reason).await?,
            };
            if let AttemptOutcome::Took(s) | AttemptOutcome::Ignored(s) = &outcome {
                status_after = *s;
            }
            let took = matches!(outcome, AttemptOutcome::Took(_));
            attempts.push(PathAttempt { api, outcome });
            if took {
                break;
            }
        }
        let verified = matches!(
            attempts.last(),
            Some(PathAttempt {
                outcome: AttemptOutcome::Took(_),
                ..
            })
        );
        let path = match (attempts.last().map(|a| a.api), attempts.len()) {
            (Some(Api::XmlRpc), 1) => OptOutPath::XmlRpc,
            (Some(Api::XmlRpc), _) => OptOutPath::XmlRpcFallback,
            _ => OptOutPath::Rest,
        };
        if !verified {
            tracing::warn!(email = %email, attempts = ?attempts, "no write path opted the address out");
        }
        Ok(OptOutReport {
            email: email.clone(),
            status_after,
            verified,
            path,
            calls: (self.calls_made() - before) as u32,
            attempts,
        })
    }

    /// The status read back after a write.
    async fn read_back(&self, email: &EmailAddress) -> Result<AttemptOutcome, Error> {
        let after = self.address_status(email).await?;
        Ok(if after.is_some_and(|s| s.is_stop() || s.is_terminal()) {
            AttemptOutcome::Took(after)
        } else {
            AttemptOutcome::Ignored(after)
        })
    }

    /// `PATCH …/status {"opted_in": false}`, then a read-back (or, trusted, its own answer).
    async fn try_rest_opt_out(
        &self,
        email: &EmailAddress,
        reason: &str,
        trust_answer: bool,
    ) -> Result<AttemptOutcome, Error> {
        let url = self.rest_url(&["emailAddresses", email.as_str(), "status"])?;
        let body = json!({"opted_in": false, "reason": reason});
        match self.rest(Method::PATCH, url, Some(body)).await {
            Ok(answer) => {
                let said = answer
                    .get("status")
                    .and_then(Json::as_str)
                    .and_then(|s| parse_status(s).ok());
                match said {
                    Some(s) if trust_answer && (s.is_stop() || s.is_terminal()) => {
                        Ok(AttemptOutcome::Took(Some(s)))
                    }
                    _ => self.read_back(email).await,
                }
            }
            // REST v2 knows only addresses Keap has a row for; XML-RPC creates one.
            Err(Error::NotFound(why) | Error::InvalidRequest(why)) => {
                Ok(AttemptOutcome::Refused(why))
            }
            Err(e) => Err(e),
        }
    }

    /// `APIEmailService.optOut`, then a read-back.
    async fn try_xmlrpc_opt_out(
        &self,
        email: &EmailAddress,
        reason: &str,
    ) -> Result<AttemptOutcome, Error> {
        match self.opt_out_xmlrpc(email, reason).await {
            Ok(_) => self.read_back(email).await,
            Err(Error::XmlRpcUnavailable(why)) => Ok(AttemptOutcome::Unavailable(why)),
            Err(Error::Fault {
                code,
                category,
                message,
            }) if !matches!(code, 3 | 4 | 6 | 500) => Ok(AttemptOutcome::Refused(format!(
                "fault {code} [{category}] {message}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// One cheap REST call (a one-contact page of ids): the credential works and REST
    /// answers. Keap's quota headers come back with it (see the pacer's budget).
    pub async fn probe_rest(&self) -> Result<(), Error> {
        let url = self.rest_page_url("contacts", &[("fields", "id")], 1, None)?;
        self.rest(Method::GET, url, None).await.map(|_| ())
    }

    /// One cheap XML-RPC call: `Ok` when XML-RPC answers (a fault is an answer too),
    /// [`Error::XmlRpcUnavailable`] when it is switched off.
    pub async fn probe_xmlrpc(&self) -> Result<(), Error> {
        match self
            .xmlrpc(
                "APIEmailService.getOptStatus",
                vec![Value::str("probe@optsync.invalid")],
            )
            .await
        {
            Ok(_) | Err(Error::Fault { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn opt_out_xmlrpc(&self, email: &EmailAddress, reason: &str) -> Result<bool, Error> {
        let v = self
            .xmlrpc(
                "APIEmailService.optOut",
                vec![Value::str(email.as_str()), Value::str(reason)],
            )
            .await?;
        v.as_bool().ok_or_else(|| protocol("optOut: not a boolean"))
    }

    /// A page of contacts with their addresses and statuses, in id order. `cursor` is the
    /// previous page's `next` (`None` for the first page). Over REST one call per page; over
    /// XML-RPC one call plus one per address.
    pub async fn contacts_page(
        &self,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ContactsPage, Error> {
        let size = page_size.clamp(1, MAX_PAGE_SIZE);
        match self.read_api() {
            Api::Rest => {
                let url =
                    self.rest_page_url("contacts", &[("fields", CONTACT_FIELDS)], size, cursor)?;
                let v = self.rest(Method::GET, url, None).await?;
                let contacts = v
                    .get("contacts")
                    .and_then(Json::as_array)
                    .ok_or_else(|| protocol("contacts list without contacts"))?
                    .iter()
                    .map(rest_contact)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ContactsPage {
                    contacts,
                    next: next_token(&v),
                })
            }
            Api::XmlRpc => {
                let page: i32 = match cursor {
                    Some(c) => c
                        .parse()
                        .map_err(|_| Error::InvalidRequest(format!("bad cursor {c:?}")))?,
                    None => 0,
                };
                let mut fields = vec![Value::str("Id")];
                fields.extend(EmailField::ALL.iter().map(|f| Value::str(f.xmlrpc_name())));
                let v = self
                    .xmlrpc(
                        "DataService.query",
                        vec![
                            Value::str("Contact"),
                            Value::Int(size as i32),
                            Value::Int(page),
                            Value::Struct(vec![("Id".into(), Value::str("%"))]),
                            Value::Array(fields),
                            Value::str("Id"),
                            Value::Bool(true),
                        ],
                    )
                    .await?;
                let rows = v
                    .as_array()
                    .ok_or_else(|| protocol("query: not an array"))?;
                let mut contacts = Vec::with_capacity(rows.len());
                for r in rows {
                    let id = r
                        .member("Id")
                        .and_then(Value::as_i64)
                        .and_then(ContactId::new)
                        .ok_or_else(|| protocol("Contact row without Id"))?;
                    let addresses = self.xmlrpc_addresses(r).await?;
                    contacts.push(Contact { id, addresses });
                }
                let next = (rows.len() == size as usize).then(|| (page + 1).to_string());
                Ok(ContactsPage { contacts, next })
            }
        }
    }

    /// A page of addresses that are not marketable (opted out, bounced, non-marketable …).
    /// Over REST one call per page, ordered by address. Over XML-RPC the table is read one
    /// status at a time (the cursor says which and where), so a page may be shorter.
    pub async fn opted_out_page(
        &self,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<OptedOutPage, Error> {
        let size = page_size.clamp(1, MAX_PAGE_SIZE);
        match self.read_api() {
            Api::Rest => self.opted_out_page_rest(cursor, size).await,
            Api::XmlRpc => self.opted_out_page_xmlrpc(cursor, size).await,
        }
    }

    async fn opted_out_page_rest(
        &self,
        cursor: Option<&str>,
        size: u32,
    ) -> Result<OptedOutPage, Error> {
        let url = self.rest_page_url(
            "emailAddresses",
            &[("filter", "opted_in==false"), ("order_by", "email")],
            size,
            cursor,
        )?;
        let v = self.rest(Method::GET, url, None).await?;
        let addresses = v
            .get("email_addresses")
            .and_then(Json::as_array)
            .ok_or_else(|| protocol("list without email_addresses"))?
            .iter()
            .map(rest_address_status)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OptedOutPage {
            addresses,
            next: next_token(&v),
        })
    }

    /// Reads `EmailAddStatus` one not-marketable type at a time; the cursor is `TYPE:PAGE`.
    async fn opted_out_page_xmlrpc(
        &self,
        cursor: Option<&str>,
        size: u32,
    ) -> Result<OptedOutPage, Error> {
        let types: Vec<EmailStatus> = not_marketable().collect();
        let (mut t, mut page) = match cursor {
            Some(c) => c
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<i32>().ok()?)))
                .ok_or_else(|| Error::InvalidRequest(format!("bad cursor {c:?}")))?,
            None => (0, 0),
        };
        while t < types.len() {
            let rows = self.email_add_status_rows(types[t], size, page).await?;
            let full = rows.len() == size as usize;
            let (nt, np) = if full { (t, page + 1) } else { (t + 1, 0) };
            if !rows.is_empty() || nt >= types.len() {
                let next = (nt < types.len()).then(|| format!("{nt}:{np}"));
                return Ok(OptedOutPage {
                    addresses: rows,
                    next,
                });
            }
            (t, page) = (nt, np);
        }
        Ok(OptedOutPage {
            addresses: Vec::new(),
            next: None,
        })
    }

    /// One page of `EmailAddStatus` rows of one type.
    async fn email_add_status_rows(
        &self,
        status: EmailStatus,
        size: u32,
        page: i32,
    ) -> Result<Vec<AddressStatus>, Error> {
        let v = self
            .xmlrpc(
                "DataService.query",
                vec![
                    Value::str("EmailAddStatus"),
                    Value::Int(size as i32),
                    Value::Int(page),
                    Value::Struct(vec![("Type".into(), Value::str(status.type_name()))]),
                    Value::Array(vec![Value::str("Email"), Value::str("Type")]),
                    Value::str("Id"),
                    Value::Bool(true),
                ],
            )
            .await?;
        v.as_array()
            .ok_or_else(|| protocol("query: not an array"))?
            .iter()
            .map(|r| {
                let (Some(e), Some(ty)) = (
                    r.member("Email").and_then(Value::as_str),
                    r.member("Type").and_then(Value::as_str),
                ) else {
                    return Err(protocol("EmailAddStatus row without Email or Type"));
                };
                Ok(AddressStatus {
                    email: EmailAddress::from_stored(e),
                    status: parse_status(ty)?,
                })
            })
            .collect()
    }
}

/// One entry of REST v2's email-address list.
fn rest_address_status(a: &Json) -> Result<AddressStatus, Error> {
    let email = a
        .get("email")
        .and_then(Json::as_str)
        .ok_or_else(|| protocol("address without email"))?;
    let status = a
        .get("status")
        .and_then(Json::as_str)
        .ok_or_else(|| protocol("address without status"))?;
    Ok(AddressStatus {
        email: EmailAddress::from_stored(email),
        status: parse_status(status)?,
    })
}
