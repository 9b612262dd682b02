//! AWS Signature Version 4 for the few SES calls made here, with the workspace's `hmac` and
//! `sha2` (the `aws-sigv4` crate brings the AWS runtime crates and a second copy of the
//! crypto stack). Tested against AWS's documented examples.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A request to sign. `path` is as sent (each segment already encoded once); `query` as sent;
/// `headers` are the ones to sign, names lower-case (`host` and `x-amz-date` are added).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// Who signs, for what.
#[derive(Debug, Clone)]
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// What to send: `x-amz-date` and `authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub amz_date: String,
    pub authorization: String,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// `20150830T123600Z` for epoch milliseconds.
pub fn amz_date(now_ms: u64) -> String {
    let secs = i64::try_from(now_ms / 1000).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default()
}

/// The canonical request: path segments encoded once more (every service but S3), query
/// pairs sorted, headers lower-case with trimmed values, sorted.
fn canonical(req: &Request<'_>, headers: &[(String, String)]) -> (String, String) {
    let path = if req.path.is_empty() {
        "/".to_string()
    } else {
        req.path
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut pairs: Vec<&str> = req.query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let lines: String = headers
        .iter()
        .map(|(n, v)| {
            format!(
                "{n}:{}\n",
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    let signed = signed.join(";");
    let text = format!(
        "{}\n{path}\n{}\n{lines}\n{signed}\n{}",
        req.method,
        pairs.join("&"),
        hex_sha256(req.body)
    );
    (text, signed)
}

/// Signs `req` as of `now_ms`, with `host` added to the signed headers.
pub fn sign(req: &Request<'_>, host: &str, signer: &Signer<'_>, now_ms: u64) -> Signed {
    let amz = amz_date(now_ms);
    sign_at(req, host, signer, &amz)
}

fn sign_at(req: &Request<'_>, host: &str, signer: &Signer<'_>, amz: &str) -> Signed {
    let date = &amz[..8.min(amz.len())];
    let mut headers: Vec<(String, String)> = req.headers.clone();
    headers.push(("host".into(), host.into()));
    headers.push(("x-amz-date".into(), amz.into()));
    headers.sort();
    let (text, signed) = canonical(req, &headers);
    let scope = format!("{date}/{}/{}/aws4_request", signer.region, signer.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz}\n{scope}\n{}",
        hex_sha256(text.as_bytes())
    );
    let k = hmac(
        format!("AWS4{}", signer.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k = hmac(&k, signer.region.as_bytes());
    let k = hmac(&k, signer.service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
    Signed {
        amz_date: amz.to_string(),
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            signer.access_key_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNER: Signer<'static> = Signer {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        service: "iam",
    };

    /// AWS's worked example ("Create a signed AWS API request", IAM ListUsers).
    #[test]
    fn the_documented_iam_example() {
        let req = Request {
            method: "GET",
            path: "/",
            query: "Version=2010-05-08&Action=ListUsers",
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            )],
            body: b"",
        };
        let s = sign_at(&req, "iam.amazonaws.com", &SIGNER, "20150830T123600Z");
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// `get-vanilla` from AWS's SigV4 test suite.
    #[test]
    fn the_get_vanilla_suite_case() {
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: vec![],
            body: b"",
        };
        let signer = Signer {
            service: "service",
            ..SIGNER
        };
        let s = sign(&req, "example.amazonaws.com", &signer, 1_440_938_160_000);
        assert_eq!(s.amz_date, "20150830T123600Z");
        assert!(s.authorization.ends_with(
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        ));
    }
}
