//! Mailgun: HMAC-SHA256 with the webhook signing key over timestamp‖token, carried in the
//! body's `signature` object. The event data itself is not signed, so a token is accepted
//! once (the caller stores it with the events) and only while fresh.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Kind, Reject, Request, Verified, json, push, recipient};

pub fn verify(key: &str, max_age: u64, req: &Request<'_>) -> Result<Verified, Reject> {
    let v = json(req.body)?;
    let sig = v
        .get("signature")
        .ok_or_else(|| Reject::Forged("no signature object".into()))?;
    let field = |k: &str| {
        sig.get(k)
            .and_then(|x| x.as_str())
            .ok_or_else(|| Reject::Forged(format!("signature.{k} missing")))
    };
    let (ts, token, hex_sig) = (field("timestamp")?, field("token")?, field("signature")?);
    let given = hex::decode(hex_sig).map_err(|_| Reject::Forged("signature is not hex".into()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|_| Reject::Unauthorized("unusable signing key".into()))?;
    mac.update(ts.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| Reject::Forged("HMAC does not match".into()))?;
    let ts_num: i64 = ts
        .parse()
        .map_err(|_| Reject::Forged("timestamp is not a number".into()))?;
    if (req.now - ts_num).unsigned_abs() > max_age {
        return Err(Reject::Stale(format!(
            "signed at {ts_num}, now {}",
            req.now
        )));
    }
    parse(&v, token)
}

/// The event of a verified body; `token` (the signature's) is its id.
pub fn parse(v: &serde_json::Value, token: &str) -> Result<Verified, Reject> {
    let e = v
        .get("event-data")
        .ok_or_else(|| Reject::Malformed("no event-data".into()))?;
    let kind = match e.get("event").and_then(|x| x.as_str()).unwrap_or_default() {
        "unsubscribed" => Some(Kind::Unsubscribe),
        "complained" => Some(Kind::Complaint),
        "failed" => {
            let reason = e.get("reason").and_then(|x| x.as_str()).unwrap_or_default();
            match e.get("severity").and_then(|x| x.as_str()) {
                // `suppress-bounce`, `suppress-unsubscribe`, `suppress-complaint`: Mailgun
                // refused to send to an address on its own suppression lists.
                Some("permanent") if reason.starts_with("suppress-") => Some(Kind::Suppressed),
                Some("permanent") => Some(Kind::HardBounce),
                _ => Some(Kind::SoftBounce),
            }
        }
        _ => None,
    };
    let mut out = Verified {
        token: Some(token.to_string()),
        ..Verified::default()
    };
    // The token is the event's id: `event-data.id` is unique only within a day.
    push(
        &mut out,
        kind,
        recipient(e.get("recipient")),
        Some(token.to_string()),
    );
    Ok(out)
}
