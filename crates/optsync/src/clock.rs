//! Time, injectable: the service reads the workspace's one clock ([`keap::Clock`]) so that
//! tests can fix it, and shows epoch milliseconds to people as RFC 3339.

pub use keap::Clock;

/// Epoch ms as RFC 3339, for people.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
