//! Paging through an app: contacts with their addresses, and the not-marketable list the
//! incremental sweep diffs.

use reqwest::Method;
use serde_json::Value as Json;

use super::*;

impl KeapClient {
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
