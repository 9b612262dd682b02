//! XML-RPC codec with Keap's quirks.
//!
//! Keap's answers differ from textbook XML-RPC in ways a generic library trips on: strings come
//! back *untyped* (`<value>Severus</value>`), integers as `<i4>`, dates without a zone
//! (`20171208T11:56:04`), faults with HTTP 200, and a request containing `<nil/>` is refused.
//! This module reads both calls and responses (the emulator needs the first, the client the
//! second) and writes both: calls with typed values, responses in Keap's own byte layout.

use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::events::Event;
use time::PrimitiveDateTime;
use time::macros::format_description;

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i32),
    Bool(bool),
    String(String),
    Double(f64),
    /// `dateTime.iso8601`; Keap sends no zone (app-local time).
    DateTime(PrimitiveDateTime),
    Base64(Vec<u8>),
    Struct(Vec<(String, Value)>),
    Array(Vec<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(i64::from(*i)),
            // Keap answers ids as <i4>, but custom code may hand over "123" strings.
            Self::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&[(String, Value)]> {
        match self {
            Self::Struct(m) => Some(m),
            _ => None,
        }
    }

    /// A struct member by name.
    pub fn member(&self, name: &str) -> Option<&Value> {
        self.as_struct()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The Java type Keap's server (Apache XML-RPC) reports for a value in its
    /// "No method matching arguments" fault.
    pub fn java_type_name(&self) -> &'static str {
        match self {
            Self::Int(_) => "java.lang.Integer",
            Self::Bool(_) => "java.lang.Boolean",
            Self::String(_) => "java.lang.String",
            Self::Double(_) => "java.lang.Double",
            Self::DateTime(_) => "java.util.Date",
            Self::Base64(_) => "[B",
            Self::Struct(_) => "java.util.HashMap",
            Self::Array(_) => "[Ljava.lang.Object;",
        }
    }
}

/// A parsed `methodResponse`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Value(Value),
    Fault(Fault),
}

/// An XML-RPC fault: `faultCode` and `faultString`, the latter `[Category]message` by Keap's
/// convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: i32,
    pub string: String,
}

impl Fault {
    /// The `[Category]` prefix of the fault string, if it has one.
    pub fn category(&self) -> Option<&str> {
        let rest = self.string.strip_prefix('[')?;
        rest.split_once(']').map(|(c, _)| c)
    }

    /// The message after the category prefix.
    pub fn message(&self) -> &str {
        match self.category() {
            Some(c) => &self.string[c.len() + 2..],
            None => &self.string,
        }
    }
}

/// Why a document is not valid XML-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Keap's own words for an empty or truncated document.
    #[error("Premature end of file.")]
    PrematureEnd,
    #[error("Unknown type: {0}")]
    UnknownType(String),
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("invalid XML-RPC: {0}")]
    Structure(String),
}

const MAX_DEPTH: usize = 64;

/// A minimal element tree: enough to interpret XML-RPC, which has no attributes and no mixed
/// content that matters except inside `<value>`.
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn only_child(&self, what: &str) -> Result<&Node, ParseError> {
        match self.children.as_slice() {
            [c] => Ok(c),
            _ => Err(ParseError::Structure(format!(
                "<{}> must hold exactly one {what}",
                self.name
            ))),
        }
    }
}

fn parse_tree(input: &[u8]) -> Result<Node, ParseError> {
    let mut reader = Reader::from_reader(input);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| ParseError::Xml(e.to_string()))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(ParseError::Xml("content after the root element".into()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::Structure("nesting too deep".into()));
                }
                stack.push(Node {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                let node = Node {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return Err(ParseError::Xml("content after the root element".into())),
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| ParseError::Xml("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| ParseError::Xml(e.to_string()))?;
                match stack.last_mut() {
                    Some(n) => n.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(ParseError::Xml("text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::PrematureEnd);
    }
    root.ok_or(ParseError::PrematureEnd)
}

fn parse_value(node: &Node) -> Result<Value, ParseError> {
    if node.name != "value" {
        return Err(ParseError::Structure(format!(
            "expected <value>, found <{}>",
            node.name
        )));
    }
    // An untyped value is a string, whitespace and all.
    let Some(typed) = node.children.first() else {
        return Ok(Value::String(node.text.clone()));
    };
    if node.children.len() > 1 {
        return Err(ParseError::Structure(
            "<value> holds more than one type".into(),
        ));
    }
    let text = typed.text.as_str();
    let bad = |what: &str| ParseError::Structure(format!("bad <{}>: {what:?}", typed.name));
    Ok(match typed.name.as_str() {
        "i4" | "int" => Value::Int(text.trim().parse().map_err(|_| bad(text))?),
        "i8" => return Err(ParseError::UnknownType("i8".into())),
        "boolean" => match text.trim() {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            _ => return Err(bad(text)),
        },
        "string" => Value::String(text.to_string()),
        "double" => Value::Double(text.trim().parse().map_err(|_| bad(text))?),
        "dateTime.iso8601" => {
            Value::DateTime(parse_datetime(text.trim()).ok_or_else(|| bad(text))?)
        }
        "base64" => {
            use base64::Engine as _;
            let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            Value::Base64(
                base64::engine::general_purpose::STANDARD
                    .decode(cleaned)
                    .map_err(|_| bad(text))?,
            )
        }
        "struct" => {
            let mut members = Vec::with_capacity(typed.children.len());
            for m in &typed.children {
                if m.name != "member" {
                    return Err(bad("non-member in struct"));
                }
                let name = m.child("name").ok_or_else(|| bad("member without name"))?;
                let v = m
                    .child("value")
                    .ok_or_else(|| bad("member without value"))?;
                members.push((name.text.clone(), parse_value(v)?));
            }
            Value::Struct(members)
        }
        "array" => {
            let data = typed
                .child("data")
                .ok_or_else(|| bad("array without data"))?;
            Value::Array(
                data.children
                    .iter()
                    .map(parse_value)
                    .collect::<Result<_, _>>()?,
            )
        }
        other => return Err(ParseError::UnknownType(other.to_string())),
    })
}

fn parse_datetime(s: &str) -> Option<PrimitiveDateTime> {
    let compact = format_description!("[year][month][day]T[hour]:[minute]:[second]");
    let dashed = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(s, compact)
        .or_else(|_| PrimitiveDateTime::parse(s, dashed))
        .ok()
}

fn format_datetime(dt: &PrimitiveDateTime) -> String {
    let f = format_description!("[year][month][day]T[hour]:[minute]:[second]");
    dt.format(f).unwrap_or_default()
}

fn parse_params(params: Option<&Node>) -> Result<Vec<Value>, ParseError> {
    let Some(params) = params else {
        return Ok(Vec::new());
    };
    params
        .children
        .iter()
        .map(|p| {
            if p.name != "param" {
                return Err(ParseError::Structure("non-param in params".into()));
            }
            parse_value(p.only_child("value")?)
        })
        .collect()
}

/// Reads a `methodCall` into its method name and parameters.
pub fn parse_call(input: &[u8]) -> Result<(String, Vec<Value>), ParseError> {
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::PrematureEnd);
    }
    let root = parse_tree(input)?;
    if root.name != "methodCall" {
        return Err(ParseError::Structure(format!(
            "expected <methodCall>, found <{}>",
            root.name
        )));
    }
    let method = root
        .child("methodName")
        .map(|n| n.text.trim().to_string())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ParseError::Structure("missing methodName".into()))?;
    Ok((method, parse_params(root.child("params"))?))
}

/// Reads a `methodResponse`: one value, or a fault.
pub fn parse_response(input: &[u8]) -> Result<Response, ParseError> {
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::PrematureEnd);
    }
    let root = parse_tree(input)?;
    if root.name != "methodResponse" {
        return Err(ParseError::Structure(format!(
            "expected <methodResponse>, found <{}>",
            root.name
        )));
    }
    if let Some(fault) = root.child("fault") {
        let v = parse_value(fault.only_child("value")?)?;
        let code = v
            .member("faultCode")
            .and_then(Value::as_i64)
            .ok_or_else(|| ParseError::Structure("fault without faultCode".into()))?;
        let string = v
            .member("faultString")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Ok(Response::Fault(Fault {
            code: code as i32,
            string,
        }));
    }
    let mut params = parse_params(root.child("params"))?;
    match params.len() {
        1 => Ok(Response::Value(params.remove(0))),
        n => Err(ParseError::Structure(format!(
            "a response holds one param, found {n}"
        ))),
    }
}

/// How strings are written: typed (`<string>`, as clients send them) or untyped (as Keap
/// answers).
#[derive(Clone, Copy, PartialEq)]
enum Style {
    Call,
    Keap,
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
}

fn write_value(out: &mut String, v: &Value, style: Style) {
    out.push_str("<value>");
    match v {
        Value::Int(i) => {
            let _ = write!(out, "<i4>{i}</i4>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::String(s) => match style {
            Style::Call => {
                out.push_str("<string>");
                escape(out, s);
                out.push_str("</string>");
            }
            Style::Keap => escape(out, s),
        },
        Value::Double(d) => {
            let _ = write!(out, "<double>{d}</double>");
        }
        Value::DateTime(dt) => {
            let _ = write!(
                out,
                "<dateTime.iso8601>{}</dateTime.iso8601>",
                format_datetime(dt)
            );
        }
        Value::Base64(b) => {
            use base64::Engine as _;
            out.push_str("<base64>");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push_str("</base64>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (k, v) in members {
                out.push_str("<member><name>");
                escape(out, k);
                out.push_str("</name>");
                write_value(out, v, style);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>");
            for v in items {
                write_value(out, v, style);
            }
            out.push_str("</data></array>");
        }
    }
    out.push_str("</value>");
}

/// Writes a `methodCall` with typed values. There is no nil to write: [`Value`] has none,
/// because Keap refuses `<nil/>`.
pub fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodCall><methodName>");
    escape(&mut out, method);
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        write_value(&mut out, p, Style::Call);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

/// The prolog Keap's responses start with.
pub const RESPONSE_PROLOG: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// Writes a successful `methodResponse` byte for byte as Keap does.
pub fn encode_response(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(RESPONSE_PROLOG);
    out.push_str("<methodResponse><params><param>");
    write_value(&mut out, value, Style::Keap);
    out.push_str("</param></params></methodResponse>");
    out
}

/// Writes a fault `methodResponse` as Keap does (untyped `faultString`).
pub fn encode_fault(fault: &Fault) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(RESPONSE_PROLOG);
    out.push_str("<methodResponse><fault>");
    let v = Value::Struct(vec![
        ("faultCode".into(), Value::Int(fault.code)),
        ("faultString".into(), Value::String(fault.string.clone())),
    ]);
    write_value(&mut out, &v, Style::Keap);
    out.push_str("</fault></methodResponse>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untyped_strings_ints_and_booleans_parse() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?><methodResponse><params><param><value><struct><member><name>FirstName</name><value>Severus</value></member><member><name>Id</name><value><i4>3606</i4></value></member><member><name>Ok</name><value><boolean>1</boolean></value></member></struct></value></param></params></methodResponse>"#;
        let Response::Value(v) = parse_response(xml).unwrap() else {
            panic!("fault")
        };
        assert_eq!(
            v.member("FirstName").and_then(Value::as_str),
            Some("Severus")
        );
        assert_eq!(v.member("Id").and_then(Value::as_i64), Some(3606));
        assert_eq!(v.member("Ok").and_then(Value::as_bool), Some(true));
    }

    #[test]
    fn untyped_value_keeps_its_whitespace_and_entities() {
        let xml = b"<methodResponse><params><param><value>  a &amp; b </value></param></params></methodResponse>";
        assert_eq!(
            parse_response(xml).unwrap(),
            Response::Value(Value::str("  a & b "))
        );
    }

    #[test]
    fn faults_split_into_code_category_and_message() {
        let xml = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><methodResponse><fault><value><struct>\n<member><name>faultCode</name><value><i4>13</i4></value></member>\n<member><name>faultString</name><value>[FailedLoginAttempt]username not found: test@test.com</value></member>\n</struct></value></fault></methodResponse>";
        let Response::Fault(f) = parse_response(xml).unwrap() else {
            panic!("not a fault")
        };
        assert_eq!(f.code, 13);
        assert_eq!(f.category(), Some("FailedLoginAttempt"));
        assert_eq!(f.message(), "username not found: test@test.com");
    }

    #[test]
    fn zoneless_dates_round_trip() {
        let xml = b"<methodResponse><params><param><value><dateTime.iso8601>20171208T11:56:04</dateTime.iso8601></value></param></params></methodResponse>";
        let Response::Value(v) = parse_response(xml).unwrap() else {
            panic!()
        };
        assert!(encode_response(&v).contains("20171208T11:56:04"));
    }

    #[test]
    fn nil_empty_and_truncated_documents_are_errors() {
        let nil = b"<methodCall><methodName>X.y</methodName><params><param><value><nil/></value></param></params></methodCall>";
        assert_eq!(parse_call(nil), Err(ParseError::UnknownType("nil".into())));
        assert_eq!(parse_call(b""), Err(ParseError::PrematureEnd));
        assert_eq!(
            parse_call(b"<methodCall><methodName>X.y</methodName><params>"),
            Err(ParseError::PrematureEnd)
        );
        assert!(parse_response(b"<html>nope</html>").is_err());
        assert!(parse_response(b"not xml at all <<<").is_err());
    }

    #[test]
    fn calls_round_trip_with_typed_strings() {
        let params = vec![
            Value::str("key"),
            Value::str("a<b>&c@example.com"),
            Value::Int(-5),
            Value::Array(vec![Value::str("Id")]),
            Value::Struct(vec![("Email".into(), Value::str("%"))]),
            Value::Bool(false),
        ];
        let xml = encode_call("DataService.query", &params);
        assert!(xml.contains("<string>a&lt;b&gt;&amp;c@example.com</string>"));
        assert!(!xml.contains("nil"));
        let (m, back) = parse_call(xml.as_bytes()).unwrap();
        assert_eq!(m, "DataService.query");
        assert_eq!(back, params);
    }

    #[test]
    fn responses_are_written_in_keaps_layout() {
        assert_eq!(
            encode_response(&Value::Bool(true)),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>"
        );
        assert_eq!(
            encode_fault(&Fault {
                code: 5,
                string: "[RecordNotFound]x".into()
            }),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>5</i4></value></member><member><name>faultString</name><value>[RecordNotFound]x</value></member></struct></value></fault></methodResponse>"
        );
    }
}
