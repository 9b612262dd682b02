//! Amazon SES through SNS: RSA signatures (SignatureVersion 1 = SHA1withRSA, 2 =
//! SHA256withRSA) over a canonical "name\nvalue\n" string of the message's fields, with the
//! key from an X.509 certificate at `SigningCertURL`.
//!
//! The certificate URL is checked against the SNS host pattern *before* anything is fetched
//! (an attacker-chosen URL would otherwise make this service fetch it, and a look-alike
//! certificate would forge anything). A correct signature proves only that SNS sent the
//! message, not that it is ours: the topic must be on the tenant's allow-list, and only then
//! is a subscription confirmed — by a GET to a `SubscribeURL` that passes the same host check.
//! Unsubscribe confirmations are never visited.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use serde_json::Value;
use url::Url;
use x509_cert::der::{DecodePem as _, Encode as _};

use super::{Kind, Normalized, Reject, Request, Verified, recipient};

/// How old a signed message may be: SNS gives up retrying after at most an hour.
const MAX_AGE_SECS: i64 = 3600 + 300;
/// How far in the future a timestamp may be (clock skew).
const MAX_SKEW_SECS: i64 = 300;

/// Fetches what SNS points at: signing certificates, and subscription confirmations.
pub trait SnsFetcher: Send + Sync {
    /// The PEM certificate at an already-validated URL.
    fn certificate<'a>(
        &'a self,
        url: &'a Url,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;
    /// Visits an already-validated `SubscribeURL`.
    fn confirm<'a>(
        &'a self,
        url: &'a Url,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The real fetcher: HTTPS only, no redirects, a short timeout, a size cap enforced while
/// the body streams, a cache of certificates by URL, and a brief memory of failed fetches
/// (so a burst of messages naming a certificate that cannot be had costs one fetch, and each
/// is answered at once with a status SNS retries).
pub struct HttpSnsFetcher {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Vec<u8>>>,
    failures: Mutex<HashMap<String, (std::time::Instant, String)>>,
}

const MAX_CERT_BYTES: usize = 64 * 1024;
const MAX_CACHED: usize = 64;
/// How long a failed certificate fetch is remembered: short, since SNS retries in seconds.
const FAILURE_TTL: Duration = Duration::from_secs(30);

impl HttpSnsFetcher {
    pub fn new() -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self::with_client(http))
    }

    /// A fetcher over `http`. The service always uses [`Self::new`]; a test passes a client
    /// that may reach a local plain-HTTP server, to check the size cap on a streamed body.
    #[doc(hidden)]
    pub fn with_client(http: reqwest::Client) -> Self {
        Self {
            http,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// A failure remembered for `url`, if it is recent.
    fn recent_failure(&self, url: &Url) -> Option<String> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.retain(|_, (at, _)| at.elapsed() < FAILURE_TTL);
        f.get(url.as_str()).map(|(_, why)| why.clone())
    }

    fn remember_failure(&self, url: &Url, why: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= MAX_CACHED {
            f.clear();
        }
        f.insert(
            url.to_string(),
            (std::time::Instant::now(), why.to_string()),
        );
    }

    /// The certificate's bytes, refused past [`MAX_CERT_BYTES`] before more is read.
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, String> {
        let resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("certificate fetch answered {}", resp.status()));
        }
        crate::capped_body::read_capped(resp, MAX_CERT_BYTES)
            .await
            .map_err(|e| format!("certificate: {e}"))
    }
}

impl SnsFetcher for HttpSnsFetcher {
    fn certificate<'a>(
        &'a self,
        url: &'a Url,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(c) = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(url.as_str())
            {
                return Ok(c.clone());
            }
            if let Some(why) = self.recent_failure(url) {
                return Err(format!("{why} (failed moments ago; not fetched again yet)"));
            }
            let body = match self.fetch(url).await {
                Ok(b) => b,
                Err(why) => {
                    self.remember_failure(url, &why);
                    return Err(why);
                }
            };
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(url.to_string(), body.clone());
            Ok(body)
        })
    }

    fn confirm<'a>(
        &'a self,
        url: &'a Url,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let resp = self
                .http
                .get(url.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!(
                    "subscription confirmation answered {}",
                    resp.status()
                ))
            }
        })
    }
}

/// A URL SNS may legitimately point at: `https://sns.<region>.amazonaws.com[.cn]/…`, with no
/// user info, no port, no look-alike suffix.
pub fn sns_url(raw: &str) -> Result<Url, Reject> {
    let bad = |why: &str| Reject::Forged(format!("SNS URL {raw:?} refused: {why}"));
    let u = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    if u.scheme() != "https" {
        return Err(bad("not https"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("user info"));
    }
    if u.port().is_some() {
        return Err(bad("explicit port"));
    }
    let host = u.host_str().unwrap_or_default();
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .ok_or_else(|| bad("not an SNS host"))?;
    if region.len() < 3
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad("not an SNS host"));
    }
    Ok(u)
}

/// The signing certificate's URL: an SNS URL to `/SimpleNotificationService-….pem` (the only
/// name SNS signs with), without query or fragment.
pub fn cert_url(raw: &str) -> Result<Url, Reject> {
    let u = sns_url(raw)?;
    let name_ok = u
        .path()
        .strip_prefix("/SimpleNotificationService-")
        .and_then(|rest| rest.strip_suffix(".pem"))
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
    if !name_ok || u.query().is_some() || u.fragment().is_some() {
        return Err(Reject::Forged(format!(
            "SigningCertURL {raw:?} refused: not a .pem path"
        )));
    }
    Ok(u)
}

/// The string SNS signs: the present fields among the type's list, in byte order, each as
/// "name\nvalue\n" with the values as decoded from JSON.
pub fn string_to_sign(m: &serde_json::Map<String, Value>) -> Result<String, Reject> {
    let ty = m.get("Type").and_then(Value::as_str).unwrap_or_default();
    let keys: &[&str] = match ty {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        other => {
            return Err(Reject::Malformed(format!(
                "unknown SNS message type {other:?}"
            )));
        }
    };
    let mut s = String::new();
    for k in keys {
        match m.get(*k) {
            Some(Value::String(v)) => {
                s.push_str(k);
                s.push('\n');
                s.push_str(v);
                s.push('\n');
            }
            None | Some(Value::Null) if *k == "Subject" => {}
            _ => return Err(Reject::Malformed(format!("SNS field {k} missing"))),
        }
    }
    Ok(s)
}

/// Checks the signature with the certificate's RSA key.
pub fn check_signature(m: &serde_json::Map<String, Value>, pem: &[u8]) -> Result<(), Reject> {
    let cert = x509_cert::Certificate::from_pem(pem)
        .map_err(|_| Reject::Forged("signing certificate unreadable".into()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| Reject::Forged("signing certificate unreadable".into()))?;
    let key = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| Reject::Forged("signing key is not RSA".into()))?;
    let sig = m
        .get("Signature")
        .and_then(Value::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| Reject::Forged("no readable Signature".into()))?;
    let sig =
        Signature::try_from(sig.as_slice()).map_err(|_| Reject::Forged("bad Signature".into()))?;
    let text = string_to_sign(m)?;
    let ok = match m.get("SignatureVersion").and_then(Value::as_str) {
        Some("1") => VerifyingKey::<sha1::Sha1>::new(key)
            .verify(text.as_bytes(), &sig)
            .is_ok(),
        Some("2") => VerifyingKey::<sha2::Sha256>::new(key)
            .verify(text.as_bytes(), &sig)
            .is_ok(),
        _ => return Err(Reject::Forged("unknown SignatureVersion".into())),
    };
    if ok {
        Ok(())
    } else {
        Err(Reject::Forged("RSA signature does not verify".into()))
    }
}

fn parse_time(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Verifies an SNS delivery for a tenant whose allowed topics are `topics`; confirms an
/// allowed subscription; normalises SES notifications.
pub async fn verify(
    topics: &[String],
    req: &Request<'_>,
    fetcher: &dyn SnsFetcher,
) -> Result<Verified, Reject> {
    if req.header("x-amz-sns-rawdelivery") == Some("true") {
        return Err(Reject::Malformed(
            "raw message delivery carries no signature; disable it".into(),
        ));
    }
    let v = super::json(req.body)?;
    let m = v
        .as_object()
        .ok_or_else(|| Reject::Malformed("SNS posts a JSON object".into()))?;
    let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
    if req
        .header("x-amz-sns-message-type")
        .is_some_and(|h| h != field("Type"))
    {
        return Err(Reject::Forged(
            "x-amz-sns-message-type does not match Type".into(),
        ));
    }
    if req
        .header("x-amz-sns-message-id")
        .is_some_and(|h| h != field("MessageId"))
    {
        return Err(Reject::Forged(
            "x-amz-sns-message-id does not match MessageId".into(),
        ));
    }
    // Every check that needs no network comes first, the certificate URL's above all.
    let cert = cert_url(field("SigningCertURL"))?;
    string_to_sign(m)?;
    let sent =
        parse_time(field("Timestamp")).ok_or_else(|| Reject::Malformed("bad Timestamp".into()))?;
    if req.now - sent > MAX_AGE_SECS || sent - req.now > MAX_SKEW_SECS {
        return Err(Reject::Stale(format!("sent {}", field("Timestamp"))));
    }
    // A topic this app does not allow is refused before anything is fetched for it (the
    // claim is unverified, but refusing costs nothing; accepting waits for the signature).
    if !topics.iter().any(|t| t == field("TopicArn")) {
        return Err(Reject::Unauthorized(format!(
            "topic {} is not allowed for this app",
            field("TopicArn")
        )));
    }
    // SNS does not retry a 4xx: a certificate we cannot fetch just now must not lose the
    // event, so it is answered as a failure on our side (SNS retries those).
    let pem = fetcher
        .certificate(&cert)
        .await
        .map_err(|e| Reject::Unavailable(format!("signing certificate unavailable: {e}")))?;
    check_signature(m, &pem)?;
    match field("Type") {
        "SubscriptionConfirmation" => {
            let url = sns_url(field("SubscribeURL"))?;
            fetcher.confirm(&url).await.map_err(|e| {
                Reject::Unavailable(format!("could not confirm the subscription: {e}"))
            })?;
            tracing::info!(topic = field("TopicArn"), "SNS subscription confirmed");
            Ok(Verified::default())
        }
        "UnsubscribeConfirmation" => Ok(Verified::default()),
        _ => Ok(normalise(field("MessageId"), field("Message"))),
    }
}

/// The sub-type SES gives a bounce or complaint it did not send because the address is on
/// the account-level suppression list.
const ON_SUPPRESSION_LIST: &str = "OnAccountSuppressionList";

/// Maps an SES notification (feedback notification or event publishing) to events.
pub fn normalise(message_id: &str, message: &str) -> Verified {
    let mut out = Verified::default();
    let Ok(msg) = serde_json::from_str::<Value>(message) else {
        // "Successfully validated SNS topic for Amazon SES event publishing." and other text.
        out.ignored += 1;
        return out;
    };
    let ty = msg
        .get("notificationType")
        .or_else(|| msg.get("eventType"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let list = |obj: &str, arr: &str| -> Vec<Option<keap::EmailAddress>> {
        msg.get(obj)
            .and_then(|o| o.get(arr))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|r| recipient(r.get("emailAddress"))).collect())
            .unwrap_or_default()
    };
    let (kind, recipients) = match ty {
        "Bounce" => {
            let ty = msg.pointer("/bounce/bounceType").and_then(Value::as_str);
            let sub = msg.pointer("/bounce/bounceSubType").and_then(Value::as_str);
            let kind = match (ty, sub) {
                // SES did not send: the address is on the account-level suppression list.
                (_, Some(ON_SUPPRESSION_LIST)) => Kind::Suppressed,
                (Some("Permanent"), _) => Kind::HardBounce,
                _ => Kind::SoftBounce,
            };
            (Some(kind), list("bounce", "bouncedRecipients"))
        }
        "Complaint" => {
            let feedback = msg
                .pointer("/complaint/complaintFeedbackType")
                .and_then(Value::as_str);
            let sub = msg
                .pointer("/complaint/complaintSubType")
                .and_then(Value::as_str);
            let kind = match (feedback, sub) {
                (_, Some(ON_SUPPRESSION_LIST)) => Some(Kind::Suppressed),
                (Some("not-spam"), _) => None,
                _ => Some(Kind::Complaint),
            };
            (kind, list("complaint", "complainedRecipients"))
        }
        "Subscription" => {
            // A topic-only opt-out is a preference about one list; unsubscribeAll is the stop.
            let all = msg
                .pointer("/subscription/newTopicPreferences/unsubscribeAll")
                .and_then(Value::as_bool)
                == Some(true);
            let dest = msg
                .pointer("/mail/destination")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|d| recipient(Some(d))).collect())
                .unwrap_or_default();
            (all.then_some(Kind::Unsubscribe), dest)
        }
        _ => (None, Vec::new()),
    };
    match kind {
        Some(kind) => {
            for (i, r) in recipients.into_iter().enumerate() {
                match r {
                    Some(email) => out.events.push(Normalized {
                        kind,
                        email,
                        id: Some(format!("{message_id}:{i}")),
                    }),
                    None => out.ignored += 1,
                }
            }
        }
        None => out.ignored += 1,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_hosts_pass_the_url_policy() {
        assert!(
            cert_url("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem")
                .is_ok()
        );
        assert!(
            cert_url("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem")
                .is_ok()
        );
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
            "https://evil.s3.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com@evil.com/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com/x.pem?y=1",
            "https://sns.a.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://xsns.us-east-1.amazonaws.com/x.pem",
            // Only SNS's own certificate name: nothing else on the host is fetched.
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem",
            "https://sns.us-east-1.amazonaws.com/a/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a%2Fb.pem",
            "not a url",
        ] {
            assert!(cert_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_failed_fetch_is_remembered_briefly_and_the_memory_is_bounded() {
        let f = HttpSnsFetcher::new().unwrap();
        let url = |i: usize| {
            Url::parse(&format!(
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{i}.pem"
            ))
            .unwrap()
        };
        assert_eq!(f.recent_failure(&url(0)), None);
        f.remember_failure(&url(0), "certificate fetch answered 404");
        assert_eq!(
            f.recent_failure(&url(0)).as_deref(),
            Some("certificate fetch answered 404")
        );
        for i in 1..=MAX_CACHED * 2 {
            f.remember_failure(&url(i), "timeout");
        }
        assert!(f.failures.lock().unwrap().len() <= MAX_CACHED);
    }
}
