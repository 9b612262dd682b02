//! The rule that keeps state in one place (where it lives by default is `config::Layout`):
//! only `serve` and `migrate` create a database or a master key. Every other command run from
//! the wrong directory, or without the service's environment, would otherwise start a second
//! database and key that Keap's posts never reach.

use std::path::Path;

use crate::config::{Layout, Settings};
use crate::crypto::SecretBox;
use crate::error::{Error, Result};

/// Refuses to go on unless the database and the master key the settings name already exist:
/// for every command but `serve`, `migrate` and `demo`. Creates nothing.
pub fn require_existing_state(s: &Settings) -> Result<()> {
    require_existing_database(s)?;
    let key = SecretBox::key_file(&s.data_dir);
    if s.master_key.as_deref().is_none_or(|k| k.trim().is_empty()) && !key.exists() {
        return Err(missing("master key", &key, s));
    }
    Ok(())
}

/// Refuses to go on unless the SQLite file the settings name exists (a PostgreSQL database's
/// schema is checked once connected).
pub fn require_existing_database(s: &Settings) -> Result<()> {
    match crate::store::sqlite_path(&s.database_url) {
        Some(db) if !db.exists() => Err(missing("database", db, s)),
        _ => Ok(()),
    }
}

fn missing(what: &str, path: &Path, s: &Settings) -> Error {
    let config = match &s.config_file {
        Some(p) => format!("configuration from {}", p.display()),
        None => format!(
            "no configuration file ({} does not exist)",
            Layout::detect().default_config().display()
        ),
    };
    Error::Config(format!(
        "no optsync {what} at {} ({config}; data directory {}). Point this command at the \
         service's state with OPTSYNC_CONFIG (its configuration file), OPTSYNC_DATA_DIR or \
         --data-dir, or OPTSYNC_DATABASE_URL, and run it as the service's user; only \
         `optsync serve` or `optsync migrate` creates a new one",
        path.display(),
        s.data_dir.display()
    ))
}
