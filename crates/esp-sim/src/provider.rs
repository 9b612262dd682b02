//! The providers the emulator serves, each under its own path prefix.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon SES v2, under `/ses/REGION`.
    Ses,
    /// SendGrid (Twilio), under `/sendgrid`.
    Sendgrid,
    /// Mailgun, under `/mailgun/us` and `/mailgun/eu`.
    Mailgun,
    /// Postmark, under `/postmark`.
    Postmark,
    /// SparkPost, under `/sparkpost`.
    Sparkpost,
    /// Mandrill (Mailchimp Transactional), under `/mandrill`.
    Mandrill,
    /// Mailjet, under `/mailjet`.
    Mailjet,
    /// Brevo (Sendinblue), under `/brevo`.
    Brevo,
}

impl Provider {
    pub const ALL: [Provider; 8] = [
        Self::Ses,
        Self::Sendgrid,
        Self::Mailgun,
        Self::Postmark,
        Self::Sparkpost,
        Self::Mandrill,
        Self::Mailjet,
        Self::Brevo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ses => "ses",
            Self::Sendgrid => "sendgrid",
            Self::Mailgun => "mailgun",
            Self::Postmark => "postmark",
            Self::Sparkpost => "sparkpost",
            Self::Mandrill => "mandrill",
            Self::Mailjet => "mailjet",
            Self::Brevo => "brevo",
        }
    }

    /// The key an address is held under: SES keeps case ("API calls for suppression list
    /// management require an exact case match"); the others are taken as case-insensitive.
    pub fn address_key(self, address: &str) -> String {
        match self {
            Self::Ses => address.to_string(),
            _ => address.to_ascii_lowercase(),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown provider {0:?} (one of ses, sendgrid, mailgun, postmark, sparkpost, mandrill, mailjet, brevo)"
)]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

/// A deliberately plain address check (one `@`, a dotted domain, no spaces or controls, at most
/// 254 characters): what the providers' `format: email` validation refuses at least.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_addresses_are_checked() {
        for p in Provider::ALL {
            assert_eq!(p.name().parse::<Provider>(), Ok(p));
        }
        assert!("nope".parse::<Provider>().is_err());
        assert!(valid_email("a.b+c@example.com"));
        for bad in [
            "",
            "a",
            "a@b",
            "@x.com",
            "a@@x.com",
            "a b@x.com",
            "a@x.com.",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert_eq!(Provider::Ses.address_key("A@x.com"), "A@x.com");
        assert_eq!(Provider::Mailgun.address_key("A@x.com"), "a@x.com");
    }
}
