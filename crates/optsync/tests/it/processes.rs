//! The real binary: `optsync serve` killed with SIGKILL mid-work loses nothing; two
//! `optsync serve` processes share one PostgreSQL database; the CLI manages tenants.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keap::EmailStatus;
use keap_sim::{FaultKind, KeapSim, SimConfig, SimEvent};
use optsync::app::App;
use optsync::config::Settings;
use optsync::store::Store;
use optsync::tenant::{StoredCredential, TenantSpec};

use crate::{Db, KEY, MASTER_KEY, TempDir, fresh_database, on_both_backends, post_to};

pub const BIN: &str = env!("CARGO_BIN_EXE_optsync");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path, database_url: &str, port: u16, tag: &str) -> Child {
    serve_with(dir, database_url, port, tag, false, None)
}

/// `optsync serve` on `port`, sweeping on its schedule if `reconcile`, with the admin
/// listener (`/metrics`) on `admin` if given.
pub fn serve_with(
    dir: &Path,
    database_url: &str,
    port: u16,
    tag: &str,
    reconcile: bool,
    admin: Option<u16>,
) -> Child {
    serve_env(dir, database_url, port, tag, reconcile, admin, &[])
}

/// [`serve_with`], with `env` set after (and over) the defaults.
pub fn serve_env(
    dir: &Path,
    database_url: &str,
    port: u16,
    tag: &str,
    reconcile: bool,
    admin: Option<u16>,
    env: &[(&str, &str)],
) -> Child {
    let log = std::fs::File::create(dir.join(format!("serve-{tag}.log"))).unwrap();
    let admin = admin.map_or_else(|| "off".to_string(), |p| format!("127.0.0.1:{p}"));
    let mut c = Command::new(BIN);
    c.arg("serve")
        .env_clear()
        .env("OPTSYNC_ADMIN_LISTEN", admin)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPTSYNC_DATA_DIR", dir)
        .env("OPTSYNC_DATABASE_URL", database_url)
        .env("OPTSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPTSYNC_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("OPTSYNC_MASTER_KEY", MASTER_KEY)
        .env("OPTSYNC_WORKERS", "4")
        .env("OPTSYNC_LEASE_SECS", "2")
        .env("OPTSYNC_POLL_MS", "50")
        .env("OPTSYNC_RETRY_BASE_MS", "200")
        .env("OPTSYNC_KEAP_LIMITS", "100000/min")
        // Most of these tests are about posts; scheduled sweeps would add work of their own.
        .env(
            "OPTSYNC_RECONCILE",
            if reconcile { "true" } else { "false" },
        )
        .env("OPTSYNC_LOG", "optsync=debug")
        // JSON lines, which the metrics test reads back.
        .env("OPTSYNC_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("start optsync serve")
}

pub async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "optsync serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn add_tenant(
    database_url: &str,
    dir: &Path,
    sim: &KeapSim,
    public: &str,
) -> (Store, String) {
    let mut settings = Settings::for_dir(dir, Some(database_url.to_string()));
    settings.public_url = public.to_string();
    settings.master_key = Some(MASTER_KEY.into());
    let app = App::open(settings).await.unwrap();
    let tenants = app.tenants();
    tenants
        .add(TenantSpec {
            app: "acme".into(),
            keap_base_url: sim.crm_url(),
            credential: StoredCredential::ApiKey { key: KEY.into() },
            legacy_auth: false,
            opt_out_method: keap::OptOutMethod::Auto,
            allow_http: true,
        })
        .await
        .unwrap();
    let url = tenants.post_url("acme").await.unwrap();
    (app.store().clone(), url)
}

pub async fn count(store: &Store, sql: &'static str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

pub async fn wait_until_all_honoured(store: &Store, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let open = count(
            store,
            "SELECT COUNT(*) FROM events WHERE honoured_at IS NULL",
        )
        .await;
        let busy = count(
            store,
            "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')",
        )
        .await;
        if open == 0 && busy == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} events not honoured, {busy} jobs open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sigkill_while_holding_jobs_loses_no_accepted_post(db: Db) {
    let dir = TempDir::new("crash");
    let database_url = fresh_database(db, dir.path()).await;
    let config = SimConfig {
        fault_timeout_delay: Duration::from_secs(60),
        ..SimConfig::default()
    };
    let sim = KeapSim::builder()
        .config(config)
        .api_key(KEY)
        .start()
        .await
        .unwrap();
    sim.configure(|c| c.action_set_backoff = Duration::from_millis(300));
    let port = free_port();
    let (store, post_url) = add_tenant(
        &database_url,
        dir.path(),
        &sim,
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    sim.set_action_set_url(Some(&post_url));
    let contacts: Vec<(i64, [String; 2])> = (0..40)
        .map(|i| {
            let e = [
                format!("p{i}@example.com"),
                format!("p{i}@relay.wedeliver.example"),
            ];
            (
                sim.add_contact(&e[0], Some(&e[1]), None, EmailStatus::SingleOptIn),
                e,
            )
        })
        .collect();

    let mut child = serve(dir.path(), &database_url, port, "1");
    wait_ready(port).await;
    for (_, e) in &contacts[..20] {
        sim.event(&e[0], SimEvent::UnsubscribeLink).unwrap();
    }
    sim.wait_action_posts(20, Duration::from_secs(20))
        .await
        .unwrap();
    // Keap hangs: the workers sit in Keap calls holding their leases while posts keep coming.
    sim.inject_fault(FaultKind::Timeout, 1_000);
    for (_, e) in &contacts[20..] {
        sim.event(&e[0], SimEvent::UnsubscribeLink).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&store, "SELECT COUNT(*) FROM jobs WHERE state = 'running'").await == 0 {
        assert!(Instant::now() < deadline, "no job was ever claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        count(&store, "SELECT COUNT(*) FROM jobs WHERE state = 'running'").await > 0,
        "killed holding jobs"
    );

    sim.shared().lock().faults.clear();
    let mut child = serve(dir.path(), &database_url, port, "2");
    wait_ready(port).await;
    // Posts refused while the service was down are retried by Keap until accepted: every
    // one of the 40 is, in the end.
    let accepted = |sim: &KeapSim| -> BTreeSet<i64> {
        sim.stats()
            .action_posts
            .iter()
            .filter(|p| p.status == 200)
            .map(|p| p.contact_id)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted(&sim).len() < contacts.len() {
        assert!(
            Instant::now() < deadline,
            "only {} posts accepted",
            accepted(&sim).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until_all_honoured(&store, Duration::from_secs(60)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let accepted = accepted(&sim);
    let expected: BTreeSet<i64> = contacts.iter().map(|(id, _)| *id).collect();
    assert_eq!(accepted, expected, "every post accepted");
    for (id, e) in &contacts {
        assert_eq!(
            sim.status(&e[1]),
            Some(EmailStatus::Admin),
            "contact {id}'s accepted post was not honoured"
        );
    }
    let stored = count(&store, "SELECT COUNT(DISTINCT contact_id) FROM events").await;
    assert_eq!(stored, 40);
    events_and_audit_say_what_happened(dir.path(), &database_url, &contacts);
}

/// `optsync events` and `optsync audit` list what the store holds: each contact's event with
/// its job done, and one decision per relay address leaving it in Keap's `Admin` status.
fn events_and_audit_say_what_happened(
    dir: &Path,
    database_url: &str,
    contacts: &[(i64, [String; 2])],
) {
    let env = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    let cli = |args: &[&str]| cli_with(dir, database_url, args, &env);
    // More than the listing's default 50 events may be stored (Keap posts again what the
    // killed service did not answer), so the listings are asked for all of them.
    let (ok, events, err) = cli(&["events", "--tenant", "acme", "--limit", "10000"]);
    assert!(ok, "{err}");
    let (ok, done, err) = cli(&[
        "events", "--tenant", "acme", "--state", "done", "--limit", "10000",
    ]);
    assert!(ok, "{err}");
    let (ok, dead, err) = cli(&["events", "--state", "dead"]);
    assert!(ok, "{err}");
    // An address whose write landed in Keap just before the SIGKILL was found already
    // stopped by the job's next run: at most one per worker (four) was mid-write.
    let mut found_stopped = 0;
    for (id, e) in contacts {
        let row = |text: &str| {
            text.lines().any(|l| {
                l.split_whitespace().any(|w| w == id.to_string())
                    && l.contains("keap_post")
                    && l.contains("done")
            })
        };
        assert!(row(&events), "contact {id} missing from events:\n{events}");
        assert!(row(&done), "contact {id} missing from done events:\n{done}");
        assert!(!dead.contains(&e[0]), "{dead}");
        let (ok, audit, err) = cli(&["audit", "--tenant", "acme", "--email", &e[1]]);
        assert!(ok, "{err}");
        let rows: Vec<&str> = audit.lines().filter(|l| l.contains(&e[1])).collect();
        assert_eq!(rows.len(), 1, "one decision about {}:\n{audit}", e[1]);
        let id = id.to_string();
        for word in ["Admin", id.as_str()] {
            assert!(rows[0].contains(word), "{word} not in {}", rows[0]);
        }
        let words: Vec<&str> = rows[0].split_whitespace().collect();
        if words.contains(&"already_stopped") {
            found_stopped += 1;
        } else {
            assert!(words.contains(&"opted_out"), "{}", rows[0]);
        }
    }
    assert!(found_stopped <= 4, "{found_stopped} found already stopped");
}
on_both_backends!(sigkill_while_holding_jobs_loses_no_accepted_post);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_postgres_database() {
    let dir = TempDir::new("pair");
    let database_url = fresh_database(Db::Postgres, dir.path()).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let (p1, p2) = (free_port(), free_port());
    let (store, post_url) = add_tenant(
        &database_url,
        dir.path(),
        &sim,
        &format!("http://127.0.0.1:{p1}"),
    )
    .await;
    let urls = [
        post_url.clone(),
        post_url.replace(&format!(":{p1}/"), &format!(":{p2}/")),
    ];
    let contacts: Vec<(i64, [String; 2])> = (0..500)
        .map(|i| {
            let e = [
                format!("q{i}@example.com"),
                format!("q{i}@relay.wedeliver.example"),
            ];
            let id = sim.add_contact(&e[0], Some(&e[1]), None, EmailStatus::SingleOptIn);
            sim.event(&e[0], SimEvent::Set(EmailStatus::Manual))
                .unwrap();
            (id, e)
        })
        .collect();
    let mut a = serve(dir.path(), &database_url, p1, "a");
    let mut b = serve(dir.path(), &database_url, p2, "b");
    wait_ready(p1).await;
    wait_ready(p2).await;

    let mut tasks = Vec::new();
    for chunk in contacts.chunks(50) {
        let chunk: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        let urls = urls.clone();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                let (s, body) =
                    post_to(&urls[(id % 2) as usize], &[("contactId", &id.to_string())]).await;
                assert_eq!(s, 200, "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    wait_until_all_honoured(&store, Duration::from_secs(120)).await;
    a.kill().unwrap();
    b.kill().unwrap();
    let _ = (a.wait(), b.wait());
    for (id, e) in &contacts {
        assert_eq!(sim.status(&e[1]), Some(EmailStatus::Admin), "contact {id}");
    }
    assert_eq!(
        sim.stats().writes,
        500,
        "exactly one write per address that needed one"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM events").await, 500);
}

async fn serve_sweeps_every_tenant_on_its_own(db: Db) {
    let dir = TempDir::new("sched");
    let database_url = fresh_database(db, dir.path()).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    let port = free_port();
    let (store, _) = add_tenant(
        &database_url,
        dir.path(),
        &sim,
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    // A user opted this person out by hand: Keap posts nothing.
    sim.add_contact(
        "quiet@example.com",
        Some("quiet@relay.wedeliver.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    sim.event("quiet@example.com", SimEvent::ManualOptOut)
        .unwrap();
    let mut child = serve_with(dir.path(), &database_url, port, "sched", true, None);
    wait_ready(port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.status("quiet@relay.wedeliver.example") != Some(EmailStatus::Admin) {
        assert!(
            Instant::now() < deadline,
            "no scheduled sweep honoured the manual opt-out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM events WHERE source = 'reconcile'"
        )
        .await,
        1
    );
}
on_both_backends!(serve_sweeps_every_tenant_on_its_own);

/// `optsync reconcile APP` piped: the sweep's write is made before it returns, standard
/// output carries the report alone and standard error no progress (that is for a terminal).
async fn reconcile_piped_writes_before_it_returns_and_shows_no_progress(db: Db) {
    let dir = TempDir::new("rcpipe");
    let database_url = fresh_database(db, dir.path()).await;
    let sim = KeapSim::builder().api_key(KEY).start().await.unwrap();
    add_tenant(
        &database_url,
        dir.path(),
        &sim,
        "https://optsync.example.com",
    )
    .await;
    sim.add_contact(
        "hand@example.com",
        Some("hand@relay.wedeliver.example"),
        None,
        EmailStatus::SingleOptIn,
    );
    sim.event("hand@example.com", SimEvent::ManualOptOut)
        .unwrap();
    let key = [("OPTSYNC_MASTER_KEY", crate::MASTER_KEY)];
    let run = |args: &'static [&'static str]| {
        let (dir, url) = (dir.path().to_path_buf(), database_url.clone());
        tokio::task::spawn_blocking(move || cli_with(&dir, &url, args, &key))
    };
    let (ok, out, err) = run(&["reconcile", "acme"]).await.unwrap();
    assert!(ok, "{out}{err}");
    assert_eq!(
        sim.status("hand@relay.wedeliver.example"),
        Some(EmailStatus::Admin),
        "written before reconcile returned"
    );
    let writes = out
        .lines()
        .find(|l| l.contains("writes made"))
        .unwrap_or("");
    assert!(writes.trim().ends_with(" 1"), "{out}");
    assert!(
        !err.contains("reconcile acme:") && !err.contains('\r'),
        "progress is for a terminal: {err}"
    );
    let (ok, out, _) = run(&["reconcile", "acme"]).await.unwrap();
    let writes = out
        .lines()
        .find(|l| l.contains("writes made"))
        .unwrap_or("");
    assert!(
        ok && writes.trim().ends_with(" 0"),
        "a second run writes nothing: {out}"
    );
}
on_both_backends!(reconcile_piped_writes_before_it_returns_and_shows_no_progress);

pub fn cli(
    dir: &Path,
    database_url: &str,
    args: &[&str],
    api_key: Option<&str>,
) -> (bool, String, String) {
    let key = api_key.map(|k| ("OPTSYNC_KEAP_API_KEY", k));
    cli_with(dir, database_url, args, key.as_slice())
}

/// [`cli`] with more environment (the master key of an app the test built in process).
pub fn cli_with(
    dir: &Path,
    database_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPTSYNC_DATA_DIR", dir)
        .env("OPTSYNC_DATABASE_URL", database_url)
        .env("OPTSYNC_PUBLIC_URL", "https://optsync.example.com");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn the_cli_manages_tenants_without_secrets_in_argv(db: Db) {
    let dir = TempDir::new("cli");
    let url = fresh_database(db, dir.path()).await;
    let add = |extra: &'static [&'static str]| {
        let mut args = vec![
            "tenant",
            "add",
            "rc135",
            "--keap-base-url",
            "http://127.0.0.1:9/crm",
        ];
        args.extend_from_slice(extra);
        args
    };
    // Only `migrate` (or `serve`) creates the database and the master key.
    let (ok, _, err) = cli(dir.path(), &url, &["migrate"], None);
    assert!(ok, "{err}");
    // The key would travel in clear: http only for a local emulator, said explicitly.
    let (ok, _, err) = cli(dir.path(), &url, &add(&[]), Some(KEY));
    assert!(!ok && err.contains("must be https"), "{err}");
    let (ok, out, err) = cli(dir.path(), &url, &add(&["--allow-http"]), Some(KEY));
    assert!(ok, "{err}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("https://optsync.example.com/process_optout.php?app=rc135&auth="),
        "{out}"
    );
    assert!(
        !out.contains(KEY) && !err.contains(KEY),
        "the key is never printed"
    );
    let (ok, url_out, _) = cli(dir.path(), &url, &["tenant", "url", "rc135"], None);
    assert!(ok);
    assert_eq!(url_out.trim(), last, "tenant url prints the Post URL alone");
    let (ok, _, err) = cli(dir.path(), &url, &["tenant", "add", "rc135"], Some(KEY));
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(dir.path(), &url, &["tenant", "add", "other"], None);
    assert!(!ok && err.contains("no Keap credential"), "{err}");
    let (ok, out, err) = cli(dir.path(), &url, &["tenant", "legacy-off", "rc135"], None);
    assert!(ok && out.contains("had no legacy token"), "{out}{err}");
    // Providers: secrets from files; the URL to give the provider alone on the last line.
    let pw = dir.path().join("postmark.pass");
    let postmark_add = |pw: &std::path::Path| {
        cli(
            dir.path(),
            &url,
            &[
                "provider",
                "add",
                "rc135",
                "postmark",
                "--basic-user",
                "u",
                "--basic-password-file",
                pw.to_str().unwrap(),
            ],
            None,
        )
    };
    // A shared secret shorter than 32 characters is refused, with how to make one, and
    // nothing is stored.
    std::fs::write(&pw, "0123456789\n").unwrap();
    let (ok, _, err) = postmark_add(&pw);
    assert!(!ok && err.contains("--generate-secret"), "{err}");
    let (ok, out, _) = cli(dir.path(), &url, &["provider", "list", "rc135"], None);
    assert!(ok && !out.contains("postmark"), "{out}");
    // --generate-secret makes one and prints it once, before the URL.
    let (ok, out, err) = cli(
        dir.path(),
        &url,
        &["provider", "add", "rc135", "brevo", "--generate-secret"],
        None,
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let secret = lines[lines
        .iter()
        .position(|l| l.contains("generated secret"))
        .unwrap()
        + 1];
    assert!(secret.len() >= 32, "{out}");
    assert_eq!(
        lines.last(),
        Some(&"https://optsync.example.com/hooks/esp/brevo/rc135")
    );
    std::fs::write(&pw, "s3cret-pass-s3cret-pass-s3cret-pass\n").unwrap();
    let (ok, out, err) = cli(
        dir.path(),
        &url,
        &[
            "provider",
            "add",
            "rc135",
            "postmark",
            "--basic-user",
            "hook",
            "--basic-password-file",
            pw.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().last(),
        Some("https://optsync.example.com/hooks/esp/postmark/rc135")
    );
    assert!(!out.contains("s3cret-pass"));
    let (ok, out, _) = cli(
        dir.path(),
        &url,
        &["provider", "url", "rc135", "postmark"],
        None,
    );
    assert!(ok && out.trim() == "https://optsync.example.com/hooks/esp/postmark/rc135");
    let (ok, out, _) = cli(dir.path(), &url, &["provider", "list", "rc135"], None);
    assert!(ok && out.contains("postmark"));
    let (ok, _, err) = cli(
        dir.path(),
        &url,
        &["provider", "url", "rc135", "mailgun"],
        None,
    );
    assert!(!ok && err.contains("not configured"), "{err}");
    let (ok, _, err) = cli(dir.path(), &url, &["provider", "add", "rc135", "ses"], None);
    assert!(!ok && err.contains("--topic-arn"), "{err}");
    let (ok, _, _) = cli(
        dir.path(),
        &url,
        &[
            "provider",
            "add",
            "rc135",
            "ses",
            "--topic-arn",
            "arn:aws:sns:us-east-1:123456789012:ses-events",
        ],
        None,
    );
    assert!(ok);
    let (ok, _, err) = cli(
        dir.path(),
        &url,
        &[
            "provider",
            "add",
            "rc135",
            "sendgrid",
            "--public-key-file",
            pw.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !ok && (err.contains("not base64") || err.contains("P-256")),
        "{err}"
    );
    let (ok, _, err) = cli(
        dir.path(),
        &url,
        &["provider", "add", "rc135", "pigeon"],
        None,
    );
    assert!(!ok && err.contains("unknown provider"), "{err}");
    let (ok, rotated, _) = cli(dir.path(), &url, &["tenant", "rotate-token", "rc135"], None);
    assert!(ok && rotated.trim() != last);
    let (ok, list, _) = cli(dir.path(), &url, &["tenant", "list"], None);
    assert!(ok && list.contains("rc135") && list.contains("api_key"));
    // Nothing received yet: the listings say so rather than fail.
    let (ok, events, err) = cli(dir.path(), &url, &["events"], None);
    assert!(ok && !events.contains("keap_post"), "{events}{err}");
    let (ok, audit, err) = cli(dir.path(), &url, &["audit"], None);
    assert!(ok && !audit.contains("opted_out"), "{audit}{err}");
    // A reconcile against a Keap that is not there fails with a clear message.
    let (ok, _, err) = cli(dir.path(), &url, &["reconcile", "rc135", "--dry-run"], None);
    assert!(!ok && err.contains("Keap"), "{err}");
    let (ok, _, err) = cli(dir.path(), &url, &["retry", "12345"], None);
    assert!(!ok && err.contains("not dead"), "{err}");
    assert!(cli(dir.path(), &url, &["tenant", "remove", "rc135"], None).0);
    let (ok, _, err) = cli(dir.path(), &url, &["tenant", "url", "rc135"], None);
    assert!(!ok && err.contains("unknown tenant"), "{err}");
    if db == Db::Sqlite {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
on_both_backends!(the_cli_manages_tenants_without_secrets_in_argv);

/// `--help` on each command documents what the README's table says it takes.
#[test]
fn every_command_documents_itself() {
    let commands = [
        "serve",
        "migrate",
        "tenant",
        "provider",
        "reconcile",
        "events",
        "retry",
        "doctor",
        "audit",
        "report",
        "admin",
        "demo",
    ];
    let documented: &[(&[&str], &[&str])] = &[
        (&["--help"], &commands),
        (&["serve", "--help"], &["SIGTERM", "migrations"]),
        (
            &["tenant", "--help"],
            &["add", "list", "url", "rotate-token", "legacy-off", "remove"],
        ),
        (
            &["tenant", "add", "--help"],
            &["--allow-http", "--oauth-client-id"],
        ),
        (&["provider", "--help"], &["add", "list", "url"]),
        (
            &["provider", "add", "--help"],
            &["--topic-arn", "--public-key-file"],
        ),
        (
            &["events", "--help"],
            &["--tenant", "--state", "blocked", "dead"],
        ),
        (&["retry", "--help"], &["--dead"]),
        (&["demo", "--help"], &["--keep"]),
        (&["reconcile", "--help"], &["--dry-run", "--full"]),
        (&["doctor", "--help"], &["--probe-opt-out"]),
        (&["audit", "--help"], &["--tenant", "--email"]),
        (
            &["report", "--help"],
            &["--since", "--until", "--format", "csv", "json"],
        ),
        (
            &["admin", "set-password", "--help"],
            &["--user", "standard input"],
        ),
        (
            &["admin", "invite", "--help"],
            &["--app", "72 hours", "OPTSYNC_ADMIN_PUBLIC_URL", "last line"],
        ),
    ];
    for (args, words) in documented {
        let out = Command::new(BIN).args(*args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for word in *words {
            assert!(
                text.contains(word),
                "{args:?} does not document {word}:\n{text}"
            );
        }
    }
}

/// The README's first command: the demo runs end to end and finds everything correct.
#[test]
fn the_demo_runs_and_everything_is_correct() {
    let dir = TempDir::new("demo");
    let out = Command::new(BIN)
        .args(["demo", "--contacts", "1000"])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all correct"), "{stdout}");
    // Piped, the progress line is written once, when it is final: never redrawn.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r'),
        "a redrawn line in a pipe: {stderr:?}"
    );
    assert_eq!(
        stderr.matches("  honoured ").count(),
        1,
        "one final progress line: {stderr}"
    );
    for row in [
        "unsubscribe link, EMAIL1",
        "manual opt-out (Admin)",
        "SendGrid spam report",
        "Mailgun hard bounce",
    ] {
        assert!(stdout.contains(row), "{row} missing from the report");
    }
    // The relay's time to suppressed: every pushed address is on both providers' lists.
    for provider in ["SendGrid", "SES"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(provider) && l.contains("read back"))
            .unwrap_or_else(|| panic!("no relay line for {provider}: {stdout}"));
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(2)
            .map(|w| w.parse().unwrap())
            .collect();
        assert!(n[0] > 0 && n[0] == n[1], "{line}");
    }
}

/// `optsync demo --keep`: after the report the console keeps running with a one-time
/// password, and SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_the_console_running_when_asked() {
    use std::io::BufRead as _;
    let dir = TempDir::new("keep");
    let mut child = Command::new(BIN)
        .args(["demo", "--contacts", "200", "--keep"])
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read every line to the end (a closed pipe would fail the demo's later output), and
    // hand over the console's.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if l.starts_with("console: ") {
                let _ = tx.send(l);
            }
        }
    });
    let line = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(120)))
        .await
        .unwrap()
        .expect("the demo prints the console's address");
    let url = line.split_whitespace().nth(1).unwrap().to_string();
    let password = line
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{url}login"))
        .form(&[("user", "admin"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in with the printed password");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = http
        .get(&url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text().await.unwrap().contains(r#"data-app="demo""#),
        "the demo's app is listed"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "Ctrl-C / SIGTERM ends the demo cleanly"
    );
}
