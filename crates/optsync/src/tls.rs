//! HTTPS of its own: the hook listener terminates TLS (rustls) with the certificate chain and
//! key in `OPTSYNC_TLS_CERT` and `OPTSYNC_TLS_KEY` (PEM), read again on SIGHUP so that a
//! renewed certificate is taken up without a restart. A reload changes what new connections
//! are offered; open ones keep theirs, so nothing is dropped. A reload that fails (a half
//! written file) is logged and the previous certificate kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// Where the certificate chain and its key are (both PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The current server configuration, replaced on reload.
#[derive(Clone)]
pub struct Tls {
    current: watch::Receiver<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the files now (an error stops startup); the [`Reload`] returned reads them again
    /// on every SIGHUP while it runs.
    pub fn start(files: TlsFiles) -> Result<(Self, Reload)> {
        let (tx, rx) = watch::channel(load(&files)?);
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        Ok((Self { current: rx }, Reload { files, tx, hup }))
    }

    /// A configuration that never changes itself (ACME's: its resolver follows renewals).
    pub fn fixed(config: Arc<ServerConfig>) -> Self {
        let (_, rx) = watch::channel(config);
        Self { current: rx }
    }

    /// What a connection accepted now is offered.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.borrow().clone())
    }
}

/// Reading the files again on SIGHUP: a task of its own, owned by whoever serves.
pub struct Reload {
    files: TlsFiles,
    tx: watch::Sender<Arc<ServerConfig>>,
    hup: tokio::signal::unix::Signal,
}

impl Reload {
    /// Reloads on every SIGHUP until `stop` resolves or no listener uses the configuration.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = self.tx.closed() => return,
                got = self.hup.recv() => if got.is_none() { return },
            }
            match load(&self.files) {
                Ok(config) => {
                    self.tx.send_replace(config);
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "TLS certificate reload failed; still serving the previous one"
                ),
            }
        }
    }
}

/// A server configuration from the two files: HTTP/1.1 only (what the listener speaks).
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let bad =
        |p: &Path, e: &dyn std::fmt::Display| Error::Config(format!("TLS: {}: {e}", p.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad(&files.cert, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(&files.cert, &e))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, &"no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, &e))?;
    note_expiry(&certs[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `optsync_tls_certificate_expiry_timestamp_seconds` from the leaf's notAfter (a leaf that
/// does not parse is left to rustls to refuse).
fn note_expiry(leaf: &CertificateDer<'_>) {
    use x509_cert::der::Decode as _;
    if let Ok(cert) = x509_cert::Certificate::from_der(leaf) {
        let at = cert.tbs_certificate.validity.not_after.to_unix_duration();
        metrics::gauge!(crate::telemetry::TLS_CERT_EXPIRY).set(at.as_secs_f64());
    }
}
