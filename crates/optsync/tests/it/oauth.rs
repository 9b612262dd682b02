//! An OAuth-connected app served by two instances on one PostgreSQL: one refresh per expiry
//! across both, never a spent refresh token; and a grant Keap revoked: jobs blocked (never
//! dead), doctor and `/metrics` say so, and connecting the app again completes every job.

use std::time::Duration;

use keap::{EmailStatus, OptOutMethod};
use keap_sim::{KeapSim, SimConfig, SimEvent};
use optsync::app::App;
use optsync::clock::Clock;
use optsync::config::Settings;
use optsync::store::JobState;
use optsync::tenant::{StoredCredential, TenantSpec};
use optsync::worker::{JobOutcome, Worker};

use crate::{Db, MASTER_KEY, Options, TempDir, TestApp, post_to, test_pacing};

const CLIENT: &str = "optsync-dev";
const SECRET: &str = "dev-secret";
const REDIRECT: &str = "https://console.example/keap/callback";
const APP: &str = "xy123";

async fn oauth_sim(clock: &Clock) -> KeapSim {
    let config = SimConfig {
        tenant_id: "xy123.infusionsoft.com".into(),
        ..SimConfig::default()
    };
    KeapSim::builder()
        .config(config)
        .api_key(crate::KEY)
        .oauth_client(CLIENT, SECRET)
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

/// The refresh token of a first authorization, as an operator would hand it to `tenant add`.
async fn first_refresh_token(sim: &KeapSim) -> String {
    let code = sim.issue_auth_code_for(CLIENT, REDIRECT).unwrap();
    let r: serde_json::Value = reqwest::Client::new()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["refresh_token"].as_str().unwrap().to_string()
}

/// The service on `clock` with an OAuth app added; its Post URL.
async fn with_oauth_app(clock: &Clock, o: Options) -> (TestApp, String) {
    let sim = oauth_sim(clock).await;
    let refresh_token = first_refresh_token(&sim).await;
    let t = TestApp::spawn_with(
        Db::Postgres,
        Options {
            clock: clock.clone(),
            sim: Some(sim),
            ..o
        },
    )
    .await;
    t.service
        .tenants()
        .add(TenantSpec {
            app: APP.into(),
            keap_base_url: t.sim.crm_url(),
            credential: StoredCredential::OAuth {
                client_id: CLIENT.into(),
                client_secret: SECRET.into(),
                refresh_token,
                access_token: None,
                expires_at_ms: None,
                token_url: Some(t.sim.token_url()),
            },
            legacy_auth: false,
            opt_out_method: OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    let url = t.service.tenants().post_url(APP).await.unwrap();
    (t, url)
}

/// A second instance of the service on the same database and clock.
async fn second_instance(t: &TestApp, clock: &Clock, dir: &TempDir) -> App {
    let mut settings = Settings::for_dir(dir.path(), Some(t.database_url.clone()));
    settings.master_key = Some(MASTER_KEY.into());
    App::builder(settings)
        .clock(clock.clone())
        .pacing(test_pacing())
        .build()
        .await
        .unwrap()
}

/// `n` new contacts unsubscribe their Email through Keap's link and Keap posts each; their
/// Email 2 addresses, which optsync must opt out.
async fn posts(t: &TestApp, url: &str, tag: &str, n: usize) -> Vec<String> {
    let mut emails = Vec::new();
    for i in 0..n {
        let (first, second) = (
            format!("{tag}.{i}@example.com"),
            format!("{tag}.{i}@relay.example"),
        );
        let id = t
            .sim
            .add_contact(&first, Some(&second), None, EmailStatus::SingleOptIn);
        t.sim
            .event(&first, SimEvent::Set(EmailStatus::Manual))
            .unwrap();
        let (status, _) = post_to(url, &[("contactId", &id.to_string())]).await;
        assert_eq!(status, 200);
        emails.push(second);
    }
    emails
}

async fn drain_both(a: &Worker, b: &Worker) -> Vec<JobOutcome> {
    let (x, y) = tokio::join!(a.drain(), b.drain());
    x.unwrap().into_iter().chain(y.unwrap()).collect()
}

fn opted_out(t: &TestApp, emails: &[String]) -> bool {
    emails
        .iter()
        .all(|e| t.sim.status(e).is_some_and(|s| s.is_stop()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_refresh_once_per_expiry_and_honour_every_post() {
    let clock = Clock::manual(1_800_000_000_000);
    let (t, url) = with_oauth_app(&clock, Options::default()).await;
    let dir = TempDir::new("second");
    let other = second_instance(&t, &clock, &dir).await;
    let (w1, w2) = (t.worker.clone(), other.worker());
    for round in 1..=10u64 {
        let emails = posts(&t, &url, &format!("r{round}"), 6).await;
        let outcomes = drain_both(&w1, &w2).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, JobOutcome::Done { .. })),
            "round {round}: {outcomes:?}"
        );
        assert!(opted_out(&t, &emails), "round {round}: every post honoured");
        let oauth = t.sim.stats().oauth;
        assert_eq!(oauth.refreshes, round, "one refresh per expiry");
        assert_eq!(oauth.invalid_grant, 0);
        clock.advance(Duration::from_secs(86_400));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_blocks_jobs_until_the_app_is_connected_again() {
    let clock = Clock::manual(1_800_000_000_000);
    // Any job that failed would be buried at once: none may.
    let o = Options {
        max_attempts: 1,
        bury_after: Duration::ZERO,
        ..Options::default()
    };
    let (t, url) = with_oauth_app(&clock, o).await;
    let before = posts(&t, &url, "before", 1).await;
    t.worker.drain().await.unwrap();
    assert!(opted_out(&t, &before));
    assert!(t.sim.revoke_oauth(CLIENT));

    let emails = posts(&t, &url, "after", 3).await;
    let outcomes = t.worker.drain().await.unwrap();
    assert_eq!(outcomes.len(), 3);
    for o in &outcomes {
        let JobOutcome::Blocked { reason, .. } = o else {
            panic!("{o:?}");
        };
        assert!(reason.contains("connected again"), "{reason}");
    }
    // Days later, retried on schedule: still blocked, none dead, Keap asked only once.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(86_400));
        let again = t.worker.drain().await.unwrap();
        assert!(
            again
                .iter()
                .all(|o| matches!(o, JobOutcome::Blocked { .. }))
        );
    }
    let counts = t
        .state
        .store
        .tenant_job_counts(tenant_id(&t).await)
        .await
        .unwrap();
    assert!(counts.contains(&(JobState::Blocked, 3)), "{counts:?}");
    assert!(!counts.iter().any(|(s, n)| *s == JobState::Dead && *n > 0));
    assert_eq!(t.sim.stats().oauth.invalid_grant, 1);

    let tenant = t.service.tenants().get(APP).await.unwrap();
    let d = optsync::doctor::examine(&t.state, &tenant, None)
        .await
        .unwrap();
    assert!(!d.healthy(), "doctor exits 1");
    assert!(
        d.checks
            .iter()
            .any(|c| c.detail.contains("RECONNECT NEEDED"))
    );
    let metrics = optsync::telemetry::render(&t.state.store, &t.state.clients).await;
    assert!(
        metrics.contains(&format!("optsync_keap_reconnect_needed{{app=\"{APP}\"}} 1")),
        "{metrics}"
    );

    // The owner allows again; the new code is exchanged and every waiting job completes.
    let code = t.sim.issue_auth_code_for(CLIENT, REDIRECT).unwrap();
    let app = t
        .state
        .clients
        .connect_oauth(&tenant, &code, REDIRECT)
        .await
        .unwrap();
    assert_eq!(app.as_deref(), Some("xy123.infusionsoft.com"));
    let done = t.worker.drain().await.unwrap();
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(done.iter().all(|o| matches!(o, JobOutcome::Done { .. })));
    assert!(opted_out(&t, &emails));
    let metrics = optsync::telemetry::render(&t.state.store, &t.state.clients).await;
    assert!(metrics.contains(&format!("optsync_keap_reconnect_needed{{app=\"{APP}\"}} 0")));
}

async fn tenant_id(t: &TestApp) -> optsync::store::TenantId {
    t.service.tenants().get(APP).await.unwrap().id
}
