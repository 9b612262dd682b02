//! The real binary and the state it finds: only `serve` and `migrate` create a database or a
//! master key, or migrate one; no command works on a schema newer than it knows.

use std::path::Path;
use std::process::Command;

use sqlx::Connection as _;

use crate::processes::{BIN, cli, cli_with, free_port};
use crate::{Db, MASTER_KEY, TempDir, fresh_database, on_both_backends};

/// Every file under `dir`, for "nothing was left behind".
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        }
        out.push(p.display().to_string());
    }
    out
}

/// Run in an empty directory with no configuration, a command other than serve, migrate and
/// demo says where it looked and creates nothing.
#[test]
fn a_command_without_state_names_where_it_looked_and_creates_nothing() {
    let dir = TempDir::new("nostate");
    for args in [
        vec!["events"],
        vec!["tenant", "list"],
        vec!["migrate", "--status"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {err}");
        assert!(
            err.contains("optsync-data/optsync.db") && err.contains("OPTSYNC_DATA_DIR"),
            "{args:?}: {err}"
        );
        assert_eq!(files_under(dir.path()), Vec::<String>::new(), "{args:?}");
    }
}

/// A database made with the master key in the environment: a command run without that
/// environment refuses instead of making a new key file.
#[test]
fn a_command_without_the_master_key_creates_none() {
    let dir = TempDir::new("nokey");
    let url = format!("sqlite://{}", dir.path().join("optsync.db").display());
    let key = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    let (ok, _, err) = cli_with(dir.path(), &url, &["migrate"], &key);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(dir.path(), &url, &["events"], None);
    assert!(!ok && err.contains("no optsync master key"), "{err}");
    assert!(!dir.path().join("master.key").exists());
    assert!(cli_with(dir.path(), &url, &["events"], &key).0);
}

async fn execute(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .unwrap();
}

/// This binary's newest migration, from `migrate --status` on a current database.
fn newest_known(status: &str) -> i64 {
    let line = status.lines().last().unwrap();
    let n = line.split("this binary's ").nth(1).unwrap();
    n.split(';').next().unwrap().parse().unwrap()
}

/// An older binary meets a newer schema (a row a newer binary's migration would have
/// written): every command refuses with both versions named, `serve` included. Then an older
/// schema: only `migrate` would change it; the others say to run it.
async fn only_serve_and_migrate_change_the_schema(db: Db) {
    let dir = TempDir::new("schema");
    let url = fresh_database(db, dir.path()).await;
    let key = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    if db == Db::Postgres {
        let (ok, _, err) = cli_with(dir.path(), &url, &["events"], &key);
        assert!(!ok && err.contains("run optsync migrate"), "{err}");
    }
    let (ok, _, err) = cli_with(dir.path(), &url, &["migrate"], &key);
    assert!(ok, "{err}");
    let (ok, status, _) = cli_with(dir.path(), &url, &["migrate", "--status"], &key);
    assert!(
        ok && status.contains("0 pending") && !status.contains("pending "),
        "{status}"
    );
    let newest = newest_known(&status);

    let checksum = if db == Db::Sqlite {
        "x'00'"
    } else {
        "decode('00', 'hex')"
    };
    execute(&url, &format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, {checksum}, 0)"
    ))
    .await;
    let both = format!("version 9999, newer than this binary knows (version {newest})");
    for args in [vec!["events"], vec!["migrate"], vec!["tenant", "list"]] {
        let (ok, _, err) = cli_with(dir.path(), &url, &args, &key);
        assert!(!ok && err.contains(&both), "{args:?}: {err}");
    }
    let serve = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("OPTSYNC_DATA_DIR", dir.path())
        .env("OPTSYNC_DATABASE_URL", &url)
        .env("OPTSYNC_MASTER_KEY", MASTER_KEY)
        .env("OPTSYNC_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("OPTSYNC_ADMIN_LISTEN", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success() && err.contains(&both), "{err}");
    let (_, status, _) = cli_with(dir.path(), &url, &["migrate", "--status"], &key);
    assert!(
        status.contains("9999  applied  (unknown to this binary"),
        "{status}"
    );

    // An older schema: the newest migration not yet recorded.
    execute(
        &url,
        &format!("DELETE FROM _sqlx_migrations WHERE version IN (9999, {newest})"),
    )
    .await;
    let (ok, _, err) = cli_with(dir.path(), &url, &["events"], &key);
    assert!(!ok && err.contains("run optsync migrate"), "{err}");
    let (ok, status, _) = cli_with(dir.path(), &url, &["migrate", "--status"], &key);
    assert!(
        ok && status.contains(&format!("{newest:04}  pending")),
        "{status}"
    );
    assert!(status.contains("1 pending"), "{status}");
}
on_both_backends!(only_serve_and_migrate_change_the_schema);
