//! Postmark: one event per POST, authenticated by basic auth (no signature). Shapes and
//! types: postmarkapp.com/developer/webhooks (bounce, spam complaint, subscription change)
//! and the bounce type list of its API (`Type`/`TypeCode`).

use super::{Kind, Reject, Verified, id_part, json, push, recipient};

pub fn parse(body: &[u8]) -> Result<Verified, Reject> {
    let e = json(body)?;
    if !e.is_object() {
        return Err(Reject::Malformed("Postmark posts one JSON object".into()));
    }
    let s = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or_default();
    let (kind, email, id) = match s("RecordType") {
        "Bounce" => {
            // Postmark reports some stops as bounce types: `Unsubscribe` (16, an unsubscribe
            // or remove request) and `SpamNotification` (512, the recipient's provider says
            // it was marked as spam).
            let kind = match s("Type") {
                "HardBounce" | "BadEmailAddress" => Kind::HardBounce,
                "Unsubscribe" => Kind::Unsubscribe,
                "SpamNotification" | "SpamComplaint" => Kind::Complaint,
                // Deactivated by the sender's staff: their suppression, not the person's act.
                "ManuallyDeactivated" => Kind::Suppressed,
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
            // A manual suppression is the person's unsubscribe only when they made it
            // (`Origin: Recipient`); one by the sender's staff (`Customer`, `Admin`) is the
            // sender's own suppression list.
            let kind = match (suppress, s("SuppressionReason")) {
                (Some(true), "ManualSuppression") if s("Origin") == "Recipient" => {
                    Some(Kind::Unsubscribe)
                }
                (Some(true), "ManualSuppression") => Some(Kind::Suppressed),
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
