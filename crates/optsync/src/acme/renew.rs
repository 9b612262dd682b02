//! Keeping the certificate current: wait until two thirds of its lifetime (at once when there
//! is none, it names other domains, or it expired), order a new one, serve it and store it.
//! A failed order is logged with the domain and the CA's problem and tried again after a
//! backoff that doubles up to [`MAX_BACKOFF`]; every step is bounded (each request by the
//! HTTP client's timeout, the polls by their retry policy, the whole order by
//! [`ORDER_TIMEOUT`]). Stops when the serving stops.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, Order,
    OrderStatus, RetryPolicy,
};

use super::certificate::{Issued, Leaf, shown};
use super::challenge::Resolver;
use super::client::AcmeHttp;
use super::store::AcmeStore;
use crate::config::AcmeSettings;
use crate::error::{Error, Result};

/// The first retry after a failed order; doubled per failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between two failed orders.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// One whole order, from the account to the chain.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest single sleep: the wait is computed again after it, so a clock that jumped
/// (a suspended machine) is caught up with.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Waiting for the CA to validate, and then to issue.
fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(Duration::from_secs(120))
}

/// The renewal task.
pub struct Renewal {
    settings: AcmeSettings,
    store: AcmeStore,
    http: AcmeHttp,
    resolver: Arc<Resolver>,
    /// What is served now.
    current: Option<Leaf>,
    account: Option<Account>,
}

/// How long to wait before the next order: until `current`'s renewal point (none, or past
/// it: now), or, after `failures` failed orders in a row, the backoff.
pub fn next_wait(current: Option<&Leaf>, failures: u32, now: SystemTime) -> Duration {
    if failures > 0 {
        let doubled = FIRST_BACKOFF.saturating_mul(1 << (failures - 1).min(16));
        return doubled.min(MAX_BACKOFF);
    }
    current.map_or(Duration::ZERO, |leaf| {
        leaf.renew_at()
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    })
}

/// `optsync_tls_certificate_expiry_timestamp_seconds`: when the certificate served expires.
pub fn note_expiry(leaf: &Leaf) {
    metrics::gauge!(crate::telemetry::TLS_CERT_EXPIRY).set(leaf.expiry_seconds());
}

impl Renewal {
    pub fn new(
        settings: AcmeSettings,
        store: AcmeStore,
        http: AcmeHttp,
        resolver: Arc<Resolver>,
        current: Option<Leaf>,
    ) -> Self {
        Self {
            settings,
            store,
            http,
            resolver,
            current,
            account: None,
        }
    }

    /// Renews whenever due until `stop` resolves.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut failures = 0u32;
        loop {
            let wait = next_wait(self.current.as_ref(), failures, SystemTime::now());
            if !wait.is_zero() {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => continue,
                }
            }
            let ordered = tokio::select! {
                _ = &mut stop => return,
                got = tokio::time::timeout(ORDER_TIMEOUT, self.obtain()) => got,
            };
            self.resolver.clear_challenges();
            match ordered
                .map_err(|_| Error::Acme(format!("no certificate within {ORDER_TIMEOUT:?}")))
                .and_then(|got| got)
            {
                Ok(issued) => {
                    failures = 0;
                    self.install(issued);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(
                        domain = %self.settings.domains[0],
                        directory = %self.settings.directory,
                        error = %e,
                        failures,
                        retry_in = ?next_wait(None, failures, SystemTime::now()),
                        "ACME certificate order failed"
                    );
                }
            }
        }
    }

    /// Serves the new certificate to new connections, and stores it for the next start.
    fn install(&mut self, issued: Issued) {
        self.resolver.serve(issued.served.clone());
        note_expiry(&issued.leaf);
        tracing::info!(
            domains = self.settings.domains.join(","),
            serial = %issued.leaf.serial,
            not_after = %shown(issued.leaf.not_after),
            renew_at = %shown(issued.leaf.renew_at()),
            "ACME certificate obtained"
        );
        if let Err(e) = self.store.save_certificate(&issued) {
            // Served all the same; the next start orders again.
            tracing::error!(error = %e, "storing the ACME certificate failed");
        }
        self.current = Some(issued.leaf);
    }

    /// One order: the account, the challenges answered, the certificate.
    async fn obtain(&mut self) -> Result<Issued> {
        let account = self.account().await?;
        let ids: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(problem)?;
        self.answer_challenges(&mut order).await?;
        let status = order.poll_ready(&polling()).await.map_err(problem)?;
        if status != OrderStatus::Ready {
            return Err(Error::Acme(format!("the order is {status:?}, not ready")));
        }
        let key_pem = order.finalize().await.map_err(problem)?;
        let chain_pem = order.poll_certificate(&polling()).await.map_err(problem)?;
        let issued = Issued::from_pem(&format!("{key_pem}{chain_pem}"))?;
        if !issued.leaf.names_exactly(&self.settings.domains) {
            return Err(Error::Acme(format!(
                "the CA issued a certificate for {:?}",
                issued.leaf.names
            )));
        }
        Ok(issued)
    }

    /// The stored account, or a new one (stored before it is used).
    async fn account(&mut self) -> Result<Account> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let builder = Account::builder_with_http(Box::new(self.http.clone()));
        let account = match self.store.account()? {
            Some(credentials) => builder
                .from_credentials(credentials)
                .await
                .map_err(problem)?,
            None => {
                let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contact,
                    // Setting acme_domains is the operator's agreement (the README says so).
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder
                    .create(&new, self.settings.directory.clone(), None)
                    .await
                    .map_err(problem)?;
                self.store.save_account(&credentials)?;
                tracing::info!(directory = %self.settings.directory, "ACME account created");
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    /// Each pending authorization: its challenge certificate in the resolver, then the CA
    /// told to validate.
    async fn answer_challenges(&self, order: &mut Order) -> Result<()> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(problem)?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(Error::Acme(format!("an authorization is {other:?}"))),
            }
            let mut challenge = authz
                .challenge(ChallengeType::TlsAlpn01)
                .ok_or_else(|| Error::Acme("the CA offers no tls-alpn-01 challenge".into()))?;
            let name = challenge.identifier().to_string();
            let digest = challenge.key_authorization().digest();
            self.resolver.add_challenge(&name, digest.as_ref())?;
            challenge.set_ready().await.map_err(problem)?;
        }
        Ok(())
    }
}

/// An ACME failure in words: the CA's problem (type, detail, each identifier's subproblem)
/// when it sent one.
fn problem(e: instant_acme::Error) -> Error {
    let instant_acme::Error::Api(p) = &e else {
        return Error::Acme(e.to_string());
    };
    let mut words = format!(
        "{}: {}",
        p.r#type.as_deref().unwrap_or("problem"),
        p.detail.as_deref().unwrap_or("(no detail)")
    );
    for sub in &p.subproblems {
        words.push_str(&format!(
            "; {}: {}",
            sub.r#type.as_deref().unwrap_or("problem"),
            sub.detail.as_deref().unwrap_or("(no detail)")
        ));
    }
    Error::Acme(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_two_thirds_in_and_backs_off_to_a_cap() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let leaf = Leaf {
            names: vec!["a.example.com".into()],
            not_before: t0,
            not_after: t0 + Duration::from_secs(90 * 86_400),
            serial: "01".into(),
        };
        assert_eq!(
            next_wait(None, 0, t0),
            Duration::ZERO,
            "nothing served: order now"
        );
        assert_eq!(
            next_wait(Some(&leaf), 0, t0),
            Duration::from_secs(60 * 86_400)
        );
        let late = t0 + Duration::from_secs(61 * 86_400);
        assert_eq!(next_wait(Some(&leaf), 0, late), Duration::ZERO);
        assert_eq!(next_wait(Some(&leaf), 1, t0), FIRST_BACKOFF);
        assert_eq!(next_wait(Some(&leaf), 2, t0), FIRST_BACKOFF * 2);
        assert_eq!(next_wait(None, 40, t0), MAX_BACKOFF);
    }
}
