//! `optsync config`: every effective setting with where it came from, secrets redacted.

use std::process::Command;

use crate::TempDir;
use crate::processes::BIN;

#[test]
fn optsync_config_shows_each_source_and_no_secret() {
    let dir = TempDir::new("config");
    let file = dir.path().join("optsync.toml");
    std::fs::write(&file, "workers = 6\nlease_secs = 90\n").unwrap();
    let key_file = dir.path().join("master-key");
    std::fs::write(&key_file, "c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyEhISE=\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:7001",
            "config",
        ])
        .env_clear()
        .env("OPTSYNC_POLL_MS", "250")
        .env("OPTSYNC_MASTER_KEY_FILE", &key_file)
        .env(
            "OPTSYNC_DATABASE_URL",
            "postgres://optsync:hunter2@db.internal/optsync",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in\n{text}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(row("workers")[1..], ["6", "file", file.to_str().unwrap()]);
    assert_eq!(row("poll_ms")[1..], ["250", "env", "OPTSYNC_POLL_MS"]);
    assert_eq!(row("listen")[1..], ["127.0.0.1:7001", "flag", "--listen"]);
    assert_eq!(row("retry_base_ms")[1..], ["2000", "default"]);
    assert_eq!(row("public_url")[1..], ["http://127.0.0.1:7001", "default"]);
    assert_eq!(
        row("master_key")[1..],
        ["(redacted)", "env", "OPTSYNC_MASTER_KEY_FILE"]
    );
    assert!(row("database_url")[1].contains("db.internal"));
    assert!(
        !text.contains("hunter2") && !text.contains("c2VjcmV0"),
        "{text}"
    );

    // A bad value fails, naming where it came from.
    let out = Command::new(BIN)
        .arg("config")
        .env_clear()
        .env("OPTSYNC_WORKERS", "many")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPTSYNC_WORKERS"));
}

/// The master key given as a file opens what it sealed; the same key inline is refused
/// beside it (which would win is a guess).
#[test]
fn the_master_key_file_is_the_master_key() {
    let dir = TempDir::new("keyfile");
    let key_file = dir.path().join("master-key");
    std::fs::write(&key_file, format!("{}\n", crate::MASTER_KEY)).unwrap();
    let run_with = |args: &[&str], env: &[(&str, &std::ffi::OsStr)]| {
        let mut c = Command::new(BIN);
        c.args(args).env_clear().env("OPTSYNC_DATA_DIR", dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let run = |env: &[(&str, &std::ffi::OsStr)]| run_with(&["tenant", "list"], env);
    // Only `migrate` (or `serve`) makes the database; `tenant list` then opens it.
    let migrated = run_with(
        &["migrate"],
        &[("OPTSYNC_MASTER_KEY_FILE", key_file.as_os_str())],
    );
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let by_file = run(&[("OPTSYNC_MASTER_KEY_FILE", key_file.as_os_str())]);
    assert!(
        by_file.status.success(),
        "{}",
        String::from_utf8_lossy(&by_file.stderr)
    );
    assert!(
        !dir.path().join("master.key").exists(),
        "no key file was made: the given key was used"
    );
    let both = run(&[
        ("OPTSYNC_MASTER_KEY_FILE", key_file.as_os_str()),
        (
            "OPTSYNC_MASTER_KEY",
            std::ffi::OsStr::new(crate::MASTER_KEY),
        ),
    ]);
    assert!(!both.status.success());
}
