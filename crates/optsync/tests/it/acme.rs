//! HTTPS through ACME against Debian's `pebble` (the ACME test server) and
//! `pebble-challtestsrv` (its DNS: every name is 127.0.0.1), both started here: the real
//! binary obtains a certificate for `optsync.test` by TLS-ALPN-01 on its own port and serves
//! Keap's post with it; with pebble issuing certificates valid for seconds, the certificate is
//! renewed before it expires without a restart (the expiry gauge on `/metrics` following it);
//! and a restart serves the stored certificate without a new order. Skipped, loudly, where
//! pebble is not installed; in CI (`CI` set) that is a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use x509_cert::der::Decode as _;

use crate::https::ca_and_certificate_for;
use crate::processes::{BIN, add_tenant, free_port};
use crate::{Db, KEY, MASTER_KEY, TempDir, fresh_database};

const DOMAIN: &str = "optsync.test";
/// Seconds pebble's certificates are valid: renewal is due two thirds in.
const VALIDITY_SECS: u64 = 45;

/// pebble and its DNS, killed when dropped.
struct Pebble {
    children: Vec<Child>,
    /// The directory URL.
    directory: String,
    /// The CA of pebble's own HTTPS (what `acme_directory_ca` names).
    https_ca: PathBuf,
    /// The root pebble issues under, from its management interface.
    root: CertificateDer<'static>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_logged(dir: &Path, name: &str, cmd: &mut Command) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    cmd.stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"))
}

/// pebble validating TLS-ALPN-01 on `tls_port`, its DNS answering 127.0.0.1 for every name.
async fn start_pebble(dir: &Path, tls_port: u16) -> Pebble {
    let (ca, chain, key) = ca_and_certificate_for("pebble's HTTPS", &["127.0.0.1", "localhost"]);
    let https_ca = dir.join("pebble-https-ca.pem");
    std::fs::write(&https_ca, &ca).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), chain).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), key).unwrap();
    let (dns, listen, management) = (free_port(), free_port(), free_port());
    let dns_server = spawn_logged(
        dir,
        "challtestsrv",
        Command::new("pebble-challtestsrv").args([
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", free_port()),
        ]),
    );
    let config = serde_json::json!({ "pebble": {
        "listenAddress": format!("127.0.0.1:{listen}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": free_port(),
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "certificateValidityPeriod": VALIDITY_SECS,
    }});
    let config_file = dir.join("pebble.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let pebble = spawn_logged(
        dir,
        "pebble",
        Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0"),
    );
    let mut p = Pebble {
        children: vec![pebble, dns_server],
        directory: format!("https://127.0.0.1:{listen}/dir"),
        https_ca,
        root: CertificateDer::from(Vec::new()),
    };
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let root = eventually(&client, &format!("https://127.0.0.1:{management}/roots/0")).await;
    p.root = CertificateDer::from_pem_slice(root.as_bytes()).expect("pebble's root");
    p
}

/// The body of `url` once it answers 200 (pebble takes a moment to start).
async fn eventually(client: &reqwest::Client, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn serve(dir: &Path, url: &str, (port, admin): (u16, u16), pebble: &Pebble, tag: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("serve-{tag}.log"))).unwrap();
    Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("OPTSYNC_DATA_DIR", dir)
        .env("OPTSYNC_DATABASE_URL", url)
        .env("OPTSYNC_MASTER_KEY", MASTER_KEY)
        .env("OPTSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPTSYNC_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("OPTSYNC_RECONCILE", "false")
        .env("OPTSYNC_LOG_FORMAT", "json")
        .env("OPTSYNC_ACME_DOMAINS", DOMAIN)
        .env("OPTSYNC_ACME_CONTACT", "ops@optsync.test")
        .env("OPTSYNC_ACME_DIRECTORY", &pebble.directory)
        .env("OPTSYNC_ACME_DIRECTORY_CA", &pebble.https_ca)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The lines of a serve log with `message`.
fn logged(dir: &Path, tag: &str, message: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(format!("serve-{tag}.log")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == message)
        .collect()
}

/// Waits (generously: an order takes a second or two) until the log has `n` lines with
/// `message`; the process's own word that it got there.
async fn wait_logged(dir: &Path, tag: &str, message: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(VALIDITY_SECS * 3);
    loop {
        let lines = logged(dir, tag, message);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{message:?} logged {} times, not {n}: {}",
            lines.len(),
            std::fs::read_to_string(dir.join(format!("serve-{tag}.log"))).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a handshake was served.
struct Served {
    serial: Vec<u8>,
    names: Vec<String>,
    not_after: SystemTime,
}

/// A TLS client trusting pebble's root alone, offering `alpn`.
fn tls_client(root: &CertificateDer<'static>, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A handshake with SNI `optsync.test` trusting pebble's root alone: the served leaf.
async fn served_leaf(root: &CertificateDer<'static>, port: u16) -> Served {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tls_client(root, b"http/1.1")
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .expect("a certificate for optsync.test from pebble's root");
    let leaf = &tls.get_ref().1.peer_certificates().unwrap()[0];
    let cert = x509_cert::Certificate::from_der(leaf).unwrap();
    let san = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::SubjectAltName>()
        .unwrap()
        .unwrap()
        .1;
    let names = san
        .0
        .iter()
        .filter_map(|n| match n {
            x509_cert::ext::pkix::name::GeneralName::DnsName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    Served {
        serial: cert.tbs_certificate.serial_number.as_bytes().to_vec(),
        names,
        not_after: cert.tbs_certificate.validity.not_after.to_system_time(),
    }
}

fn stop(mut serve: Child) {
    let term = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(serve.wait().unwrap().success());
}

fn pebble_missing() -> bool {
    if Command::new("pebble").arg("-h").output().is_ok() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "pebble is not installed (Debian package pebble): CI must install it"
    );
    eprintln!("SKIPPED acme: pebble is not installed (apt install pebble)");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_obtained_served_renewed_and_kept_across_a_restart() {
    if pebble_missing() {
        return;
    }
    let dir = TempDir::new("acme");
    let url = fresh_database(Db::Sqlite, dir.path()).await;
    let sim = keap_sim::KeapSim::builder()
        .api_key(KEY)
        .start()
        .await
        .unwrap();
    let port = free_port();
    let public = format!("https://{DOMAIN}:{port}");
    let (_store, post_url) = add_tenant(&url, dir.path(), &sim, &public).await;
    let pebble = start_pebble(dir.path(), port).await;
    let started = Instant::now();
    let admin = free_port();
    let serving = serve(dir.path(), &url, (port, admin), &pebble, "1");

    // (1) Obtained by TLS-ALPN-01 on the serving port, and served.
    wait_logged(dir.path(), "1", "ACME certificate obtained", 1).await;
    let obtained = started.elapsed();
    let first = served_leaf(&pebble.root, port).await;
    assert_eq!(first.names, [DOMAIN]);
    // A client offering only `acme-tls/1` is the CA validating: with no validation under
    // way it is served nothing (never the certificate, never HTTP).
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let acme_only = tls_client(&pebble.root, b"acme-tls/1")
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await;
    assert!(acme_only.is_err(), "no challenge pending: no certificate");
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&pebble.root).expect("pebble's root"))
        .resolve(DOMAIN, SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    let r = client
        .post(&post_url)
        .form(&[("contactId", "42")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Keap's post over ACME's HTTPS");

    // (2) Renewed two thirds into its seconds-long life, by the same process.
    wait_logged(dir.path(), "1", "ACME certificate obtained", 2).await;
    let renewed = started.elapsed();
    assert!(
        SystemTime::now() < first.not_after,
        "renewed before it expired"
    );
    let second = served_leaf(&pebble.root, port).await;
    assert_ne!(
        first.serial, second.serial,
        "a new certificate after renewal"
    );
    assert_eq!(
        expiry_gauge(admin).await,
        second
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64(),
        "the expiry gauge follows the renewal"
    );
    stop(serving);

    // (3) A restart serves the stored certificate at once: no new order.
    let serving = serve(dir.path(), &url, (port, admin), &pebble, "2");
    wait_logged(dir.path(), "2", "serving the stored ACME certificate", 1).await;
    let after_restart = served_leaf_eventually(&pebble.root, port).await;
    assert_eq!(
        after_restart.serial, second.serial,
        "the stored certificate is served"
    );
    assert!(logged(dir.path(), "2", "ACME certificate obtained").is_empty());
    assert!(logged(dir.path(), "2", "ACME account created").is_empty());
    stop(serving);
    eprintln!(
        "acme: obtained after {obtained:?}, renewed after {renewed:?}, whole test {:?}",
        started.elapsed()
    );
}

/// [`served_leaf`] once the restarted process listens.
async fn served_leaf_eventually(root: &CertificateDer<'static>, port: u16) -> Served {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "optsync serve never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served_leaf(root, port).await
}

/// `optsync_tls_certificate_expiry_timestamp_seconds` from `/metrics`.
async fn expiry_gauge(admin: u16) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("optsync_tls_certificate_expiry_timestamp_seconds "))
        .unwrap_or_else(|| panic!("no expiry gauge in {text}"))
        .trim()
        .parse()
        .unwrap()
}
