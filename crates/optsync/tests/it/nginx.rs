//! The nginx recipe (`deploy/nginx.conf`), run by Debian's `nginx` with a certificate made by
//! the test, in front of the service trusting it as its comments say: Keap's post over HTTPS
//! through the proxy, and the auth gate counting each real client apart (not the proxy as one
//! client). Skipped, loudly, where `nginx` is not installed; in CI (`CI` set) that is a failure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::https::ca_and_certificate;
use crate::processes::free_port;
use crate::proxy::{client_from, gate_sees_each_real_client};
use crate::{Db, Options, TempDir, TestApp};

const RECIPE: &str = include_str!("../../../../deploy/nginx.conf");

/// The recipe's server block for this machine: `localhost` on a free loopback port with the
/// test's certificate, forwarding to the service under test.
fn server_block(dir: &Path, https_port: u16, upstream: &str) -> String {
    let site = RECIPE
        .replace(
            "    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n",
            &format!("    listen 127.0.0.1:{https_port} ssl;\n"),
        )
        .replace("server_name optsync.example.com;", "server_name localhost;")
        .replace(
            "/etc/letsencrypt/live/optsync.example.com/fullchain.pem",
            &dir.join("cert.pem").display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/optsync.example.com/privkey.pem",
            &dir.join("key.pem").display().to_string(),
        )
        .replace("http://127.0.0.1:8080", &format!("http://{upstream}"));
    assert!(
        site.contains(&format!("127.0.0.1:{https_port} ssl"))
            && site.contains(upstream)
            && !site.contains("letsencrypt"),
        "the recipe changed"
    );
    site
}

/// A whole nginx configuration around the recipe: in the foreground, every file it writes
/// inside `dir`, nothing of the system's nginx touched.
fn nginx_conf(dir: &Path, site: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         access_log off;\n\
         client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         {site}\n}}\n"
    )
}

/// nginx's master process, stopped (SIGTERM: it stops its workers too; SIGKILL would leave them
/// listening) when the test ends, failed or not.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn start_nginx(dir: &Path, config: &str) -> Nginx {
    let file = dir.join("nginx.conf");
    std::fs::write(&file, config).unwrap();
    let log = std::fs::File::create(dir.join("nginx.stderr")).unwrap();
    Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Nginx)
        .expect("start nginx")
}

fn nginx_installed() -> bool {
    Command::new("nginx").arg("-v").output().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_nginx_recipe_the_gate_sees_each_real_client() {
    if !nginx_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is not installed (Debian package nginx): CI must install it"
        );
        eprintln!("SKIPPED through_the_nginx_recipe: nginx is not installed (apt install nginx)");
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
    let dir = TempDir::new("nginx");
    let (ca, chain, key) = ca_and_certificate("nginx test CA");
    std::fs::write(dir.path().join("cert.pem"), chain).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let port = free_port();
    let upstream = t.base.trim_start_matches("http://").to_string();
    let site = server_block(dir.path(), port, &upstream);
    let mut nginx = start_nginx(dir.path(), &nginx_conf(dir.path(), &site));
    let public = format!("https://localhost:{port}");
    let probe = client_from([127, 0, 0, 1], ca.as_bytes(), port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe
        .get(format!("{public}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if let Ok(Some(status)) = nginx.0.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("nginx.stderr")).unwrap_or_default();
            panic!("nginx exited ({status}): {log}");
        }
        assert!(Instant::now() < deadline, "nginx did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The console stays off the public side: the recipe answers 404 for it.
    let console = probe.get(format!("{public}/console")).send().await.unwrap();
    assert_eq!(console.status(), 404);
    gate_sees_each_real_client(&t, &public, ca.as_bytes(), port).await;
}
