//! The Caddy recipe (`deploy/Caddyfile`), run by Debian's `caddy` with `tls internal` in front
//! of the service trusting it as its README says: Keap's post over HTTPS through the proxy,
//! and the auth gate counting each real client apart (not the proxy as one client). Skipped,
//! loudly, where `caddy` is not installed; in CI (`CI` set) that is a failure.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::processes::free_port;
use crate::{Db, Options, TempDir, TestApp};

const RECIPE: &str = include_str!("../../../../deploy/Caddyfile");

/// The recipe for this machine: `localhost` on a free port with Caddy's own CA, forwarding
/// to the service under test; no admin endpoint, no system trust store touched.
fn caddyfile(https_port: u16, upstream: &str) -> String {
    let site = RECIPE
        .replace(
            "optsync.example.com {",
            &format!("localhost:{https_port} {{\n\ttls internal\n\tbind 127.0.0.1"),
        )
        .replace(
            "reverse_proxy 127.0.0.1:8080",
            &format!("reverse_proxy {upstream}"),
        );
    assert!(
        site.contains("tls internal") && site.contains(upstream),
        "the recipe changed"
    );
    format!(
        "{{\n\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n\thttp_port {}\n}}\n{site}",
        free_port()
    )
}

fn start_caddy(dir: &Path, config: &str) -> Option<Child> {
    let file = dir.join("Caddyfile");
    std::fs::write(&file, config).unwrap();
    let log = std::fs::File::create(dir.join("caddy.log")).unwrap();
    Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env_clear()
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .ok()
}

/// A client from `source` (any 127/8 address is this machine) trusting the proxy's CA only.
pub fn client_from(source: [u8; 4], ca: &[u8], port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_caddy_recipe_the_gate_sees_each_real_client() {
    if Command::new("caddy").arg("version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "caddy is not installed (Debian package caddy): CI must install it"
        );
        eprintln!("SKIPPED through_the_caddy_recipe: caddy is not installed (apt install caddy)");
        return;
    }
    let t = TestApp::spawn_with(
        Db::Sqlite,
        Options {
            trusted_proxies: "127.0.0.1/32",
            ..Options::default()
        },
    )
    .await;
    let dir = TempDir::new("caddy");
    let port = free_port();
    let upstream = t.base.trim_start_matches("http://").to_string();
    let mut caddy = start_caddy(dir.path(), &caddyfile(port, &upstream)).expect("start caddy");
    let root = dir.path().join("data/caddy/pki/authorities/local/root.crt");
    let public = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ca = loop {
        if let Ok(ca) = std::fs::read(&root)
            && client_from([127, 0, 0, 1], &ca, port)
                .get(format!("{public}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            break ca;
        }
        assert!(Instant::now() < deadline, "caddy did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    gate_sees_each_real_client(&t, &public, &ca, port).await;
    caddy.kill().unwrap();
    caddy.wait().unwrap();
}

/// Through a proxy at `public` (port `port`, its certificate signed by `ca`) in front of `t`:
/// one client guessing tokens is stopped by the gate, a spoofed forwarding header gains it
/// nothing, and Keap, another client behind the same proxy, is still answered.
pub async fn gate_sees_each_real_client(t: &TestApp, public: &str, ca: &[u8], port: u16) {
    let post_url = t.post_url.replacen(&t.base, public, 1);
    let guesser = client_from([127, 0, 0, 2], ca, port);
    let keap = client_from([127, 0, 0, 3], ca, port);
    let post = |c: &reqwest::Client, url: &str| c.post(url).form(&[("contactId", "7")]).send();

    // One client guesses tokens until the gate stops it, valid token or not.
    let wrong = post_url.replace("auth=", "auth=x");
    assert_ne!(wrong, post_url);
    for _ in 0..20 {
        let code = post(&guesser, &wrong).await.unwrap().status().as_u16();
        assert!(code == 401 || code == 403, "a wrong token: {code}");
    }
    assert_eq!(post(&guesser, &post_url).await.unwrap().status(), 429);
    // Naming another client in the header gains it nothing: the proxy replaces it.
    let spoofed = guesser
        .post(&post_url)
        .header("x-forwarded-for", "198.51.100.9")
        .form(&[("contactId", "7")])
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 429);
    // Keap, another client behind the same proxy, is not refused for the guesser's sake.
    assert_eq!(post(&keap, &post_url).await.unwrap().status(), 200);
    assert_eq!(t.count("SELECT COUNT(*) FROM events").await, 1);
}

/// A proxy on this machine that optsync does not trust: `optsync serve` says so in its log,
/// once, however many forwarded requests arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_once_of_forwarded_requests_from_an_untrusted_loopback_peer() {
    use crate::processes::{serve_env, wait_ready};
    let dir = TempDir::new("proxy-warn");
    let url = crate::fresh_database(Db::Sqlite, dir.path()).await;
    optsync::store::Store::open(&url).await.unwrap();
    let port = free_port();
    let mut child = serve_env(dir.path(), &url, port, "proxy-warn", false, None, &[]);
    wait_ready(port).await;
    let http = reqwest::Client::new();
    let post = format!("http://127.0.0.1:{port}/process_optout.php?app=acme&auth=guess");
    for header in ["x-forwarded-for", "forwarded", "x-forwarded-for"] {
        let r = http
            .post(&post)
            .header(header, "for=198.51.100.7")
            .form(&[("contactId", "7")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.path().join("serve-proxy-warn.log")).unwrap();
    let warnings = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("OPTSYNC_TRUSTED_PROXIES"))
        })
        .count();
    assert_eq!(warnings, 1, "{text}");
}
