//! OAuth: the code exchange, rotated refresh tokens stored before the new access token is
//! used, a failed store that never loses the only live token, one refresh per expiry across
//! processes sharing a store, and a refused grant that asks for a reconnect.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keap::{
    Clock, ContactId, Credential, Error, KeapClient, MemoryTokenStore, OAuthClient, OAuthSession,
    OAuthTokens, StoreFuture, StoredPair, TokenStore,
};
use keap_sim::{FaultKind, KeapSim, SimConfig};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::unpaced;

const REDIRECT: &str = "https://console.example/keap/callback";

/// A memory store that can fail, and that notes how many gateway calls Keap had seen when
/// each pair was handed to it.
struct Store {
    inner: MemoryTokenStore,
    sim: Arc<keap_sim::Shared>,
    saved: Mutex<Vec<(String, u64)>>,
    fail: AtomicBool,
}

impl TokenStore for Store {
    fn load(&self) -> StoreFuture<'_, Option<StoredPair>> {
        self.inner.load()
    }
    fn lease(&self, holder: &str, now_ms: u64, until_ms: u64) -> StoreFuture<'_, bool> {
        self.inner.lease(holder, now_ms, until_ms)
    }
    fn save(&self, holder: &str, replaces: u64, t: OAuthTokens) -> StoreFuture<'_, Option<u64>> {
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async { Err("database unavailable".to_string()) });
        }
        let calls_then = self.sim.lock().stats.total_calls();
        let refresh = t.refresh_token.expose_secret().to_string();
        self.saved.lock().unwrap().push((refresh, calls_then));
        self.inner.save(holder, replaces, t)
    }
    fn release(&self, holder: &str) -> StoreFuture<'_, ()> {
        self.inner.release(holder)
    }
    fn mark_reconnect_needed(&self, holder: &str, g: u64, why: &str) -> StoreFuture<'_, ()> {
        self.inner.mark_reconnect_needed(holder, g, why)
    }
}

fn oauth_client(sim: &KeapSim, clock: &Clock) -> OAuthClient {
    OAuthClient::new(
        "cid",
        SecretString::from("csecret".to_string()),
        Url::parse(&sim.token_url()).unwrap(),
        clock.clone(),
    )
    .unwrap()
}

/// The pair a fresh authorization gives (expired at once, as if stored long ago).
async fn connect(sim: &KeapSim, clock: &Clock) -> OAuthTokens {
    let code = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    let grant = oauth_client(sim, clock)
        .exchange_code(&code, REDIRECT)
        .await
        .unwrap();
    OAuthTokens {
        expires_at_ms: 0,
        ..grant.tokens
    }
}

async fn refresh_works(sim: &KeapSim, token: &str) -> bool {
    reqwest::Client::new()
        .post(sim.token_url())
        .basic_auth("cid", Some("csecret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

fn client_on(sim: &KeapSim, clock: &Clock, store: Arc<dyn TokenStore>) -> KeapClient {
    let session = OAuthSession::new(oauth_client(sim, clock), store);
    KeapClient::builder(sim.crm_url(), Credential::OAuth(Arc::new(session)))
        .pacer(unpaced())
        .build()
        .unwrap()
}

async fn sim_on(clock: &Clock) -> KeapSim {
    let config = SimConfig {
        tenant_id: "xy123.infusionsoft.com".into(),
        ..SimConfig::default()
    };
    KeapSim::builder()
        .config(config)
        .oauth_client("cid", "csecret")
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_code_exchange_names_the_connected_app_and_a_replayed_code_needs_a_reconnect() {
    let clock = Clock::manual(1_800_000_000_000);
    let sim = sim_on(&clock).await;
    let code = sim.issue_auth_code_for("cid", REDIRECT).unwrap();
    let client = oauth_client(&sim, &clock);
    let grant = client.exchange_code(&code, REDIRECT).await.unwrap();
    assert_eq!(grant.app(), Some("xy123.infusionsoft.com"));
    assert_eq!(grant.tokens.expires_at_ms, 1_800_000_000_000 + 86_400_000);
    let e = client.exchange_code(&code, REDIRECT).await.unwrap_err();
    assert!(matches!(e, Error::ReconnectNeeded(_)), "{e:?}");
}

#[tokio::test]
async fn rotated_tokens_are_stored_before_use_and_a_failed_store_keeps_them() {
    let clock = Clock::system();
    let sim = sim_on(&clock).await;
    let cid = sim.add_contact("a@example.com", None, None, keap::EmailStatus::SingleOptIn);
    let first = connect(&sim, &clock).await;
    let rt0 = first.refresh_token.expose_secret().to_string();
    let store = Arc::new(Store {
        inner: MemoryTokenStore::new(first),
        sim: sim.shared().clone(),
        saved: Mutex::new(Vec::new()),
        fail: AtomicBool::new(false),
    });
    let client = client_on(&sim, &clock, store.clone());
    let id = ContactId::new(cid).unwrap();

    client.contact(id).await.expect("refreshes, stores, calls");
    assert_eq!(
        store.saved.lock().unwrap().clone(),
        vec![(
            store
                .inner
                .stored()
                .unwrap()
                .tokens
                .refresh_token
                .expose_secret()
                .to_string(),
            0
        )],
        "stored before any gateway call used it"
    );
    assert!(!refresh_works(&sim, &rt0).await, "Keap killed the old one");
    client.contact(id).await.unwrap();
    assert_eq!(
        store.saved.lock().unwrap().len(),
        1,
        "a valid token is reused"
    );

    // Keap refuses the access token; the refresh succeeds but storing fails.
    store.fail.store(true, Ordering::SeqCst);
    sim.inject_fault(FaultKind::Unauthorized, 1);
    let calls_before = sim.stats().total_calls();
    let e = client.contact(id).await.unwrap_err();
    assert!(
        matches!(e, Error::TokenPersist(_)) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(
        sim.stats().total_calls(),
        calls_before + 1,
        "the unstored token was not used"
    );

    // The store is back: the held pair is stored first, then used; no further refresh.
    store.fail.store(false, Ordering::SeqCst);
    client.contact(id).await.expect("works with the held pair");
    let saved = store.saved.lock().unwrap().clone();
    assert_eq!(saved.len(), 2);
    assert_eq!(
        saved[1].1,
        calls_before + 1,
        "stored before its access token was used"
    );
    assert_eq!(
        sim.stats().oauth.refreshes,
        2,
        "the held pair was not refreshed again"
    );
    assert!(
        refresh_works(&sim, &saved[1].0).await,
        "the stored one is the live one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_store_refresh_once_per_expiry_and_never_spend_a_dead_token() {
    let clock = Clock::manual(1_800_000_000_000);
    let sim = sim_on(&clock).await;
    let cid = sim.add_contact("b@example.com", None, None, keap::EmailStatus::SingleOptIn);
    let id = ContactId::new(cid).unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new(connect(&sim, &clock).await));
    let clients: Vec<KeapClient> = (0..3)
        .map(|_| client_on(&sim, &clock, store.clone()))
        .collect();
    for round in 1..=10 {
        // Every process calls at once, twice each, on a pair that has just expired.
        let calls: Vec<_> = clients
            .iter()
            .flat_map(|c| [c.clone(), c.clone()])
            .map(|c| tokio::spawn(async move { c.contact(id).await }))
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(sim.stats().oauth.refreshes, round, "one refresh per expiry");
        clock.advance(Duration::from_secs(86_400));
    }
    assert_eq!(sim.stats().oauth.invalid_grant, 0);
}

#[tokio::test]
async fn a_revoked_grant_asks_for_a_reconnect_once_and_a_new_authorization_resumes() {
    let clock = Clock::manual(1_800_000_000_000);
    let sim = sim_on(&clock).await;
    let cid = sim.add_contact("c@example.com", None, None, keap::EmailStatus::SingleOptIn);
    let id = ContactId::new(cid).unwrap();
    let memory = Arc::new(MemoryTokenStore::new(connect(&sim, &clock).await));
    let a = client_on(&sim, &clock, memory.clone());
    let b = client_on(&sim, &clock, memory.clone());
    a.contact(id).await.unwrap();
    assert!(sim.revoke_oauth("cid"));

    let e = a.contact(id).await.unwrap_err();
    assert!(
        matches!(e, Error::ReconnectNeeded(_)) && !e.is_retryable(),
        "{e:?}"
    );
    assert!(memory.stored().unwrap().reconnect_needed.is_some());
    // The other process reads the verdict instead of asking Keap again.
    let e = b.contact(id).await.unwrap_err();
    assert!(matches!(e, Error::ReconnectNeeded(_)), "{e:?}");
    assert_eq!(sim.stats().oauth.invalid_grant, 1);

    memory.connect(connect(&sim, &clock).await);
    a.contact(id)
        .await
        .expect("a new authorization is taken up");
    b.contact(id).await.expect("by every process");
    assert_eq!(sim.stats().oauth.invalid_grant, 1);
}
