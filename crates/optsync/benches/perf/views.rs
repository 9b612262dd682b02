//! Section `views`: watching many apps. 1,000 apps (OPTSYNC_BENCH_APPS), each with a few
//! opt-outs over the last 30 days, some honoured and some waiting; the console's overview
//! page and `/metrics`, each asked over HTTP on the admin listener: the first answer (which
//! builds each app's Keap client and pacer) and the median of the next five. Beside them the
//! reference measured in the same run: the compliance report built per app for the last
//! 24 hours and 30 days, which is what the overview used to do on every load.

use super::*;
use optsync::clock::Millis;
use optsync::report::{Period, build};
use optsync::store::{Delivery, EventKind, EventPayload, NewEvent, ProviderEvent};

const DAY_MS: i64 = 86_400_000;
const OPT_OUTS_PER_APP: usize = 5;
const PASSWORD: &str = "bench password, long enough";

pub async fn run(backends: &[(&str, Option<String>)]) {
    let apps: usize = std::env::var("OPTSYNC_BENCH_APPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    println!(
        "## views. Watching {apps} apps ({OPT_OUTS_PER_APP} opt-outs each): the overview and /metrics\n"
    );
    for (name, pg) in backends {
        one(name, pg.as_deref(), apps).await;
    }
}

async fn one(backend: &str, pg: Option<&str>, apps: usize) {
    let dir = TempDir::new("views");
    let db = database(&dir, pg).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let listener = App::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let admin = App::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let mut settings = Settings::for_dir(&dir.0, Some(db));
    settings.public_url = format!("http://{}", listener.local_addr().unwrap());
    settings.master_key = Some(MASTER_KEY.into());
    let app = App::open(settings).await.unwrap();
    let setup = Instant::now();
    populate(&app, &sim, apps).await;
    let setup = setup.elapsed();
    let opts = ServeOptions {
        workers: 0,
        sweeps: None,
        admin: Some(admin),
    };
    let serving = app.serve(listener, opts).await.unwrap();
    let base = format!("http://{}", serving.admin_addr.unwrap());
    let (http, cookie) = sign_in(&app, &base).await;
    let overview = timed(&http, &format!("{base}/"), &cookie).await;
    let metrics = timed(&http, &format!("{base}/metrics"), &cookie).await;
    let queries = queries(&app).await;
    let reference = per_app_reports(&app).await;
    println!(
        "{backend} ({apps} apps stored in {:.1} s):\n\
         - overview page: first {}, then p50 {} — {:.0}× faster than the reference\n\
         - /metrics: first {}, then p50 {}\n\
         - their queries, p50: every app's numbers {}, every app's times to honour {}\n\
         - reference, the report built per app for 24 h and 30 days: {}\n",
        setup.as_secs_f64(),
        ms(overview.0),
        ms(overview.1),
        reference.as_secs_f64() / overview.1.as_secs_f64(),
        ms(metrics.0),
        ms(metrics.1),
        ms(queries.0),
        ms(queries.1),
        ms(reference),
    );
    serving.stop().await;
    sim.shutdown().await;
}

/// `apps` tenants, each with its own key, and their opt-outs: received over the last 30
/// days, most honoured after up to a few minutes, one in five still waiting.
async fn populate(app: &App, sim: &KeapSim, apps: usize) {
    let now = app.state().clock.epoch_ms();
    for i in 0..apps {
        let name = format!("app{i:04}");
        let key = format!("{}{i:04x}", &KEY[..KEY.len() - 4]);
        app.tenants()
            .add(TenantSpec {
                app: name.clone(),
                keap_base_url: sim.crm_url(),
                credential: StoredCredential::ApiKey { key },
                legacy_auth: false,
                opt_out_method: OptOutMethod::Auto,
                allow_http: true,
            })
            .await
            .unwrap();
        let tenant = app.tenants().get(&name).await.unwrap().id;
        let events = (0..OPT_OUTS_PER_APP)
            .map(|n| {
                let address = format!("p{n}@{name}.example").parse().unwrap();
                let payload = EventPayload::Provider(ProviderEvent {
                    provider: optsync::providers::Provider::Postmark,
                    kind: EventKind::Unsubscribe,
                    address,
                    id: Some(format!("{name}-{n}")),
                });
                let age = ((i * 7 + n * 13) as i64 * 3_600_000) % (30 * DAY_MS);
                NewEvent::new(tenant, payload, Millis(now - age))
            })
            .collect();
        let delivery = Delivery {
            events,
            token: None,
            at: Millis(now),
        };
        app.state().queue.enqueue(delivery).await.unwrap();
    }
    let pool = app.state().store.pool();
    sqlx::query(
        "UPDATE events SET honoured_at = received_at + (id % 300) * 1000 WHERE id % 5 <> 0",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET state = 'done' WHERE id IN (SELECT job_id FROM events WHERE honoured_at IS NOT NULL)",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// A console session: the account set, then signed in; the client and its cookie.
async fn sign_in(app: &App, base: &str) -> (reqwest::Client, String) {
    let hash = optsync::console::auth::hash_password(PASSWORD).unwrap();
    let now = app.state().clock.epoch_ms();
    app.state()
        .store
        .set_admin_password("admin", &hash, Millis(now))
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/login"))
        .form(&[("user", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in");
    let set = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_string();
    (http, cookie)
}

/// The first answer's time, and the median of the next nine.
async fn timed(http: &reqwest::Client, url: &str, cookie: &str) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = http.get(url).header("cookie", cookie).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        r.bytes().await.unwrap();
        times.push(t.elapsed());
    }
    let first = times.remove(0);
    times.sort();
    (first, pct(&times, 0.5))
}

/// The two queries the overview makes (`/metrics` the first), each the median of five.
async fn queries(app: &App) -> (Duration, Duration) {
    let store = &app.state().store;
    let now = app.state().clock.epoch_ms();
    let periods = [
        (Millis(now - DAY_MS), Millis(now + 1)),
        (Millis(now - 30 * DAY_MS), Millis(now + 1)),
    ];
    let (mut numbers, mut times) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        store.overview().await.unwrap();
        numbers.push(t.elapsed());
        let t = Instant::now();
        let kinds = &optsync::report::OPT_OUT_KINDS;
        store.honour_times(kinds, &periods).await.unwrap();
        times.push(t.elapsed());
    }
    numbers.sort();
    times.sort();
    (pct(&numbers, 0.5), pct(&times, 0.5))
}

/// The reference: what the overview did per app before, the report for 24 h and 30 days.
async fn per_app_reports(app: &App) -> Duration {
    let store = &app.state().store;
    let now = app.state().clock.epoch_ms();
    let t = Instant::now();
    for tenant in store.tenants().await.unwrap() {
        for days in [1, 30] {
            let period = Period {
                app: Some(tenant.app.clone()),
                since: Millis(now - days * DAY_MS),
                until: Millis(now + 1),
            };
            build(store, &period).await.unwrap();
        }
    }
    t.elapsed()
}
