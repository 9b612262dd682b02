//! SendGrid (Twilio) Event Webhook: ECDSA P-256 with SHA-256 over the timestamp header
//! followed by the raw body, exactly as received (re-serialised JSON does not verify).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::{Kind, Reject, Request, Verified, id_part, json, objects, push, recipient};

pub const SIGNATURE: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

/// Parses a verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo).
pub fn parse_key(b64: &str) -> Result<VerifyingKey, String> {
    let der = B64
        .decode(b64.trim())
        .map_err(|_| "the SendGrid verification key is not base64".to_string())?;
    VerifyingKey::from_public_key_der(&der)
        .map_err(|_| "the SendGrid verification key is not a P-256 public key".to_string())
}

pub fn verify(public_key: &str, max_age: u64, req: &Request<'_>) -> Result<Verified, Reject> {
    let key = parse_key(public_key).map_err(Reject::Unauthorized)?;
    let sig = req
        .header(SIGNATURE)
        .ok_or_else(|| Reject::Forged("no signature header".into()))?;
    let ts = req
        .header(TIMESTAMP)
        .ok_or_else(|| Reject::Forged("no timestamp header".into()))?;
    let ts_num: i64 = ts
        .parse()
        .map_err(|_| Reject::Forged("the timestamp is not a number".into()))?;
    let der = B64
        .decode(sig)
        .map_err(|_| Reject::Forged("the signature is not base64".into()))?;
    let sig =
        Signature::from_der(&der).map_err(|_| Reject::Forged("the signature is not DER".into()))?;
    let mut signed = Vec::with_capacity(ts.len() + req.body.len());
    signed.extend_from_slice(ts.as_bytes());
    signed.extend_from_slice(req.body);
    key.verify(&signed, &sig)
        .map_err(|_| Reject::Forged("ECDSA verification failed".into()))?;
    if (req.now - ts_num).unsigned_abs() > max_age {
        return Err(Reject::Stale(format!(
            "signed at {ts_num}, now {}",
            req.now
        )));
    }
    parse(req.body)
}

/// Maps SendGrid's event types. A `dropped` for a bounced, unsubscribed or spam-reporting
/// address is SendGrid echoing its own suppression list ([`Kind::Suppressed`]); other drops
/// (bad headers, content) say nothing about the address; `blocked` bounces are temporary.
pub fn parse(body: &[u8]) -> Result<Verified, Reject> {
    let v = json(body)?;
    if !v.is_array() {
        return Err(Reject::Malformed("SendGrid posts a JSON array".into()));
    }
    let mut out = Verified::default();
    for e in objects(&v)? {
        let kind = match e.get("event").and_then(|x| x.as_str()).unwrap_or_default() {
            // A group unsubscribe is honoured like a global one: the promise is that nobody
            // is mailed again after asking to stop.
            "unsubscribe" | "group_unsubscribe" => Some(Kind::Unsubscribe),
            "group_resubscribe" => Some(Kind::Resubscribe),
            "spamreport" => Some(Kind::Complaint),
            "bounce" => match e.get("type").and_then(|x| x.as_str()) {
                Some("blocked") => Some(Kind::SoftBounce),
                _ => Some(Kind::HardBounce),
            },
            "deferred" => Some(Kind::SoftBounce),
            "dropped" => match e.get("reason").and_then(|x| x.as_str()) {
                Some("Bounced Address" | "Unsubscribed Address" | "Spam Reporting Address") => {
                    Some(Kind::Suppressed)
                }
                _ => None,
            },
            _ => None,
        };
        let id = Some(id_part(e.get("sg_event_id"))).filter(|s| !s.is_empty());
        push(&mut out, kind, recipient(e.get("email")), id);
    }
    Ok(out)
}
