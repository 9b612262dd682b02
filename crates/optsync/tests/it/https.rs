//! HTTPS of its own (`OPTSYNC_TLS_CERT`, `OPTSYNC_TLS_KEY`): Keap's post over TLS to the real
//! binary, the client trusting only the test's CA; then the certificate replaced and SIGHUP
//! sent: new connections are offered the new one while an open connection is kept.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::processes::{BIN, add_tenant, free_port};
use crate::{Db, KEY, MASTER_KEY, TempDir, fresh_database};

/// A CA, and a certificate for `localhost` it signed with its key: (CA, chain, key) in PEM.
pub fn ca_and_certificate(name: &str) -> (String, String, String) {
    ca_and_certificate_for(name, &["localhost"])
}

/// A CA, and a certificate for `names` (DNS names or IP addresses) it signed.
pub fn ca_and_certificate_for(name: &str, names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

fn write_pair(dir: &Path, chain: &str, key: &str) {
    // Replaced whole (rename), as a certificate renewal does.
    for (name, text) in [("cert.pem", chain), ("key.pem", key)] {
        std::fs::write(dir.join(format!("{name}.new")), text).unwrap();
        std::fs::rename(dir.join(format!("{name}.new")), dir.join(name)).unwrap();
    }
}

/// A client that trusts `ca` alone and finds `localhost` on the test's port.
fn client(ca: &str, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap()
}

async fn wait_for(c: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keap_posts_over_tls_and_a_new_certificate_is_taken_on_sighup() {
    let dir = TempDir::new("tls");
    let url = fresh_database(Db::Sqlite, dir.path()).await;
    let sim = keap_sim::KeapSim::builder()
        .api_key(KEY)
        .start()
        .await
        .unwrap();
    let port = free_port();
    let public = format!("https://localhost:{port}");
    let (_store, post_url) = add_tenant(&url, dir.path(), &sim, &public).await;
    let (ca1, chain1, key1) = ca_and_certificate("first CA");
    write_pair(dir.path(), &chain1, &key1);
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut serve = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("OPTSYNC_DATA_DIR", dir.path())
        .env("OPTSYNC_DATABASE_URL", &url)
        .env("OPTSYNC_MASTER_KEY", MASTER_KEY)
        .env("OPTSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPTSYNC_ADMIN_LISTEN", "off")
        .env("OPTSYNC_RECONCILE", "false")
        .env("OPTSYNC_TLS_CERT", dir.path().join("cert.pem"))
        .env("OPTSYNC_TLS_KEY", dir.path().join("key.pem"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let first = client(&ca1, port);
    wait_for(&first, &format!("{public}/healthz")).await;
    let r = first
        .post(&post_url)
        .form(&[("contactId", "42")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Keap's post over TLS");
    // Plain HTTP on the TLS port gets nothing.
    let plain = format!("http://127.0.0.1:{port}/healthz");
    assert!(reqwest::get(&plain).await.is_err_and(|e| !e.is_status()));

    // A renewed certificate from another CA; `first` keeps its open connection.
    let (ca2, chain2, key2) = ca_and_certificate("second CA");
    write_pair(dir.path(), &chain2, &key2);
    let hup = Command::new("kill")
        .args(["-HUP", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let second = client(&ca2, port);
    wait_for(&second, &format!("{public}/healthz")).await;
    // `first` trusts only the old CA: it can still talk only over the connection it kept.
    let r = first.get(format!("{public}/healthz")).send().await.unwrap();
    assert!(r.status().is_success(), "the open connection was kept");
    assert!(
        client(&ca1, port)
            .get(format!("{public}/healthz"))
            .send()
            .await
            .is_err(),
        "a new connection is offered the new certificate"
    );
    Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(serve.wait().unwrap().success());
}
