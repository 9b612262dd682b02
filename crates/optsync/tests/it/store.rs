//! The store itself: migrations, tenants, secrets at rest.

use sqlx::Row;

use crate::{Db, KEY, TestApp, on_both_backends};

async fn migrations_are_idempotent_and_secrets_never_stored_in_clear(db: Db) {
    let t = TestApp::spawn(db).await;
    t.state.store.migrate().await.unwrap();
    optsync::store::Store::open(&t.database_url).await.unwrap();
    let row = sqlx::query("SELECT credential_sealed, token_sealed, token_hash FROM tenants")
        .fetch_one(t.state.store.pool())
        .await
        .unwrap();
    let token = t.post_url.split("auth=").nth(1).unwrap();
    for col in ["credential_sealed", "token_sealed", "token_hash"] {
        let v: String = row.try_get(col).unwrap();
        assert!(
            !v.contains(KEY) && !v.contains(token),
            "{col} holds a secret in clear"
        );
    }
}
on_both_backends!(migrations_are_idempotent_and_secrets_never_stored_in_clear);

async fn tenants_rotate_tokens_and_are_removed_with_their_queue(db: Db) {
    let t = TestApp::spawn(db).await;
    // Keap posts for a contact that opted out: its stop status is there to honour.
    let (id, emails) = t.contact("ivy", 2);
    t.sim
        .event(
            &emails[0],
            keap_sim::SimEvent::Set(keap::EmailStatus::Manual),
        )
        .unwrap();
    assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 200);
    let new_url = t.state.tenants.rotate_token(&t.app).await.unwrap();
    assert_ne!(new_url, t.post_url);
    assert_eq!(
        t.post(&[("contactId", &id.to_string())]).await.0,
        401,
        "the old token is dead"
    );
    assert_eq!(
        crate::post_to(&new_url, &[("contactId", &id.to_string())])
            .await
            .0,
        200
    );
    assert_eq!(t.state.tenants.post_url(&t.app).await.unwrap(), new_url);
    t.worker.drain().await.unwrap();
    let audits = t.count("SELECT COUNT(*) FROM audit").await;
    assert!(audits > 0);
    let tenant = t.state.tenants.get(&t.app).await.unwrap();
    t.state
        .tenants
        .set_provider(
            &t.app,
            optsync::providers::Provider::Postmark,
            &optsync::providers::ProviderConfig::Http(optsync::providers::HttpAuth::Bearer {
                token: "t".into(),
            }),
        )
        .await
        .unwrap();
    optsync::reconcile::sweep(
        &t.state,
        &tenant,
        &optsync::reconcile::SweepOptions {
            full: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    t.state.tenants.remove(&t.app).await.unwrap();
    for table in [
        "events",
        "jobs",
        "ledger",
        "providers",
        "seen_tokens",
        "sweeps",
        "contact_addresses",
        "opted_out_seen",
        "tenants",
    ] {
        let sql: &'static str = Box::leak(format!("SELECT COUNT(*) FROM {table}").into_boxed_str());
        assert_eq!(
            t.count(sql).await,
            0,
            "{table} keeps rows of a removed tenant"
        );
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit").await,
        audits,
        "the audit log stays"
    );
    assert!(t.state.tenants.get(&t.app).await.is_err());
}
on_both_backends!(tenants_rotate_tokens_and_are_removed_with_their_queue);

/// The master key is never made anew while sealed rows exist, and a wrong key stops startup.
async fn a_missing_or_wrong_master_key_stops_startup(db: Db) {
    let t = TestApp::spawn(db).await;
    let settings = |key: Option<&str>| {
        let mut s = optsync::config::Settings::for_dir(t.dir.path(), Some(t.database_url.clone()));
        s.master_key = key.map(Into::into);
        s
    };
    let missing = optsync::app::App::open(settings(None)).await.err().unwrap();
    assert!(
        missing.to_string().contains("master key is missing"),
        "{missing}"
    );
    assert!(
        !t.dir.path().join("master.key").exists(),
        "no new key was created"
    );
    let wrong = optsync::app::App::open(settings(Some(
        "ZZECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )))
    .await
    .err()
    .unwrap();
    assert!(wrong.to_string().contains("does not open"), "{wrong}");
    assert!(
        optsync::app::App::open(settings(Some(crate::MASTER_KEY)))
            .await
            .is_ok()
    );
}
on_both_backends!(a_missing_or_wrong_master_key_stops_startup);
