//! Text from outside (an app name in a URL, a provider's field, Keap's error message) made safe
//! for a log line: control characters escaped, so nobody can forge a line by sending a
//! newline, and the length bounded, so nobody can flood the log with one value.

use std::fmt;

/// Characters of outside text a log line shows at most.
const MAX_CHARS: usize = 200;

/// Outside text (anything `Display`) as one log-safe line.
#[derive(Debug, Clone, Copy)]
pub struct OneLine<T>(T);

/// Wraps outside text for a log field: `tracing::warn!(error = %one_line(&e), …)`.
pub fn one_line<T: fmt::Display>(v: T) -> OneLine<T> {
    OneLine(v)
}

impl<T: fmt::Display> fmt::Display for OneLine<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = Escaper { f, shown: 0 };
        match fmt::write(&mut w, format_args!("{}", self.0)) {
            // The cut-off point was reached: the mark is written, the rest dropped.
            Err(_) if w.shown > MAX_CHARS => w.f.write_str("…"),
            r => r,
        }
    }
}

/// Writes through, escaping control characters and stopping after [`MAX_CHARS`].
struct Escaper<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    shown: usize,
}

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            self.shown += 1;
            if self.shown > MAX_CHARS {
                return Err(fmt::Error);
            }
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(self.f, "{}", c.escape_default())?;
            } else {
                self.f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_controls_cannot_start_a_forged_line() {
        let forged = "acme\n2026-11-28T00:00:00Z  INFO job done\r\x1b[2J";
        let shown = one_line(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\x1b'));
        assert!(shown.starts_with("acme\\n2026"));
    }

    #[test]
    fn long_values_are_cut() {
        let shown = one_line(&"x".repeat(10_000)).to_string();
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert_eq!(one_line("plain").to_string(), "plain");
    }
}
