//! SparkPost: batches of `{"msys": {...}}`, basic auth or a bearer token (no signature).

use super::{Kind, Reject, Verified, id_part, json, push, recipient};

/// Bounce classes SparkPost calls "Hard": 10 invalid recipient, 30 no RCPT, 90 unsubscribe.
const HARD: [&str; 3] = ["10", "30", "90"];
/// "Soft" classes; block (50–54) and subscribe (80) classes are policy, not the address.
const SOFT: [&str; 9] = ["20", "21", "22", "23", "24", "40", "60", "70", "100"];

/// "Admin Failure": SparkPost's own policy refused the send — the address is on its
/// suppression list.
const ADMIN_FAILURE: &str = "25";

pub fn parse(body: &[u8]) -> Result<Verified, Reject> {
    let v = json(body)?;
    let batch = v
        .as_array()
        .ok_or_else(|| Reject::Malformed("SparkPost posts a JSON array".into()))?;
    let mut out = Verified::default();
    for item in batch {
        let Some(msys) = item.get("msys").and_then(|m| m.as_object()) else {
            out.ignored += 1;
            continue;
        };
        // The validation ping is `[{"msys": {}}]`.
        for (class, e) in msys {
            let ty = e.get("type").and_then(|x| x.as_str()).unwrap_or_default();
            let kind = match (class.as_str(), ty) {
                ("unsubscribe_event", "list_unsubscribe" | "link_unsubscribe") => {
                    Some(Kind::Unsubscribe)
                }
                ("message_event", "spam_complaint") => Some(Kind::Complaint),
                ("message_event", "bounce" | "out_of_band") => {
                    let class = id_part(e.get("bounce_class"));
                    if class == ADMIN_FAILURE {
                        Some(Kind::Suppressed)
                    } else if HARD.contains(&class.as_str()) {
                        Some(Kind::HardBounce)
                    } else if SOFT.contains(&class.as_str()) {
                        Some(Kind::SoftBounce)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let email = recipient(e.get("raw_rcpt_to")).or_else(|| recipient(e.get("rcpt_to")));
            let id = Some(id_part(e.get("event_id"))).filter(|s| !s.is_empty());
            push(&mut out, kind, email, id);
        }
    }
    Ok(out)
}
