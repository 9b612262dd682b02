//! TLS-ALPN-01 (RFC 8737) on the serving port: the one certificate resolver of the listener's
//! TLS configuration. A ClientHello that offers only `acme-tls/1` is the CA validating a name:
//! it is answered with that name's challenge certificate (self-signed, the name as its only
//! SAN, the key authorization's digest in the critical `acmeIdentifier` extension), and the
//! connection is closed after the handshake (`http::serve_on`). Every other ClientHello gets
//! the current certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rustls::pki_types::PrivateKeyDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{Error, Result};

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificate served now, and the challenge certificates of the orders under way.
#[derive(Debug, Default)]
pub struct Resolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Resolver {
    /// New connections are served `cert` from now on; open ones keep theirs.
    pub fn serve(&self, cert: Arc<CertifiedKey>) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(cert);
        }
    }

    /// Answers the CA's validation of `name` with a challenge certificate for `digest`.
    pub fn add_challenge(&self, name: &str, digest: &[u8]) -> Result<()> {
        let cert = challenge_certificate(name, digest)?;
        if let Ok(mut map) = self.challenges.lock() {
            map.insert(name.to_ascii_lowercase(), Arc::new(cert));
        }
        Ok(())
    }

    /// Forgets every challenge (the order ended, one way or the other).
    pub fn clear_challenges(&self) {
        if let Ok(mut map) = self.challenges.lock() {
            map.clear();
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if offers_only_acme_tls(&hello) {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.lock().ok()?.get(&name).cloned();
        }
        self.current.read().ok()?.clone()
    }
}

/// The CA offers `acme-tls/1` alone; a browser or Keap never offers it.
fn offers_only_acme_tls(hello: &ClientHello<'_>) -> bool {
    hello.alpn().is_some_and(|mut offered| {
        let mut any = false;
        offered.all(|p| {
            any = true;
            p == ACME_TLS_ALPN
        }) && any
    })
}

/// RFC 8737 §3: self-signed, `name` as the one SAN, the SHA-256 digest of the key
/// authorization in the critical id-pe-acmeIdentifier extension.
fn challenge_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey> {
    let fail =
        |e: &dyn std::fmt::Display| Error::Config(format!("ACME challenge certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| fail(&e))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| fail(&e))?;
    let cert = params.self_signed(&key).map_err(|e| fail(&e))?;
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| fail(&e))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// One server configuration for the listener, whatever the certificate becomes: HTTP/1.1
/// (what it speaks) and `acme-tls/1` (the CA's validations).
pub fn server_config(resolver: Arc<Resolver>) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use x509_cert::der::Decode as _;

    use super::*;

    #[test]
    fn the_challenge_certificate_carries_the_name_and_the_digest() {
        let digest = [7u8; 32];
        let cert = challenge_certificate("optsync.example.com", &digest).unwrap();
        let leaf = super::super::certificate::read_leaf(&cert.cert[0]).unwrap();
        assert_eq!(leaf.names, ["optsync.example.com"]);
        let parsed = x509_cert::Certificate::from_der(&cert.cert[0]).unwrap();
        let ext = parsed
            .tbs_certificate
            .extensions
            .unwrap()
            .into_iter()
            .find(|e| e.extn_id.to_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
        // An OCTET STRING of 32 bytes: the digest.
        assert_eq!(&ext.extn_value.as_bytes()[2..], &digest);
    }
}
