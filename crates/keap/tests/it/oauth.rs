//! OAuth: rotated refresh tokens are stored before the new access token is used, and a
//! failed store never loses the only live token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use keap::{ContactId, Credential, Error, KeapClient, OAuthSession, OAuthTokens, PersistTokens};
use keap_sim::{FaultKind, KeapSim};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::unpaced;

struct Store {
    saved: Mutex<Vec<(String, String, u64)>>,
    fail: AtomicBool,
}

async fn first_refresh_token(sim: &KeapSim) -> String {
    let code = sim.issue_auth_code("cid").unwrap();
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", sim.base_url()))
        .basic_auth("cid", Some("csecret"))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["refresh_token"].as_str().unwrap().to_string()
}

async fn refresh_works(sim: &KeapSim, token: &str) -> bool {
    reqwest::Client::new()
        .post(format!("{}/token", sim.base_url()))
        .basic_auth("cid", Some("csecret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

fn session(sim: &KeapSim, refresh: &str, store: Arc<Store>) -> Arc<OAuthSession> {
    let shared = sim.shared().clone();
    let persist: PersistTokens = Arc::new(move |t: OAuthTokens| {
        let store = store.clone();
        // How many gateway calls Keap had seen when the tokens were handed over.
        let calls_then = shared.lock().stats.total_calls();
        Box::pin(async move {
            if store.fail.load(Ordering::SeqCst) {
                return Err("database unavailable".to_string());
            }
            store.saved.lock().unwrap().push((
                t.refresh_token.expose_secret().to_string(),
                t.access_token.expose_secret().to_string(),
                calls_then,
            ));
            Ok(())
        })
    });
    Arc::new(
        OAuthSession::new(
            "cid",
            SecretString::from("csecret".to_string()),
            Url::parse(&format!("{}/token", sim.base_url())).unwrap(),
            SecretString::from(refresh.to_string()),
            None,
            persist,
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn rotated_tokens_are_persisted_before_use_and_a_failed_store_keeps_them() {
    let sim = KeapSim::builder()
        .oauth_client("cid", "csecret")
        .start()
        .await
        .unwrap();
    let cid = sim.add_contact("a@example.com", None, None, keap::EmailStatus::SingleOptIn);
    let rt0 = first_refresh_token(&sim).await;
    let store = Arc::new(Store {
        saved: Mutex::new(Vec::new()),
        fail: AtomicBool::new(false),
    });
    let s = session(&sim, &rt0, store.clone());
    let client = KeapClient::builder(sim.crm_url(), Credential::OAuth(s))
        .pacer(unpaced())
        .build()
        .unwrap();
    let id = ContactId::new(cid).unwrap();

    client
        .contact(id)
        .await
        .expect("first call refreshes, stores, then calls");
    {
        let saved = store.saved.lock().unwrap();
        assert_eq!(saved.len(), 1);
        assert_ne!(saved[0].0, rt0, "a new refresh token");
        assert_eq!(saved[0].2, 0, "stored before any gateway call used it");
    }
    assert!(
        !refresh_works(&sim, &rt0).await,
        "Keap killed the old refresh token"
    );
    client.contact(id).await.unwrap();
    assert_eq!(
        store.saved.lock().unwrap().len(),
        1,
        "a valid access token is reused"
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
        "only the refused call: the unstored token was not used"
    );

    // Storage is back: the held tokens are stored first, then used; no further refresh.
    store.fail.store(false, Ordering::SeqCst);
    client
        .contact(id)
        .await
        .expect("works with the held tokens");
    let saved = store.saved.lock().unwrap().clone();
    assert_eq!(saved.len(), 2);
    assert_ne!(saved[1].0, saved[0].0);
    assert_eq!(
        saved[1].2,
        calls_before + 1,
        "stored before its access token was used"
    );
    assert!(
        refresh_works(&sim, &saved[1].0).await,
        "the stored refresh token is the live one"
    );
}

#[tokio::test]
async fn a_revoked_grant_is_unauthorized_not_retried_forever() {
    let sim = KeapSim::builder()
        .oauth_client("cid", "csecret")
        .start()
        .await
        .unwrap();
    let store = Arc::new(Store {
        saved: Mutex::new(Vec::new()),
        fail: AtomicBool::new(false),
    });
    let s = session(&sim, "sim-rt-never-issued", store.clone());
    let client = KeapClient::builder(sim.crm_url(), Credential::OAuth(s))
        .pacer(unpaced())
        .build()
        .unwrap();
    let e = client
        .contact(ContactId::new(1).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Unauthorized(_)) && !e.is_retryable(),
        "{e:?}"
    );
    assert!(store.saved.lock().unwrap().is_empty());
    assert_eq!(sim.stats().total_calls(), 0);
}
