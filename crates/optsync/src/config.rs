//! Settings, layered: command-line flags, then `OPTSYNC_*` environment variables, then an
//! optional `optsync.toml`, then defaults. Every key is documented in `optsync.example.toml`.
//! Secrets (the master key, a database URL with a password) are read from the environment or
//! the file only, never from flags, so they do not show in `ps`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Values given on the command line or in the environment (clap fills both).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Directory for the SQLite database and the master key file.
    #[arg(long, global = true, env = "OPTSYNC_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address the HTTP server listens on.
    #[arg(long, global = true, env = "OPTSYNC_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The URL Keap and the providers reach this service at (used to build the Post URLs).
    #[arg(long, global = true, env = "OPTSYNC_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Worker tasks per process.
    #[arg(long, global = true, env = "OPTSYNC_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Path of the configuration file (default: ./optsync.toml if it exists).
    #[arg(long, global = true, env = "OPTSYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `optsync.toml`: the same keys, lower-case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    workers: Option<usize>,
    lease_secs: Option<u64>,
    max_attempts: Option<i64>,
    retry_base_ms: Option<u64>,
    retry_cap_ms: Option<u64>,
    poll_ms: Option<u64>,
    failed_auth_per_minute: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: `sqlite://DATA_DIR/optsync.db`.
    pub database_url: String,
    pub listen: SocketAddr,
    pub public_url: String,
    pub workers: usize,
    /// How long a claimed job is a worker's before another may take it over.
    pub lease: Duration,
    /// Attempts before a job is dead.
    pub max_attempts: i64,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often idle workers look for jobs another process enqueued.
    pub poll: Duration,
    /// Failed hook authentications allowed per source address per minute.
    pub failed_auth_per_minute: u32,
    /// `OPTSYNC_MASTER_KEY`, if set.
    pub master_key: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    env(name)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| Error::Config(format!("{name}={v:?} is not valid")))
        })
        .transpose()
}

impl Settings {
    pub fn load(o: &Overrides) -> Result<Self> {
        let file = match &o.config {
            Some(p) => read_file(p)?,
            None if Path::new("optsync.toml").exists() => read_file(Path::new("optsync.toml"))?,
            None => FileConfig::default(),
        };
        let data_dir = o
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("optsync-data"));
        let database_url = env("OPTSYNC_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("optsync.db").display()));
        let listen = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = o
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let ms = |v: Option<u64>, d: u64| Duration::from_millis(v.unwrap_or(d));
        let s = Self {
            workers: o.workers.or(file.workers).unwrap_or(4).max(1),
            lease: Duration::from_secs(
                env_parse("OPTSYNC_LEASE_SECS")?
                    .or(file.lease_secs)
                    .unwrap_or(60),
            ),
            max_attempts: env_parse("OPTSYNC_MAX_ATTEMPTS")?
                .or(file.max_attempts)
                .unwrap_or(8)
                .max(1),
            retry_base: ms(env_parse("OPTSYNC_RETRY_BASE_MS")?.or(file.retry_base_ms), 2_000),
            retry_cap: ms(env_parse("OPTSYNC_RETRY_CAP_MS")?.or(file.retry_cap_ms), 600_000),
            poll: ms(env_parse("OPTSYNC_POLL_MS")?.or(file.poll_ms), 500),
            failed_auth_per_minute: env_parse("OPTSYNC_FAILED_AUTH_PER_MINUTE")?
                .or(file.failed_auth_per_minute)
                .unwrap_or(20),
            master_key: env("OPTSYNC_MASTER_KEY"),
            data_dir,
            database_url,
            listen,
            public_url: public_url.trim_end_matches('/').to_string(),
        };
        url::Url::parse(&s.public_url)
            .map_err(|e| Error::Config(format!("public URL {:?}: {e}", s.public_url)))?;
        Ok(s)
    }

    /// Settings for tests and the demo: a data directory and a database URL, defaults
    /// elsewhere.
    pub fn for_dir(data_dir: &Path, database_url: Option<String>) -> Self {
        Self {
            database_url: database_url.unwrap_or_else(|| {
                format!("sqlite://{}", data_dir.join("optsync.db").display())
            }),
            data_dir: data_dir.to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: "http://127.0.0.1:8080".into(),
            workers: 2,
            lease: Duration::from_secs(60),
            max_attempts: 8,
            retry_base: Duration::from_millis(2_000),
            retry_cap: Duration::from_secs(600),
            poll: Duration::from_millis(200),
            failed_auth_per_minute: 20,
            master_key: None,
        }
    }
}

fn read_file(p: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", p.display())))
}
