//! AWS Signature Version 4, checked the way AWS checks it: the canonical request is rebuilt
//! from the bytes received (path as sent, encoded once more as for every service but S3;
//! query sorted; the signed headers; the payload's SHA-256), signed with the key derived from
//! the configured secret for the credential's date, region and service, and compared in
//! constant time. The request time must be within 15 minutes of the emulator's clock.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::PrimitiveDateTime;
use time::macros::format_description;

/// Characters SigV4 leaves as they are: RFC 3986 unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_SKEW_MS: u64 = 15 * 60 * 1000;

/// Why a request's signature is not accepted, each with the error AWS answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error(
        "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters"
    )]
    Malformed,
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("Credential should be scoped to a valid region and service: {0}")]
    WrongScope(String),
    #[error("Signature expired: the request time is more than 15 minutes from the server's")]
    Expired,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
}

impl SigError {
    /// The `x-amzn-ErrorType` AWS sends with it.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::UnknownKey => "UnrecognizedClientException",
            Self::Malformed => "IncompleteSignatureException",
            _ => "InvalidSignatureException",
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Result<Authorization, SigError> {
    let rest = value.strip_prefix(ALGORITHM).ok_or(SigError::Malformed)?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SigError::Malformed)?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => return Err(SigError::Malformed),
        }
    }
    let (cred, signed, sig) = (
        cred.ok_or(SigError::Malformed)?,
        signed.ok_or(SigError::Malformed)?,
        sig.ok_or(SigError::Malformed)?,
    );
    let parts: Vec<&str> = cred.split('/').collect();
    let [key, date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(SigError::Malformed);
    };
    Ok(Authorization {
        access_key: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: sig.to_string(),
    })
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The path as received, each segment encoded once more (every service but S3).
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".into();
    }
    raw_path
        .split('/')
        .map(encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Parameters decoded, re-encoded strictly and sorted by name, then value.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (encode(&dec(k)), encode(&dec(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces made one.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The request to sign, as AWS rebuilds it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    /// (name, value) pairs; names in any case.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The canonical request over `signed` (lower-case header names, sorted).
pub fn canonical_request(req: &Request<'_>, signed: &[String]) -> String {
    let mut lines = String::new();
    for name in signed {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| canonical_value(v))
            .collect();
        lines.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.raw_path),
        canonical_query(req.raw_query),
        lines,
        signed.join(";"),
        hex_sha256(req.body)
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// The hex signature of `canonical` for the given time and scope.
pub fn signature(secret: &str, amz_date: &str, auth: &Authorization, canonical: &str) -> String {
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    hex::encode(hmac(&key, to_sign.as_bytes()))
}

fn parse_amz_date(s: &str) -> Option<u64> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = PrimitiveDateTime::parse(s, fmt).ok()?.assume_utc();
    u64::try_from(t.unix_timestamp()).ok().map(|s| s * 1000)
}

/// Checks `req` against the `(access key id, secret)` pairs for `region`/`service` at
/// `now_ms`; returns the access key id that signed it.
pub fn verify<'c>(
    req: &Request<'_>,
    credentials: impl Iterator<Item = (&'c str, &'c str)>,
    region: &str,
    service: &str,
    now_ms: u64,
) -> Result<String, SigError> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let auth = parse_authorization(header("authorization").ok_or(SigError::Missing)?)?;
    let secret = credentials
        .filter(|(id, _)| id.as_bytes().ct_eq(auth.access_key.as_bytes()).into())
        .map(|(_, s)| s)
        .next()
        .ok_or(SigError::UnknownKey)?;
    if auth.region != region || auth.service != service {
        return Err(SigError::WrongScope(format!(
            "{}/{}",
            auth.region, auth.service
        )));
    }
    let amz_date = header("x-amz-date").ok_or(SigError::Malformed)?;
    let at = parse_amz_date(amz_date).ok_or(SigError::Malformed)?;
    if !amz_date.starts_with(&auth.date) || !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed);
    }
    if at.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(SigError::Expired);
    }
    if let Some(claimed) = header("x-amz-content-sha256")
        && claimed != hex_sha256(req.body)
    {
        return Err(SigError::Mismatch);
    }
    let canonical = canonical_request(req, &auth.signed_headers);
    let expected = signature(secret, amz_date, &auth, &canonical);
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(auth.access_key)
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// The worked example of AWS's "Signature Version 4 signing process" (IAM ListUsers).
    #[test]
    fn the_documented_iam_example_verifies() {
        let req = Request {
            method: "GET",
            raw_path: "/",
            raw_query: "Action=ListUsers&Version=2010-05-08",
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                ("Host".into(), "iam.amazonaws.com".into()),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
                ("Authorization".into(), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".into()),
            ],
            body: b"",
        };
        let signed: Vec<String> = ["content-type", "host", "x-amz-date"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            hex_sha256(canonical_request(&req, &signed).as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let now = parse_amz_date("20150830T123600Z").unwrap();
        let creds = [("AKIDEXAMPLE", SECRET)];
        let ok = verify(&req, creds.iter().copied(), "us-east-1", "iam", now);
        assert_eq!(ok, Ok("AKIDEXAMPLE".to_string()));
        let late = verify(
            &req,
            creds.iter().copied(),
            "us-east-1",
            "iam",
            now + 16 * 60_000,
        );
        assert_eq!(late, Err(SigError::Expired));
        let other = verify(&req, creds.iter().copied(), "eu-west-1", "iam", now);
        assert!(matches!(other, Err(SigError::WrongScope(_))));
        let wrong = [("AKIDEXAMPLE", "not-the-secret")];
        let bad = verify(&req, wrong.iter().copied(), "us-east-1", "iam", now);
        assert_eq!(bad, Err(SigError::Mismatch));
        let unknown = verify(
            &req,
            [("OTHER", SECRET)].into_iter(),
            "us-east-1",
            "iam",
            now,
        );
        assert_eq!(unknown, Err(SigError::UnknownKey));
    }

    /// `get-vanilla` from AWS's SigV4 test suite.
    #[test]
    fn the_get_vanilla_suite_case_signs_as_documented() {
        let auth = parse_authorization("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31").unwrap();
        let req = Request {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: vec![
                ("Host".into(), "example.amazonaws.com".into()),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
            ],
            body: b"",
        };
        let canonical = canonical_request(&req, &auth.signed_headers);
        let sig = signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830T123600Z",
            &auth,
            &canonical,
        );
        assert_eq!(sig, auth.signature);
    }

    #[test]
    fn paths_are_encoded_once_more_and_queries_sorted() {
        assert_eq!(
            canonical_uri("/v2/email/suppression/addresses/a%2Bb%40x.com"),
            "/v2/email/suppression/addresses/a%252Bb%2540x.com"
        );
        assert_eq!(canonical_query("b=2&a=x%20y&a=1"), "a=1&a=x%20y&b=2");
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=a/b").is_err());
    }
}
