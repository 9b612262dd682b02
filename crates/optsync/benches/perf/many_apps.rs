//! 6. Many apps on one instance: N apps (`OPTSYNC_BENCH_APPS`, default 1,000), each with its
//!    own service key at Keap's real limits, Keap answering in 200 ms, one Keap post per app
//!    all at once, against a real `optsync serve` with its defaults but 64, then 256 (the
//!    default) jobs in flight. Prints the time to
//!    honour against the floor (an app's own calls, one after another, at Keap's latency),
//!    Keap calls per opt-out, 429s, the console overview's and `/metrics`' response times
//!    with those apps, and the server's RSS.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

const LATENCY: Duration = Duration::from_millis(200);

fn key(i: usize) -> String {
    format!("KeapAK-many{i:06}0123456789abcdef0123456789abcdef0123456")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The apps stored (each with one contact whose Email opted out in Keap, Email 2 still
/// marketable) and the console's password set, before the server starts; each app's Post
/// URL and contact.
async fn setup(dir: &TempDir, db: &str, sim: &KeapSim, n: usize) -> Vec<(String, i64)> {
    let mut settings = Settings::for_dir(&dir.0, Some(db.to_string()));
    settings.master_key = Some(MASTER_KEY.into());
    let app = App::open(settings).await.unwrap();
    let hash = optsync::console::auth::hash_password("bench-password").unwrap();
    let now = optsync::clock::Millis(optsync::clock::Clock::system().epoch_ms());
    app.store()
        .set_admin_password("admin", &hash, now)
        .await
        .unwrap();
    let mut apps = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("app{i:04}");
        app.tenants()
            .add(TenantSpec {
                app: name.clone(),
                keap_base_url: sim.crm_url(),
                credential: StoredCredential::ApiKey { key: key(i) },
                legacy_auth: false,
                opt_out_method: OptOutMethod::Auto,
                allow_http: true,
            })
            .await
            .unwrap();
        let e = [
            format!("p{i}@many.example"),
            format!("p{i}@relay.many.example"),
        ];
        let id = sim.add_contact(&e[0], Some(&e[1]), None, EmailStatus::SingleOptIn);
        sim.event(&e[0], SimEvent::ManualOptOut).unwrap();
        apps.push((app.tenants().post_url(&name).await.unwrap(), id));
    }
    apps
}

/// `optsync serve` with its defaults but `in_flight` on `db`; the process, its hook and admin
/// URLs.
async fn serve(dir: &TempDir, db: &str, in_flight: usize) -> (std::process::Child, String, String) {
    let (port, admin) = (free_port(), free_port());
    let extra = [
        ("OPTSYNC_JOBS_IN_FLIGHT", in_flight.to_string()),
        ("OPTSYNC_ADMIN_LISTEN", format!("127.0.0.1:{admin}")),
    ];
    let child = super::serve_process(dir, db, port, &extra).await;
    let base = format!("http://127.0.0.1:{port}");
    (child, base, format!("http://127.0.0.1:{admin}"))
}

/// Every app's post at once (64 connections); waits until all are honoured.
async fn post_all(app: &App, apps: &[(String, i64)]) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut posts = tokio::task::JoinSet::new();
    for (url, id) in apps {
        let (http, gate, url, id) = (http.clone(), gate.clone(), url.clone(), *id);
        posts.spawn(async move {
            let _g = gate.acquire().await.unwrap();
            let form = [("contactId", id.to_string())];
            // A connection refused under the burst is tried again, as Keap would.
            for _ in 0..5 {
                if let Ok(r) = http.post(&url).form(&form).send().await {
                    return r.status();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("the post for contact {id} was never answered")
        });
    }
    while let Some(s) = posts.join_next().await {
        assert!(s.unwrap().is_success());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ev = app.store().honoured_events().await.unwrap();
        if ev.len() >= apps.len() || Instant::now() > deadline {
            let mut t: Vec<Duration> = ev
                .iter()
                .map(|e| Duration::from_millis((e.honoured_at - e.received_at).max(0) as u64))
                .collect();
            t.sort_unstable();
            return t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The median of five GETs of `path` on the admin listener, signed in.
async fn answer_time(admin: &str, cookie: &str, path: &str) -> Duration {
    // A redirect (to the sign-in page) would be timed as an answer: refused instead.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut t = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let r = http
            .get(format!("{admin}{path}"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{path}");
        r.bytes().await.unwrap();
        t.push(start.elapsed());
    }
    t.sort_unstable();
    t[2]
}

/// Signs in to the console; the session cookie.
async fn sign_in(admin: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{admin}/login"))
        .form(&[("user", "admin"), ("password", "bench-password")])
        .send()
        .await
        .unwrap();
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .collect();
    assert!(!cookies.is_empty(), "not signed in: {}", r.status());
    cookies.join("; ")
}

pub async fn run(n: usize) {
    println!(
        "## 6. {n} apps, each its own key at real limits (10/s, 240/min), one Keap post each at once, Keap answering in {} ms (`optsync serve` defaults but jobs in flight)\n",
        LATENCY.as_millis()
    );
    println!(
        "| jobs in flight | honoured | time to honour p50 / p99 | floor | p99 ÷ floor | Keap calls per opt-out | 429s | overview | /metrics | RSS peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for in_flight in [64, 256] {
        one_pass(n, in_flight).await;
    }
    println!();
}

/// One run of `n` apps' posts against a server keeping `in_flight` jobs in flight.
async fn one_pass(n: usize, in_flight: usize) {
    let dir = TempDir::new(&format!("many{in_flight}"));
    let sim = (0..n)
        .fold(
            KeapSim::builder().throttle(Throttle::from_name("pat").expect("pat profile")),
            |b, i| b.api_key(&key(i)),
        )
        .start()
        .await
        .unwrap();
    let db = database(&dir, None).await;
    let apps = setup(&dir, &db, &sim, n).await;
    let (mut child, base, admin) = serve(&dir, &db, in_flight).await;
    // The Post URLs were made before the server's port was known: same path and token,
    // this server's address.
    let apps: Vec<(String, i64)> = apps
        .into_iter()
        .map(|(url, id)| {
            let u = url::Url::parse(&url).unwrap();
            (
                format!("{base}{}?{}", u.path(), u.query().unwrap_or("")),
                id,
            )
        })
        .collect();
    let app = App::open({
        let mut s = Settings::for_dir(&dir.0, Some(db.clone()));
        s.master_key = Some(MASTER_KEY.into());
        s
    })
    .await
    .unwrap();
    let pid = child.id();
    let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(k) = rss_kib(pid) {
                    peak.fetch_max(k, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    sim.configure(|c| c.latency = LATENCY);
    sim.reset_stats();
    let times = post_all(&app, &apps).await;
    // The peak while the opt-outs were honoured (a console sign-in's Argon2 is not counted).
    sampler.abort();
    let stats = sim.stats();
    let per = stats.total_calls() as f64 / times.len().max(1) as f64;
    let floor = LATENCY.mul_f64(per.ceil());
    sim.configure(|c| c.latency = Duration::ZERO);
    let cookie = sign_in(&admin).await;
    let overview = answer_time(&admin, &cookie, "/").await;
    let metrics = answer_time(&admin, &cookie, "/metrics").await;
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "| {in_flight} | {}/{n} | {:.1} s / {:.1} s | {:.1} s | {:.1} | {per:.2} | {} | {} | {} | {:.1} MiB |",
        times.len(),
        pct(&times, 0.5).as_secs_f64(),
        pct(&times, 0.99).as_secs_f64(),
        floor.as_secs_f64(),
        pct(&times, 0.99).as_secs_f64() / floor.as_secs_f64().max(0.001),
        stats.throttled,
        ms(overview),
        ms(metrics),
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );
    sim.shutdown().await;
}
