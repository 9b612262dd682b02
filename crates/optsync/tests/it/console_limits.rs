//! The admin listener under attack: a storm of concurrent wrong sign-ins, pages from other
//! sites (DNS rebinding, cross-site forms), idle sessions, and the cookie's flags.

use optsync::clock::{Millis, Now as _};
use std::time::{Duration, Instant};

use optsync::clock::Clock;
use optsync::console::auth::hash_password;

use crate::{Db, Options, TestApp, on_both_backends};

const PASSWORD: &str = "correct horse battery staple";
/// 2026-11-30 00:00 UTC.
const T0: u64 = 1_796_083_200_000;

async fn console(db: Db, settings: fn(&mut optsync::config::Settings)) -> (TestApp, String) {
    console_with(
        db,
        Options {
            settings,
            ..Options::default()
        },
    )
    .await
}

/// The service with its console on a fixed clock, and `admin` signing in with [`PASSWORD`].
async fn console_with(db: Db, options: Options) -> (TestApp, String) {
    let t = TestApp::spawn_with(
        db,
        Options {
            admin: true,
            clock: Clock::manual(T0),
            ..options
        },
    )
    .await;
    let hash = hash_password(PASSWORD).unwrap();
    let now = t.state.clock.now();
    t.state
        .store
        .set_admin_password("admin", &hash, now)
        .await
        .unwrap();
    let base = t.admin.clone().unwrap();
    (t, base)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(base: &str, password: &str) -> reqwest::Response {
    sign_in_from(http(), base, password).await
}

async fn sign_in_from(client: reqwest::Client, base: &str, password: &str) -> reqwest::Response {
    client
        .post(format!("{base}/login"))
        .form(&[("user", "admin"), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// Resident memory of process `pid`, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// 200 wrong sign-ins for `admin` at once against a real `optsync serve`: each would be an
/// Argon2id run of ~19 MiB. They are reserved before any is verified, so a handful run; the
/// server's memory stays low, hook posts are answered throughout, and once the wait has
/// passed the right password signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_wrong_sign_ins_neither_exhausts_memory_nor_locks_out_for_good() {
    use crate::processes::{cli_with, free_port, serve_with, wait_ready};
    let dir = crate::TempDir::new("storm");
    let url = crate::fresh_database(Db::Sqlite, dir.path()).await;
    let store = optsync::store::Store::open(&url).await.unwrap();
    let hash = hash_password(PASSWORD).unwrap();
    store
        .set_admin_password("admin", &hash, Millis(0))
        .await
        .unwrap();
    let args = [
        "tenant",
        "add",
        "acme",
        "--keap-base-url",
        "http://127.0.0.1:9/crm",
        "--allow-http",
    ];
    let env = [
        ("OPTSYNC_KEAP_API_KEY", crate::KEY),
        ("OPTSYNC_MASTER_KEY", crate::MASTER_KEY),
    ];
    let (ok, out, err) = cli_with(dir.path(), &url, &args, &env);
    assert!(ok, "{err}");
    let (port, admin) = (free_port(), free_port());
    let post_url = out.lines().last().unwrap().replace(
        "https://optsync.example.com",
        &format!("http://127.0.0.1:{port}"),
    );
    let mut child = serve_with(dir.path(), &url, port, "storm", false, Some(admin));
    wait_ready(port).await;
    let (pid, base) = (child.id(), format!("http://127.0.0.1:{admin}"));
    let idle = rss_bytes(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_bytes(pid));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    let hooks = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut slowest, mut answered) = (Duration::ZERO, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t0 = Instant::now();
                let (s, _) = crate::post_to(&post_url, &[("contactId", "42")]).await;
                assert_eq!(s, 200);
                slowest = slowest.max(t0.elapsed());
                answered += 1;
            }
            (answered, slowest)
        })
    };
    // From five addresses, so that all 200 get past the per-client connection cap.
    let storm: Vec<_> = (0..200)
        .map(|i| {
            let base = base.clone();
            let from = format!("127.0.0.{}", 10 + i % 5).parse().unwrap();
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(Some(from))
                .build()
                .unwrap();
            tokio::spawn(async move {
                sign_in_from(client, &base, &format!("guess {i}"))
                    .await
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for s in storm {
        statuses.push(s.await.unwrap().as_u16());
    }
    // The hook listener keeps answering for a moment after the storm too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = peak.await.unwrap();
    let (answered, slowest) = hooks.await.unwrap();
    let verified = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(
        (1..=4).contains(&verified),
        "{verified} verified: {statuses:?}"
    );
    eprintln!("peak RSS during the storm: {} MiB", peak >> 20);
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
    eprintln!("idle RSS: {} MiB", idle >> 20);
    assert!(
        answered >= 3,
        "hook posts answered during the storm: {answered}"
    );
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    // Refused now, even with the right password…
    assert_eq!(sign_in(&base, PASSWORD).await.status(), 429);
    // …and signed in once the wait (2 s after four failures) has passed.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let r = sign_in(&base, PASSWORD).await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("optsync_session=")
    );
    // A user name of megabytes is not looked at, let alone kept.
    let long = http()
        .post(format!("{base}/login"))
        .form(&[("user", "a".repeat(65).as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    let _ = child.kill();
    let _ = child.wait();
}

/// A page on another site cannot read the admin listener through a rebound DNS name, nor
/// post sign-ins to it.
async fn other_hosts_and_other_sites_are_refused(db: Db) {
    let (_t, base) = console(db, |_| {}).await;
    let r = http()
        .get(format!("{base}/metrics"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    let login = |origin: Option<&'static str>, site: Option<&'static str>| {
        let mut req = http()
            .post(format!("{base}/login"))
            .form(&[("user", "admin"), ("password", "wrong password")]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(login(Some("http://evil.example"), None).await, 403);
    assert_eq!(login(None, Some("cross-site")).await, 403);
    let own: &'static str = Box::leak(base.clone().into_boxed_str());
    assert_eq!(login(Some(own), Some("same-origin")).await, 401);
    let r = http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200, "its own host name is served");
}
on_both_backends!(other_hosts_and_other_sites_are_refused);

/// A session unused for `OPTSYNC_CONSOLE_IDLE_MINUTES` ends; one in use goes on.
async fn idle_sessions_end(db: Db) {
    let (t, base) = console(db, |s| s.console_idle = Duration::from_secs(30 * 60)).await;
    let r = sign_in(&base, PASSWORD).await;
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = |cookie: String| {
        let base = base.clone();
        async move {
            http()
                .get(format!("{base}/"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for _ in 0..3 {
        t.state.clock.advance(Duration::from_secs(29 * 60));
        assert_eq!(page(cookie.clone()).await, 200, "in use: it goes on");
    }
    t.state.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(page(cookie).await, 303, "idle: it ended");
}
on_both_backends!(idle_sessions_end);

/// Served over https (`OPTSYNC_ADMIN_PUBLIC_URL`), the cookie is `Secure` and `__Host-`.
async fn the_cookie_is_secure_when_the_console_is(db: Db) {
    let (_t, base) = console(db, |s| {
        s.admin_public_url = Some("https://console.example.com".into());
    })
    .await;
    let r = sign_in(&base, PASSWORD).await;
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.starts_with("__Host-optsync_session=") && set.contains("; Secure"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let ok = http()
        .get(format!("{base}/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
on_both_backends!(the_cookie_is_secure_when_the_console_is);

/// Behind a trusted proxy, the client a sign-in is limited as is the one the proxy names:
/// wrong passwords for `admin` from 203.0.113.7 hold that client back (for any account) and
/// the account `admin` (from any client), while 198.51.100.9 still signs in to another
/// account.
async fn sign_ins_behind_a_proxy_are_limited_per_forwarded_client(db: Db) {
    const ATTACKER: &str = "203.0.113.7";
    const OTHER: &str = "198.51.100.9";
    let (t, base) = console_with(
        db,
        Options {
            trusted_proxies: "127.0.0.1/32",
            settings: |s| s.forwarded_header = optsync::config::ForwardedHeader::XForwardedFor,
            ..Options::default()
        },
    )
    .await;
    let hash = hash_password(PASSWORD).unwrap();
    let now = t.state.clock.now();
    t.state
        .store
        .set_admin_password("other", &hash, now)
        .await
        .unwrap();
    let sign_in_as = |user: &'static str, password: &'static str, from: &'static str| {
        let req = http()
            .post(format!("{base}/login"))
            .header("x-forwarded-for", from)
            .form(&[("user", user), ("password", password)]);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for _ in 0..=optsync::console::sign_in::FREE_FAILURES {
        assert_eq!(sign_in_as("admin", "guess", ATTACKER).await, 401);
    }
    assert_eq!(sign_in_as("admin", PASSWORD, ATTACKER).await, 429);
    assert_eq!(
        sign_in_as("other", PASSWORD, ATTACKER).await,
        429,
        "{ATTACKER} is held back whatever account it tries"
    );
    assert_eq!(
        sign_in_as("other", PASSWORD, OTHER).await,
        303,
        "{OTHER} is another client"
    );
    assert_eq!(
        sign_in_as("admin", PASSWORD, OTHER).await,
        429,
        "the account under attack is held back from {OTHER} too"
    );
}
on_both_backends!(sign_ins_behind_a_proxy_are_limited_per_forwarded_client);
