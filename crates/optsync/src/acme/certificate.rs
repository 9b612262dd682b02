//! An issued certificate: its private key and chain (PEM, as stored), the same as rustls
//! serves it, and what is read from the leaf — its names and validity, from which the moment
//! to renew follows.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::{Error, Result};

/// A certificate with its key, ready to serve.
#[derive(Debug, Clone)]
pub struct Issued {
    key_pem: String,
    chain_pem: String,
    pub served: Arc<CertifiedKey>,
    pub leaf: Leaf,
}

/// What the leaf certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Its DNS names (subject alternative names), lower-case.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Hexadecimal, for the log.
    pub serial: String,
}

impl Leaf {
    /// When to renew: two thirds into its lifetime (Let's Encrypt's 90 days: with 30 left).
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + life * 2 / 3
    }

    /// It names exactly `domains` (in any order).
    pub fn names_exactly(&self, domains: &[String]) -> bool {
        let mut mine = self.names.clone();
        let mut wanted = domains.to_vec();
        mine.sort();
        wanted.sort();
        mine.dedup();
        wanted.dedup();
        mine == wanted
    }

    /// Seconds since the epoch of its expiry (the metric).
    pub fn expiry_seconds(&self) -> f64 {
        self.not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

impl Issued {
    /// From a private key and a chain in PEM, in one text or two (in either order).
    pub fn from_pem(text: &str) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| Error::CorruptState(format!("ACME certificate: {e}"));
        let key = PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| bad(&e))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(&e))?;
        let first = chain.first().ok_or_else(|| bad(&"no certificate"))?;
        let leaf = read_leaf(first)?;
        let key_pem = pem_block(text, "PRIVATE KEY").ok_or_else(|| bad(&"no private key"))?;
        let chain_pem = pem_blocks(text, "CERTIFICATE");
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| bad(&e))?;
        let served = CertifiedKey::new(chain, signer);
        served.keys_match().map_err(|e| bad(&e))?;
        Ok(Self {
            key_pem,
            chain_pem,
            served: Arc::new(served),
            leaf,
        })
    }

    /// As stored: the key, then the chain.
    pub fn pem(&self) -> String {
        format!("{}{}", self.key_pem, self.chain_pem)
    }
}

/// A moment for the log.
pub fn shown(at: SystemTime) -> String {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    crate::clock::rfc3339(ms)
}

/// The names, validity and serial of a DER certificate.
pub fn read_leaf(der: &CertificateDer<'_>) -> Result<Leaf> {
    let bad = |e: &dyn std::fmt::Display| Error::CorruptState(format!("certificate: {e}"));
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| bad(&e))?;
    let tbs = &cert.tbs_certificate;
    let san = tbs.get::<SubjectAltName>().map_err(|e| bad(&e))?;
    let names = san
        .map(|(_, san)| san.0)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::DnsName(d) => Some(d.to_string().to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    Ok(Leaf {
        names,
        not_before: tbs.validity.not_before.to_system_time(),
        not_after: tbs.validity.not_after.to_system_time(),
        serial: hex::encode(tbs.serial_number.as_bytes()),
    })
}

/// The first PEM block whose label ends with `label` (`PRIVATE KEY`: PKCS#8, SEC1, PKCS#1).
fn pem_block(text: &str, label: &str) -> Option<String> {
    blocks(text)
        .find(|(l, _)| l.ends_with(label))
        .map(|(_, b)| b)
}

fn pem_blocks(text: &str, label: &str) -> String {
    blocks(text)
        .filter(|(l, _)| *l == label)
        .map(|(_, b)| b)
        .collect()
}

/// Each `-----BEGIN X-----` … `-----END X-----` block with its label, lines ended by `\n`.
fn blocks(text: &str) -> impl Iterator<Item = (&str, String)> {
    let mut lines = text.lines();
    std::iter::from_fn(move || {
        let label = lines.by_ref().find_map(|l| {
            l.trim()
                .strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
        })?;
        let mut block = format!("-----BEGIN {label}-----\n");
        for l in lines.by_ref() {
            block.push_str(l.trim());
            block.push('\n');
            if l.trim().starts_with("-----END ") {
                break;
            }
        }
        Some((label, block))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (key.serialize_pem(), cert.pem())
    }

    #[test]
    fn a_stored_pair_reads_back_and_renews_two_thirds_in() {
        let (key, chain) = self_signed(&["optsync.example.com", "b.example.com"]);
        let issued = Issued::from_pem(&format!("{key}{chain}")).unwrap();
        assert_eq!(Issued::from_pem(&issued.pem()).unwrap().leaf, issued.leaf);
        assert!(
            issued
                .leaf
                .names_exactly(&["b.example.com".into(), "optsync.example.com".into()])
        );
        assert!(!issued.leaf.names_exactly(&["optsync.example.com".into()]));
        let leaf = Leaf {
            names: vec![],
            not_before: SystemTime::UNIX_EPOCH,
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(90 * 86_400),
            serial: String::new(),
        };
        assert_eq!(
            leaf.renew_at(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(60 * 86_400)
        );
        // Another key beside the certificate is refused, not served.
        let (other_key, _) = self_signed(&["optsync.example.com"]);
        assert!(Issued::from_pem(&format!("{other_key}{chain}")).is_err());
    }
}
