//! A time as the console's pages show it: a `<time>` element carrying the instant to the
//! second, around the same instant as UTC text. The console's one script (`/console.js`)
//! rewrites that text to the viewer's time zone and age; without it the UTC text stays.

use std::fmt;

use time::OffsetDateTime;
use time::macros::format_description;

use crate::clock::Millis;

/// A moment as a page shows it: a `<time>` element whose `datetime` is the instant to the
/// second and whose text is the same instant in UTC — what a browser without the console's
/// script shows. The script (`/console.js`) rewrites the text to the viewer's time zone and
/// its age ("3 min ago"). No moment: "—".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment(Option<Millis>);

impl Moment {
    pub fn at(at: impl Into<Millis>) -> Self {
        Self(Some(at.into()))
    }

    pub fn maybe(at: Option<Millis>) -> Self {
        Self(at)
    }

    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
}

/// Only digits, `-`, `:`, `T`, `Z`, spaces and "UTC" are written: nothing to escape.
impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(
                f,
                r#"<time datetime="{}">{}</time>"#,
                iso_seconds(at),
                utc_text(at)
            ),
            None => f.write_str("—"),
        }
    }
}

impl askama::filters::HtmlSafe for Moment {}

fn instant(at: Millis) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(at.as_i64().div_euclid(1000)).ok()
}

/// `2026-11-30T12:17:07Z`: RFC 3339 to the second, as `datetime` attributes carry it.
pub fn iso_seconds(at: impl Into<Millis>) -> String {
    let at = at.into();
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    instant(at)
        .and_then(|t| t.format(f).ok())
        .unwrap_or_else(|| at.to_string())
}

/// `2026-11-30 12:17 UTC`: what a page says before its script gives the viewer's time.
pub fn utc_text(at: impl Into<Millis>) -> String {
    let at = at.into();
    let f = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    instant(at)
        .and_then(|t| t.format(f).ok())
        .unwrap_or_else(|| at.to_string())
}

/// A day as a date picker holds it (`2026-11-30`, UTC).
pub fn day(at: impl Into<Millis>) -> String {
    let f = format_description!("[year]-[month]-[day]");
    instant(at.into())
        .and_then(|t| t.format(f).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T12:17:07.514Z
    const AT: i64 = 1_796_041_027_514;

    #[test]
    fn a_moment_is_a_time_element_to_the_second_with_utc_text() {
        assert_eq!(
            Moment::at(AT).to_string(),
            r#"<time datetime="2026-11-30T12:17:07Z">2026-11-30 12:17 UTC</time>"#
        );
        assert_eq!(Moment::maybe(None).to_string(), "—");
        assert_eq!(utc_text(AT), "2026-11-30 12:17 UTC");
        assert_eq!(day(AT), "2026-11-30");
    }
}
