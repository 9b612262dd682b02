//! XML-RPC at `/crm/xmlrpc/v1` and `/crm/xmlrpc`: the methods optsync and its tests use, with
//! Keap's faults (HTTP 200, `[Category]message`) and its answer layout.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keap::EmailStatus;
use keap::xmlrpc::{self, Fault, Value};
use time::PrimitiveDateTime;

use crate::state::Shared;
use crate::store::{AddressRow, Contact, Store};

const MAX_LIMIT: i32 = 1000;
const CONTACT_FIELDS: [&str; 8] = [
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "EmailAddress2",
    "EmailAddress3",
    "DateCreated",
    "LastUpdated",
];
const STATUS_FIELDS: [&str; 7] = [
    "Id",
    "Email",
    "Type",
    "DateCreated",
    "LastSentDate",
    "LastOpenDate",
    "LastClickDate",
];

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], body).into_response()
}

fn fault(code: i32, string: impl Into<String>) -> Fault {
    Fault {
        code,
        string: string.into(),
    }
}

fn no_matching(params: &[Value]) -> Fault {
    let types: Vec<&str> = params.iter().map(Value::java_type_name).collect();
    fault(
        0,
        format!("No method matching arguments: {}", types.join(", ")),
    )
}

pub async fn handle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    {
        let mut st = shared.lock();
        if !st.config.xmlrpc_available {
            // Still a call the client made (and Keap's gateway counts).
            st.stats.count("XML-RPC (switched off)");
            return switched_off();
        }
    }
    let answer = match xmlrpc::parse_call(&body) {
        Err(e) => Err(fault(0, format!("Failed to parse XML-RPC request: {e}"))),
        Ok((method, params)) => {
            shared.lock().stats.count(&method);
            dispatch(&shared, &method, &params)
        }
    };
    xml(match answer {
        Ok(v) => xmlrpc::encode_response(&v),
        Err(f) => xmlrpc::encode_fault(&f),
    })
}

/// What a switched-off (or browned-out) XML-RPC endpoint plausibly answers: an HTTP error
/// with an HTML page, not an XML-RPC fault (Keap has not published it).
fn switched_off() -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The XML-RPC API is not available. Use the REST API.</p></body></html>",
    )
        .into_response()
}

/// The argument shapes a method accepts, as Java type names, after the key.
fn signature_matches(params: &[Value], expected: &[&[&str]]) -> bool {
    let types: Vec<&str> = params.iter().map(Value::java_type_name).collect();
    expected
        .iter()
        .any(|sig| types.len() == sig.len() && types.iter().zip(*sig).all(|(a, b)| a == b))
}

const S: &str = "java.lang.String";
const I: &str = "java.lang.Integer";
const B: &str = "java.lang.Boolean";
const M: &str = "java.util.HashMap";
const A: &str = "[Ljava.lang.Object;";

fn dispatch(shared: &Arc<Shared>, method: &str, params: &[Value]) -> Result<Value, Fault> {
    let sigs: &[&[&str]] = match method {
        "APIEmailService.getOptStatus" => &[&[S, S]],
        "APIEmailService.optOut" | "APIEmailService.optIn" => &[&[S, S, S]],
        "ContactService.load" => &[&[S, I, A]],
        "ContactService.findByEmail" => &[&[S, S, A]],
        "ContactService.add" => &[&[S, M]],
        "DataService.query" => &[&[S, S, I, I, M, A], &[S, S, I, I, M, A, S, B]],
        "DataService.findByField" => &[&[S, S, I, I, S, S, A]],
        "DataService.count" => &[&[S, S, M]],
        _ => return Err(fault(0, format!("No such handler: {method}"))),
    };
    // The first parameter is the legacy privateKey: required, its value ignored on the
    // gateway (the header authenticated the call).
    if !signature_matches(params, sigs) {
        return Err(no_matching(params));
    }
    let p = &params[1..];
    let s = |i: usize| p[i].as_str().unwrap_or_default();
    let int = |i: usize| p[i].as_i64().unwrap_or_default() as i32;
    match method {
        "APIEmailService.getOptStatus" => {
            let st = shared.lock();
            Ok(Value::Int(
                st.store.status(s(0)).map_or(0, EmailStatus::opt_status_int),
            ))
        }
        "APIEmailService.optOut" => opt_out(shared, s(0), s(1)),
        "APIEmailService.optIn" => opt_in(shared, s(0), s(1)),
        "ContactService.load" => load_contact(shared, int(0), &p[1]),
        "ContactService.findByEmail" => find_by_email(shared, s(0), &p[1]),
        "ContactService.add" => add_contact(shared, &p[0]),
        "DataService.query" => {
            let (order, asc) = match p.len() {
                7 => (s(5).to_string(), p[6].as_bool().unwrap_or(true)),
                _ => ("Id".to_string(), true),
            };
            let query = p[3]
                .as_struct()
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| (k.clone(), value_text(v)))
                .collect();
            query_table(shared, s(0), int(1), int(2), query, &p[4], &order, asc).map(Value::Array)
        }
        "DataService.findByField" => {
            let query = vec![(s(3).to_string(), s(4).to_string())];
            query_table(shared, s(0), int(1), int(2), query, &p[5], "Id", true).map(Value::Array)
        }
        "DataService.count" => count_table(shared, s(0), &p[1]),
        _ => Err(fault(0, format!("No such handler: {method}"))),
    }
}

fn load_contact(shared: &Arc<Shared>, id: i32, fields: &Value) -> Result<Value, Fault> {
    let fields = field_list(fields, "Contact")?;
    let st = shared.lock();
    let c = st.store.contacts.get(&i64::from(id)).ok_or_else(|| {
        fault(
            5,
            format!("[RecordNotFound]Record was not found for Id:{id}"),
        )
    })?;
    Ok(contact_struct(c, &fields))
}

fn find_by_email(shared: &Arc<Shared>, email: &str, fields: &Value) -> Result<Value, Fault> {
    let fields = field_list(fields, "Contact")?;
    let st = shared.lock();
    let found = st
        .store
        .holders(email)
        .into_iter()
        .filter_map(|id| st.store.contacts.get(&id))
        .map(|c| contact_struct(c, &fields))
        .collect();
    Ok(Value::Array(found))
}

/// `DataService.count` on `Contact` or `EmailAddStatus`.
fn count_table(shared: &Arc<Shared>, table: &str, query: &Value) -> Result<Value, Fault> {
    let query: Vec<(String, String)> = query
        .as_struct()
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.clone(), value_text(v)))
        .collect();
    let st = shared.lock();
    let n = match table {
        "Contact" => {
            check_fields(query.iter().map(|(k, _)| k.as_str()), "Contact")?;
            st.store
                .contacts
                .values()
                .filter(|c| matches_query(&query, |f| contact_field(c, f)))
                .count()
        }
        "EmailAddStatus" => {
            check_fields(query.iter().map(|(k, _)| k.as_str()), "EmailAddStatus")?;
            st.store
                .rows
                .values()
                .filter(|r| matches_query(&query, |f| status_field(r, f)))
                .count()
        }
        t => return Err(no_table(t)),
    };
    Ok(Value::Int(n as i32))
}

fn opt_out(shared: &Arc<Shared>, email: &str, reason: &str) -> Result<Value, Fault> {
    if keap::EmailAddress::parse(email).is_err() {
        return Err(fault(
            12,
            format!("[InvalidParameter]Invalid email address: {email}"),
        ));
    }
    let now = shared.now_ms();
    let change = {
        let mut st = shared.lock();
        let to = st.config.xmlrpc_opt_out_status;
        let reason = if reason.trim().is_empty() {
            "API Opt Out"
        } else {
            reason
        };
        let change = st.store.opt_out(email, to, reason, now);
        if change.changed() {
            st.stats.writes += 1;
        }
        change
    };
    shared.after_api_opt_out(email, change);
    Ok(Value::Bool(change.changed()))
}

fn opt_in(shared: &Arc<Shared>, email: &str, reason: &str) -> Result<Value, Fault> {
    if keap::EmailAddress::parse(email).is_err() {
        return Err(fault(
            12,
            format!("[InvalidParameter]Invalid email address: {email}"),
        ));
    }
    let now = shared.now_ms();
    let mut st = shared.lock();
    let mut from = vec![
        EmailStatus::NonMarketable,
        EmailStatus::UnengagedNonMarketable,
    ];
    if st.config.xmlrpc_opt_in_from_unengaged_marketable {
        from.push(EmailStatus::UnengagedMarketable);
    }
    let reason = if reason.trim().is_empty() {
        "API Opt In"
    } else {
        reason
    };
    let change = st.store.opt_in(email, &from, reason, now);
    if change.changed() {
        st.stats.writes += 1;
    }
    Ok(Value::Bool(change.changed()))
}

fn add_contact(shared: &Arc<Shared>, data: &Value) -> Result<Value, Fault> {
    let members = data.as_struct().unwrap_or_default();
    check_fields(members.iter().map(|(k, _)| k.as_str()), "Contact")?;
    let get = |k: &str| data.member(k).map(value_text).unwrap_or_default();
    let mut emails: [Option<String>; 3] = [None, None, None];
    for (i, f) in keap::EmailField::ALL.iter().enumerate() {
        let e = get(f.xmlrpc_name());
        if !e.is_empty() {
            if keap::EmailAddress::parse(&e).is_err() {
                return Err(fault(
                    12,
                    format!("[InvalidParameter]Invalid email address: {e}"),
                ));
            }
            emails[i] = Some(e);
        }
    }
    let now = shared.now_ms();
    let mut st = shared.lock();
    let id = st.store.add_contact(
        &get("FirstName"),
        &get("LastName"),
        emails,
        EmailStatus::NonMarketable,
        now,
    );
    Ok(Value::Int(id as i32))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Double(d) => d.to_string(),
        _ => String::new(),
    }
}

fn no_table(t: &str) -> Fault {
    fault(9, format!("[NoTableFound]No table found: {t}"))
}

fn known_fields(table: &str) -> &'static [&'static str] {
    match table {
        "Contact" => &CONTACT_FIELDS,
        _ => &STATUS_FIELDS,
    }
}

fn check_fields<'a>(mut names: impl Iterator<Item = &'a str>, table: &str) -> Result<(), Fault> {
    let known = known_fields(table);
    match names.find(|n| !(known.contains(n) || (table == "Contact" && n.starts_with('_')))) {
        Some(n) => Err(fault(
            10,
            format!("[NoFieldFound]No field found: {table}.{n}"),
        )),
        None => Ok(()),
    }
}

fn field_list(v: &Value, table: &str) -> Result<Vec<String>, Fault> {
    let names: Vec<String> = v
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(value_text)
        .collect();
    if names.is_empty() {
        return Err(fault(11, "[NoFields]No fields were requested"));
    }
    check_fields(names.iter().map(String::as_str), table)?;
    Ok(names)
}

fn datetime(ms: u64) -> Value {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Value::DateTime(PrimitiveDateTime::new(t.date(), t.time()))
}

/// A contact's field as an XML-RPC value; `None` for NULL (omitted from structs).
fn contact_field(c: &Contact, f: &str) -> Option<Value> {
    let email = |i: usize| c.emails[i].clone().map(Value::String);
    match f {
        "Id" => Some(Value::Int(c.id as i32)),
        "FirstName" => Some(Value::str(&c.first_name)).filter(|_| !c.first_name.is_empty()),
        "LastName" => Some(Value::str(&c.last_name)).filter(|_| !c.last_name.is_empty()),
        "Email" => email(0),
        "EmailAddress2" => email(1),
        "EmailAddress3" => email(2),
        "DateCreated" => Some(datetime(c.date_created_ms)),
        "LastUpdated" => Some(datetime(c.last_updated_ms)),
        _ => None,
    }
}

fn status_field(r: &AddressRow, f: &str) -> Option<Value> {
    match f {
        "Id" => Some(Value::Int(r.id as i32)),
        "Email" => Some(Value::str(&r.email)),
        "Type" => Some(Value::str(r.status.type_name())),
        "DateCreated" => Some(datetime(r.date_created_ms)),
        "LastSentDate" => r.last_sent_ms.map(datetime),
        "LastOpenDate" => r.last_open_ms.map(datetime),
        "LastClickDate" => r.last_click_ms.map(datetime),
        _ => None,
    }
}

fn contact_struct(c: &Contact, fields: &[String]) -> Value {
    Value::Struct(
        fields
            .iter()
            .filter_map(|f| contact_field(c, f).map(|v| (f.clone(), v)))
            .collect(),
    )
}

/// SQL LIKE with `%` as the only wildcard, case-insensitive (MySQL's default collation).
fn like(pattern: &str, text: &str) -> bool {
    let p = pattern.to_lowercase();
    let t = text.to_lowercase();
    let parts: Vec<&str> = p.split('%').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn matches_query(query: &[(String, String)], get: impl Fn(&str) -> Option<Value>) -> bool {
    query.iter().all(|(field, want)| match get(field) {
        None => want == "~null~",
        Some(_) if want == "~null~" => false,
        Some(v) => like(want, &value_text(&v)),
    })
}

/// (field's sort text, row id): the id breaks ties so that pages are stable.
type SortKey = ((i64, String), i64);

fn sort_text(v: Option<Value>) -> (i64, String) {
    match v {
        Some(Value::Int(i)) => (i64::from(i), String::new()),
        Some(Value::DateTime(d)) => (0, d.to_string()),
        Some(v) => (0, value_text(&v).to_lowercase()),
        None => (i64::MIN, String::new()),
    }
}

#[allow(clippy::too_many_arguments)]
fn query_table(
    shared: &Shared,
    table: &str,
    limit: i32,
    page: i32,
    query: Vec<(String, String)>,
    fields: &Value,
    order_by: &str,
    ascending: bool,
) -> Result<Vec<Value>, Fault> {
    if table != "Contact" && table != "EmailAddStatus" {
        return Err(no_table(table));
    }
    let fields = field_list(fields, table)?;
    check_fields(
        query.iter().map(|(k, _)| k.as_str()).chain([order_by]),
        table,
    )?;
    // Keap documents 1000 as the maximum; larger limits are clamped (unknown: maybe a fault).
    let limit = limit.clamp(0, MAX_LIMIT) as usize;
    let page = page.max(0) as usize;
    let st = shared.lock();
    let store: &Store = &st.store;
    let project = |get: &dyn Fn(&str) -> Option<Value>| {
        Value::Struct(
            fields
                .iter()
                .filter_map(|f| get(f).map(|v| (f.clone(), v)))
                .collect(),
        )
    };
    let mut rows: Vec<(SortKey, Value)> = if table == "Contact" {
        store
            .contacts
            .values()
            .filter(|c| matches_query(&query, |f| contact_field(c, f)))
            .map(|c| {
                (
                    (sort_text(contact_field(c, order_by)), c.id),
                    project(&|f| contact_field(c, f)),
                )
            })
            .collect()
    } else {
        store
            .rows
            .values()
            .filter(|r| matches_query(&query, |f| status_field(r, f)))
            .map(|r| {
                (
                    (sort_text(status_field(r, order_by)), r.id),
                    project(&|f| status_field(r, f)),
                )
            })
            .collect()
    };
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if !ascending {
        rows.reverse();
    }
    Ok(rows
        .into_iter()
        .skip(page * limit)
        .take(limit)
        .map(|(_, v)| v)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_matches_mysql_style() {
        assert!(like("%", "anything"));
        assert!(like("ann%", "Ann@example.com"));
        assert!(like("%@example.com", "ann@EXAMPLE.com"));
        assert!(like("a%e%m", "axxexxm"));
        assert!(!like("a%e%m", "axxexx"));
        assert!(like("exact", "EXACT"));
        assert!(!like("exact", "exactly"));
    }
}
