//! HTTPS through ACME (RFC 8555) for `optsync serve`: a certificate for `acme_domains`
//! obtained from `acme_directory` and renewed at two thirds of its lifetime, the CA's
//! TLS-ALPN-01 validations answered on the serving port itself. [`start`] gives the listener
//! its [`Tls`] (one configuration whose resolver serves whatever is current) and the
//! [`Renewal`] task that [`crate::app::Serving`] owns and stops.
//!
//! [`client`] is instant-acme's HTTP over our reqwest client, [`challenge`] the resolver and
//! the challenge certificates, [`store`] the account and certificate in the data directory,
//! [`certificate`] what a certificate says (names, validity), [`renew`] the schedule and the
//! order.

pub mod certificate;
pub mod challenge;
pub mod client;
pub mod renew;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

pub use renew::Renewal;

use crate::config::AcmeSettings;
use crate::error::Result;
use crate::tls::Tls;

/// The listener's TLS and the task that keeps its certificate current. A stored certificate
/// for the same names that has not expired is served at once, without a new order; otherwise
/// the listener has no certificate until the first order succeeds (the renewal starts it at
/// once).
pub fn start(settings: &AcmeSettings, data_dir: &Path) -> Result<(Tls, Renewal)> {
    let store = store::AcmeStore::new(data_dir, &settings.directory);
    let http = client::AcmeHttp::new(settings.directory_ca.as_deref())?;
    let resolver = Arc::new(challenge::Resolver::default());
    let stored = store.certificate()?.filter(|c| {
        c.leaf.names_exactly(&settings.domains) && c.leaf.not_after > SystemTime::now()
    });
    if let Some(c) = &stored {
        resolver.serve(c.served.clone());
        renew::note_expiry(&c.leaf);
        tracing::info!(
            domains = settings.domains.join(","),
            serial = %c.leaf.serial,
            not_after = %certificate::shown(c.leaf.not_after),
            "serving the stored ACME certificate"
        );
    }
    let tls = Tls::fixed(challenge::server_config(resolver.clone())?);
    let renewal = Renewal::new(
        settings.clone(),
        store,
        http,
        resolver,
        stored.map(|c| c.leaf),
    );
    Ok((tls, renewal))
}
