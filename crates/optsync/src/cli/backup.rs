//! `optsync backup DEST` and `optsync restore SRC`: a consistent copy of a SQLite database,
//! taken while the service runs, and its restoration into an empty data directory. The master
//! key stays out of a backup unless asked for: kept apart, a stolen backup opens no Keap
//! credential.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::store::{Backend, Store, sqlite_path};

const DB_FILE: &str = "optsync.db";

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Directory to write the backup into (made; must not exist or be empty).
    dest: PathBuf,
    /// Also copy the master key (master.key) into the backup. Without it, keep the key
    /// apart (see the README's "Deploying").
    #[arg(long)]
    include_key: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A directory written by `optsync backup`.
    src: PathBuf,
}

/// A directory that does not exist or holds nothing.
fn is_empty_dir(p: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(p) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// A private directory (the database holds sealed secrets and token digests).
fn make_private_dir(p: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Copies a file and makes it private and durable.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}

fn refuse_postgres(s: &Settings, tool: &str) -> anyhow::Result<()> {
    if sqlite_path(&s.database_url).is_none() {
        bail!(
            "the database is PostgreSQL: back it up with PostgreSQL's own tools ({tool}); \
             optsync backup and restore handle the embedded SQLite database only"
        );
    }
    Ok(())
}

pub async fn backup(s: Settings, a: BackupArgs) -> anyhow::Result<()> {
    refuse_postgres(&s, "pg_dump, then pg_restore")?;
    crate::layout::require_existing_state(&s)?;
    if !is_empty_dir(&a.dest)? {
        bail!("{} is not empty: give a new directory", a.dest.display());
    }
    let store = Store::open_current(&s.database_url).await?;
    debug_assert_eq!(store.backend(), Backend::Sqlite);
    make_private_dir(&a.dest)?;
    let db = a.dest.join(DB_FILE);
    store.vacuum_into(&db).await?;
    std::fs::File::open(&db)?.sync_all()?;
    let key = SecretBox::key_file(&s.data_dir);
    if a.include_key && key.exists() {
        copy_private(&key, &a.dest.join("master.key"))?;
        println!(
            "backup written to {} (database and master key)",
            a.dest.display()
        );
    } else {
        println!("backup written to {} (database only)", a.dest.display());
        eprintln!(
            "the master key is not in it: without {} (or OPTSYNC_MASTER_KEY) the copy's \
             Keap credentials cannot be read. Keep the key apart from the backups",
            key.display()
        );
    }
    Ok(())
}

pub async fn restore(s: Settings, a: RestoreArgs) -> anyhow::Result<()> {
    refuse_postgres(&s, "pg_restore")?;
    let src_db = a.src.join(DB_FILE);
    if !src_db.is_file() {
        bail!("{} holds no {DB_FILE}: not a backup", a.src.display());
    }
    let Some(target) = sqlite_path(&s.database_url).map(Path::to_path_buf) else {
        bail!("the database URL names no SQLite file");
    };
    if !is_empty_dir(&s.data_dir)? || target.exists() {
        bail!(
            "{} is not empty: optsync restore fills an empty data directory only (stop the \
             service and move the old one aside first)",
            s.data_dir.display()
        );
    }
    make_private_dir(&s.data_dir)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        make_private_dir(dir)?;
    }
    copy_private(&src_db, &target)?;
    let key = a.src.join("master.key");
    if key.exists() {
        copy_private(&key, &SecretBox::key_file(&s.data_dir))?;
    }
    println!(
        "restored {} into {}{}",
        a.src.display(),
        s.data_dir.display(),
        if key.exists() {
            ", master key included"
        } else {
            "; put the master key back (master.key or OPTSYNC_MASTER_KEY) before starting"
        }
    );
    Ok(())
}
