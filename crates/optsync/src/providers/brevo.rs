//! Brevo (Sendinblue): one event or a batch, basic auth or a bearer token.

use super::{Kind, Reject, Verified, id_part, json, objects, push, recipient};

pub fn parse(body: &[u8]) -> Result<Verified, Reject> {
    let v = json(body)?;
    let mut out = Verified::default();
    for e in objects(&v)? {
        let name = e.get("event").and_then(|x| x.as_str()).unwrap_or_default();
        let kind = match name {
            "unsubscribed" | "unsubscribe" => Some(Kind::Unsubscribe),
            "spam" | "complaint" => Some(Kind::Complaint),
            "hard_bounce" | "invalid_email" => Some(Kind::HardBounce),
            "soft_bounce" => Some(Kind::SoftBounce),
            // Brevo did not send: the contact is on its blocklist.
            "blocked" => Some(Kind::Suppressed),
            _ => None,
        };
        // `id` is the webhook's id, the same for every event: never an event id. `ts_epoch`
        // (ms, UTC) is the one time field that is consistently UTC.
        let when = e
            .get("ts_epoch")
            .or_else(|| e.get("ts_event"))
            .or_else(|| e.get("ts"));
        let message = e.get("message-id").or_else(|| e.get("camp_id"));
        let id = format!("{}:{name}:{}", id_part(message), id_part(when));
        push(&mut out, kind, recipient(e.get("email")), Some(id));
    }
    Ok(out)
}
