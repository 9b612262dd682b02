//! The ACME settings (`acme_domains`, `acme_contact`, `acme_directory`, `acme_directory_ca`),
//! checked when the configuration is loaded so that a name the CA could never validate stops
//! startup with a clear error instead of failing an order later.

use std::path::PathBuf;

use super::Values;
use crate::error::{Error, Result};

/// `optsync serve` obtains and renews its own certificate for these names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// DNS names, lower-case, in the order given (the first is the certificate's subject).
    pub domains: Vec<String>,
    /// `mailto:` and the address, if one was given.
    pub contact: Option<String>,
    /// The directory URL (https).
    pub directory: String,
    /// A PEM root trusted besides the built-in ones for the directory's HTTPS (a test CA).
    pub directory_ca: Option<PathBuf>,
}

/// The ACME settings, if `acme_domains` is set; an error for anything that cannot be used.
pub fn from_values(v: &Values) -> Result<Option<AcmeSettings>> {
    let Some(domains) = v.text("acme_domains")? else {
        for other in ["acme_contact", "acme_directory_ca"] {
            if v.text(other)?.is_some() {
                return Err(Error::Config(format!(
                    "{other} is set but acme_domains is not"
                )));
            }
        }
        return Ok(None);
    };
    if v.text("tls_cert")?.is_some() || v.text("tls_key")?.is_some() {
        return Err(Error::Config(
            "acme_domains and tls_cert/tls_key exclude each other: the certificate comes from ACME or from the files".into(),
        ));
    }
    let domains = domains
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(dns_name)
        .collect::<Result<Vec<_>>>()?;
    let directory: String = v.get("acme_directory")?;
    let parsed = url::Url::parse(&directory)
        .map_err(|e| Error::Config(format!("acme_directory {directory:?}: {e}")))?;
    if parsed.scheme() != "https" {
        return Err(Error::Config(format!(
            "acme_directory {directory:?}: must be https"
        )));
    }
    Ok(Some(AcmeSettings {
        domains,
        contact: v.text("acme_contact")?.map(|c| contact(&c)).transpose()?,
        directory,
        directory_ca: v.text("acme_directory_ca")?.map(PathBuf::from),
    }))
}

/// A DNS name TLS-ALPN-01 can validate: no IP address (the challenge names a host by SNI,
/// which carries no address), no wildcard (RFC 8737 refuses them), letters, digits and
/// hyphens in labels of at most 63, two labels at least.
pub fn dns_name(name: &str) -> Result<String> {
    let bad = |why: &str| Err(Error::Config(format!("acme_domains: {name:?} {why}")));
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if lower.parse::<std::net::IpAddr>().is_ok() {
        return bad("is an IP address: ACME's TLS-ALPN-01 certifies DNS names only");
    }
    if lower.contains('*') {
        return bad("is a wildcard: TLS-ALPN-01 cannot validate wildcards");
    }
    let labels: Vec<&str> = lower.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if lower.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return bad("is not a DNS name (e.g. optsync.example.com)");
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("is not a DNS name (its last label is a number)");
    }
    Ok(lower)
}

/// `acme_contact` as the account's contact URL: an email address, `mailto:` added.
fn contact(given: &str) -> Result<String> {
    let address = given.trim().trim_start_matches("mailto:");
    let valid = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !local.contains(|c: char| c.is_whitespace() || c == ',' || c == '@')
            && dns_name(domain).is_ok()
    });
    if !valid {
        return Err(Error::Config(format!(
            "acme_contact {given:?}: expected an email address (e.g. ops@example.com)"
        )));
    }
    Ok(format!("mailto:{address}"))
}

/// The public URL by default when the certificate names `domain`: https on that name, with
/// the listening port unless it is 443.
pub fn default_public_url(domain: &str, listen: &str) -> String {
    let port = listen.rsplit_once(':').map(|(_, p)| p.trim());
    match port {
        Some("443") | None => format!("https://{}", domain.to_ascii_lowercase()),
        Some(p) => format!("https://{}:{p}", domain.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Settings, check_file_text};
    use super::*;

    fn settings(text: &str) -> Result<Settings> {
        Settings::from_values(&Values::from_file_text(text)?)
    }

    #[test]
    fn names_must_be_dns_names_the_challenge_can_validate() {
        assert_eq!(
            dns_name("Optsync.Example.COM.").unwrap(),
            "optsync.example.com"
        );
        for bad in [
            "203.0.113.7",
            "::1",
            "*.example.com",
            "localhost",
            "exa mple.com",
            "-a.example.com",
            "a..example.com",
            "example.123",
        ] {
            let e = dns_name(bad).unwrap_err().to_string();
            assert!(e.contains("acme_domains"), "{bad}: {e}");
        }
    }

    #[test]
    fn acme_settings_are_checked_when_loaded() {
        let s = settings(
            "acme_domains = \"optsync.example.com, b.example.com\"\nacme_contact = \"ops@example.com\"\nlisten = \"0.0.0.0:443\"",
        )
        .unwrap();
        let a = s.acme.expect("acme is on");
        assert_eq!(a.domains, ["optsync.example.com", "b.example.com"]);
        assert_eq!(a.contact.as_deref(), Some("mailto:ops@example.com"));
        assert_eq!(
            a.directory,
            "https://acme-v02.api.letsencrypt.org/directory"
        );
        assert_eq!(s.public_url, "https://optsync.example.com");
        let on_8443 = settings("acme_domains = \"optsync.example.com\"").unwrap();
        assert_eq!(on_8443.public_url, "https://optsync.example.com:8080");
        for bad in [
            "acme_domains = \"*.example.com\"",
            "acme_domains = \"192.0.2.1\"",
            "acme_domains = \"a.example.com\"\nacme_contact = \"not an email\"",
            "acme_domains = \"a.example.com\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"",
            "acme_domains = \"a.example.com\"\nacme_directory = \"http://ca.example/dir\"",
            "acme_contact = \"ops@example.com\"",
        ] {
            assert!(check_file_text(bad).is_err(), "{bad}");
        }
        assert!(settings("").unwrap().acme.is_none());
    }
}
