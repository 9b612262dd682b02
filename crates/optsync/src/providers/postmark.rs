//! Postmark: one event per POST, authenticated by basic auth (no signature).

use super::{Kind, Reject, Verified, id_part, json, push, recipient};

pub fn parse(body: &[u8]) -> Result<Verified, Reject> {
    let e = json(body)?;
    if !e.is_object() {
        return Err(Reject::Malformed("Postmark posts one JSON object".into()));
    }
    let s = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or_default();
    let (kind, email, id) = match s("RecordType") {
        "Bounce" => {
            let kind = match s("Type") {
                "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated" => Kind::HardBounce,
                _ => Kind::SoftBounce,
            };
            (
                Some(kind),
                recipient(e.get("Email")),
                format!("bounce:{}", id_part(e.get("ID"))),
            )
        }
        "SpamComplaint" => (
            Some(Kind::Complaint),
            recipient(e.get("Email")),
            format!("spam:{}", id_part(e.get("ID"))),
        ),
        "SubscriptionChange" => {
            let suppress = e.get("SuppressSending").and_then(|x| x.as_bool());
            let kind = match (suppress, s("SuppressionReason")) {
                (Some(true), "ManualSuppression") => Some(Kind::Unsubscribe),
                (Some(true), "SpamComplaint") => Some(Kind::Complaint),
                (Some(true), "HardBounce") => Some(Kind::HardBounce),
                (Some(false), _) => Some(Kind::Resubscribe),
                _ => None,
            };
            let id = format!(
                "subscription:{}:{}:{}",
                s("Recipient").to_lowercase(),
                s("ChangedAt"),
                suppress.unwrap_or_default()
            );
            (kind, recipient(e.get("Recipient")), id)
        }
        _ => (None, None, String::new()),
    };
    let mut out = Verified::default();
    push(&mut out, kind, email, Some(id));
    Ok(out)
}
