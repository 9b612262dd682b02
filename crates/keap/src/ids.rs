//! Newtypes for the identifiers that cross Keap's API: contact ids, addresses, address fields.

use std::fmt;
use std::str::FromStr;

/// A Keap contact id (`Contact.Id`, REST `id`). Always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ContactId(i64);

impl ContactId {
    pub fn new(id: i64) -> Option<Self> {
        (id > 0).then_some(Self(id))
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("contact id {0:?} is not a positive integer")]
    ContactId(String),
    #[error("{0:?} is not an email address")]
    Email(String),
    #[error("unknown email field {0:?} (expected EMAIL1, EMAIL2 or EMAIL3)")]
    Field(String),
}

impl FromStr for ContactId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<i64>()
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| IdError::ContactId(s.to_string()))
    }
}

/// An email address as Keap keys it: trimmed, the domain lower-cased, the local part (with any
/// plus-tag) kept as written. Two addresses are the same address when their normal forms are
/// equal, so `Ann@Example.COM` and `Ann@example.com` are one address. Comparisons that must
/// also ignore local-part case (Keap itself matches case-insensitively) use [`Self::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let s = raw.trim();
        let bad = || IdError::Email(raw.to_string());
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        // Keap's own limits: 75 characters for EMAIL1, 100 for EMAIL2/3; take the larger.
        if local.is_empty()
            || domain.is_empty()
            || s.len() > 254
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
            || local.contains('@')
        {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// An address as Keap stores it, which may not pass [`Self::parse`] (Keap keeps invalid
    /// addresses too, in status `Invalid`): trimmed and domain lower-cased, nothing rejected.
    pub fn from_stored(raw: &str) -> Self {
        let s = raw.trim();
        match s.rsplit_once('@') {
            Some((local, domain)) => Self(format!("{local}@{}", domain.to_ascii_lowercase())),
            None => Self(s.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fully case-folded form, for looking an address up the way Keap does.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Which of a contact's three address fields an address sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EmailField {
    Email1,
    Email2,
    Email3,
}

impl EmailField {
    pub const ALL: [EmailField; 3] = [Self::Email1, Self::Email2, Self::Email3];

    /// REST spelling.
    pub fn rest_name(self) -> &'static str {
        match self {
            Self::Email1 => "EMAIL1",
            Self::Email2 => "EMAIL2",
            Self::Email3 => "EMAIL3",
        }
    }

    /// XML-RPC `Contact` table field name.
    pub fn xmlrpc_name(self) -> &'static str {
        match self {
            Self::Email1 => "Email",
            Self::Email2 => "EmailAddress2",
            Self::Email3 => "EmailAddress3",
        }
    }
}

impl FromStr for EmailField {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.rest_name() == s || f.xmlrpc_name() == s)
            .ok_or_else(|| IdError::Field(s.to_string()))
    }
}

impl fmt::Display for EmailField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rest_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_domain_lowercased() {
        let a = EmailAddress::parse("  Ann+News@Example.COM \n").unwrap();
        assert_eq!(a.as_str(), "Ann+News@example.com");
        assert_eq!(a.key(), "ann+news@example.com");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "nobody",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contact_ids_are_positive() {
        assert_eq!("42".parse::<ContactId>().unwrap().get(), 42);
        assert!("0".parse::<ContactId>().is_err());
        assert!("-3".parse::<ContactId>().is_err());
        assert!("x".parse::<ContactId>().is_err());
    }
}
