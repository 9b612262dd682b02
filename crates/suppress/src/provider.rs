//! The providers, and what a suppression wrote where.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Ses,
    Sendgrid,
    Mailgun,
    Postmark,
    Sparkpost,
    Mandrill,
    Mailjet,
    Brevo,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ses => "ses",
            Self::Sendgrid => "sendgrid",
            Self::Mailgun => "mailgun",
            Self::Postmark => "postmark",
            Self::Sparkpost => "sparkpost",
            Self::Mandrill => "mandrill",
            Self::Mailjet => "mailjet",
            Self::Brevo => "brevo",
        })
    }
}

/// One list an address was written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// SES account-level list in a region.
    Region(String),
    /// A Mailgun sending domain's unsubscribes.
    Domain(String),
    /// A Postmark message stream.
    Stream(String),
    /// A SparkPost type: `transactional` or `non_transactional`.
    Type(&'static str),
    /// A Brevo sender's transactional blocklist.
    Sender(String),
    /// The account's (or subaccount's) one list: SendGrid global, Mandrill rejects.
    Account,
    /// Marketing mail only: Mailjet's exclusion, Brevo's `emailBlacklisted`.
    Campaigns,
}

/// What a suppression wrote: each scope, and whether the provider's read showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub provider: Provider,
    /// (scope, verified by a read call)
    pub scopes: Vec<(Scope, bool)>,
}

impl Suppressed {
    /// True when every scope was read back.
    pub fn all_verified(&self) -> bool {
        self.scopes.iter().all(|(_, v)| *v)
    }
}
