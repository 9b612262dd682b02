//! Mandrill (Mailchimp Transactional): HMAC-SHA1, base64, in `X-Mandrill-Signature`, over
//! the webhook URL exactly as registered followed by every form field, sorted by name, each
//! name then value.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::{Kind, Reject, Request, Verified, id_part, objects, push, recipient};

pub const SIGNATURE: &str = "x-mandrill-signature";

/// The signature of a delivery: what Mandrill puts in `X-Mandrill-Signature` (base64).
pub fn signature(key: &str, url: &str, fields: &[(String, String)]) -> Option<Vec<u8>> {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    Some(mac.finalize().into_bytes().to_vec())
}

pub fn verify(key: &str, url: &str, req: &Request<'_>) -> Result<Verified, Reject> {
    let ct = req.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(Reject::Malformed("Mandrill posts a form".into()));
    }
    let given = req
        .header(SIGNATURE)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| Reject::Forged("no or unreadable X-Mandrill-Signature".into()))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body)
        .map_err(|_| Reject::Malformed("not a form".into()))?;
    let expected = signature(key, url, &fields)
        .ok_or_else(|| Reject::Unauthorized("unusable webhook key".into()))?;
    if !bool::from(expected.as_slice().ct_eq(&given)) {
        return Err(Reject::Forged(
            "HMAC does not match (is the registered URL the one configured?)".into(),
        ));
    }
    parse(&fields)
}

/// The events of a verified form.
pub fn parse(fields: &[(String, String)]) -> Result<Verified, Reject> {
    let events = fields
        .iter()
        .find(|(k, _)| k == "mandrill_events")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| Reject::Malformed("no mandrill_events".into()))?;
    let v = super::json(events.as_bytes())?;
    if !v.is_array() {
        return Err(Reject::Malformed("mandrill_events is not an array".into()));
    }
    let mut out = Verified::default();
    for e in objects(&v)? {
        let name = e.get("event").and_then(|x| x.as_str()).unwrap_or_default();
        let kind = match name {
            "unsub" => Some(Kind::Unsubscribe),
            "spam" => Some(Kind::Complaint),
            "hard_bounce" => Some(Kind::HardBounce),
            "soft_bounce" => Some(Kind::SoftBounce),
            // Mandrill refused to send: the address is on its rejection list.
            "reject" => Some(Kind::Suppressed),
            _ => None,
        };
        let msg = e.get("msg");
        let id = format!("{}:{name}:{}", id_part(e.get("_id")), id_part(e.get("ts")));
        push(
            &mut out,
            kind,
            recipient(msg.and_then(|m| m.get("email"))),
            Some(id),
        );
    }
    Ok(out)
}
