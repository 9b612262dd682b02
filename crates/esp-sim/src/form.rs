//! Form bodies as Mailgun takes them: `application/x-www-form-urlencoded` or
//! `multipart/form-data` (what `curl -F` and most SDKs send). Only text fields are read.

use std::collections::HashMap;

/// The fields of a form body, or None when it is neither kind of form or is malformed.
pub fn fields(content_type: Option<&str>, body: &[u8]) -> Option<HashMap<String, String>> {
    let ct = content_type.unwrap_or("");
    if ct.starts_with("multipart/form-data") {
        let boundary = ct
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()?
            .trim_matches('"');
        return multipart(std::str::from_utf8(body).ok()?, boundary);
    }
    serde_urlencoded::from_bytes(body).ok()
}

/// Parses `--boundary`-separated parts, each `Content-Disposition: form-data; name="…"`.
fn multipart(body: &str, boundary: &str) -> Option<HashMap<String, String>> {
    let delimiter = format!("--{boundary}");
    let mut out = HashMap::new();
    let mut parts = body.split(delimiter.as_str());
    parts.next()?; // the preamble
    for part in parts {
        if part.starts_with("--") {
            return Some(out); // the closing delimiter
        }
        let part = part.strip_prefix("\r\n")?;
        let (head, value) = part.split_once("\r\n\r\n")?;
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("name="))
            .next()?
            .trim_matches('"')
            .to_string();
        out.insert(name, value.strip_suffix("\r\n")?.to_string());
    }
    None // no closing delimiter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_form_are_read() {
        let f = fields(
            Some("application/x-www-form-urlencoded"),
            b"address=a%40x.com&tag=*",
        )
        .unwrap();
        assert_eq!(f["address"], "a@x.com");
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"address\"\r\n\r\nbob@example.com\r\n--XyZ\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\n*\r\n--XyZ--\r\n";
        let f = fields(Some("multipart/form-data; boundary=XyZ"), body.as_bytes()).unwrap();
        assert_eq!(
            (f["address"].as_str(), f["tag"].as_str()),
            ("bob@example.com", "*")
        );
        let cut = &body[..body.len() - 9];
        assert!(fields(Some("multipart/form-data; boundary=XyZ"), cut.as_bytes()).is_none());
        assert!(fields(Some("multipart/form-data"), body.as_bytes()).is_none());
    }
}
