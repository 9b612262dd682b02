//! Mailjet: one event (Version 1) or an array (Version 2, grouped), basic auth.

use super::{Kind, Reject, Verified, id_part, json, objects, push, recipient};

pub fn parse(body: &[u8]) -> Result<Verified, Reject> {
    let v = json(body)?;
    let mut out = Verified::default();
    for e in objects(&v)? {
        let name = e.get("event").and_then(|x| x.as_str()).unwrap_or_default();
        let kind = match name {
            "unsub" => Some(Kind::Unsubscribe),
            "spam" => Some(Kind::Complaint),
            "bounce" => match e.get("hard_bounce").and_then(|x| x.as_bool()) {
                Some(true) => Some(Kind::HardBounce),
                _ => Some(Kind::SoftBounce),
            },
            // `preblocked`: Mailjet did not send because the address is on its block list
            // (an earlier hard bounce or spam report); other blocks are about the message.
            "blocked" => (e.get("error").and_then(|x| x.as_str()) == Some("preblocked"))
                .then_some(Kind::Suppressed),
            _ => None,
        };
        // MessageID can exceed 2^53: kept as the digits it was sent as.
        let id = format!(
            "{}:{name}:{}",
            id_part(e.get("MessageID")),
            id_part(e.get("time"))
        );
        push(&mut out, kind, recipient(e.get("email")), Some(id));
    }
    Ok(out)
}
