//! Where configuration and state live unless told otherwise: an installed binary (under
//! `/usr`) uses `/etc/optsync/optsync.toml` and `/var/lib/optsync`; one run from a source
//! checkout uses `./optsync.toml` and `./optsync-data`.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The binary lives under `/usr` (the Debian package installs `/usr/bin/optsync`).
    Installed,
    /// Anywhere else: a build in a source checkout.
    Checkout,
}

impl Layout {
    /// Decided by where the running binary is.
    pub fn detect() -> Self {
        let exe = std::env::current_exe().and_then(|p| p.canonicalize());
        match exe {
            Ok(p) if p.starts_with("/usr/") => Self::Installed,
            _ => Self::Checkout,
        }
    }

    /// The configuration file read when `OPTSYNC_CONFIG` (or `--config`) names none.
    pub fn default_config(self) -> PathBuf {
        match self {
            Self::Installed => PathBuf::from("/etc/optsync/optsync.toml"),
            Self::Checkout => PathBuf::from("optsync.toml"),
        }
    }

    pub fn default_data_dir(self) -> PathBuf {
        match self {
            Self::Installed => PathBuf::from("/var/lib/optsync"),
            Self::Checkout => PathBuf::from("optsync-data"),
        }
    }
}
