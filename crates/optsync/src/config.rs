//! Settings, layered: command-line flags, then `OPTSYNC_*` environment variables, then an
//! optional `optsync.toml`, then defaults. Every key is documented in `optsync.example.toml`.
//! Secrets (the master key, a database URL with a password) are read from the environment or
//! the file only, never from flags, so they do not show in `ps`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

mod edge;

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
    admin_listen: Option<String>,
    public_url: Option<String>,
    workers: Option<usize>,
    lease_secs: Option<u64>,
    max_attempts: Option<i64>,
    retry_base_ms: Option<u64>,
    retry_cap_ms: Option<u64>,
    poll_ms: Option<u64>,
    blocked_retry_secs: Option<u64>,
    bury_after_hours: Option<u64>,
    tenant_workers: Option<usize>,
    failed_auth_per_minute: Option<u32>,
    trusted_proxies: Option<String>,
    header_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    keap_limits: Option<String>,
    reconcile: Option<bool>,
    reconcile_budget_share: Option<f64>,
    // Edge guards (see `edge_settings`).
    forwarded_header: Option<String>,
    legacy_failed_auth_per_hour: Option<u32>,
    max_connections_per_client: Option<usize>,
    keap_body_timeout_secs: Option<u64>,
    admin_hosts: Option<String>,
    admin_public_url: Option<String>,
    console_idle_minutes: Option<u64>,
}

#[derive(Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: `sqlite://DATA_DIR/optsync.db`.
    pub database_url: String,
    pub listen: SocketAddr,
    /// The admin listener (`/metrics`); `None` (`OPTSYNC_ADMIN_LISTEN=off`): none.
    pub admin_listen: Option<SocketAddr>,
    pub public_url: String,
    pub workers: usize,
    /// How long a claimed job is a worker's before another may take it over.
    pub lease: Duration,
    /// Attempts before a job may be buried as dead (and only once [`Settings::bury_after`]
    /// has passed too).
    pub max_attempts: i64,
    /// How long a failing job keeps being retried before it is buried: days, so that a Keap
    /// outage never buries an opt-out.
    pub bury_after: Duration,
    /// Workers one tenant may hold at once, so one app's flood cannot crowd out the others.
    pub tenant_workers: usize,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often idle workers look for jobs another process enqueued.
    pub poll: Duration,
    /// How long a blocked job (no opt-out path works) waits before it is tried again.
    pub blocked_retry: Duration,
    /// Failed Keap-post authentications allowed per (app, client address) per minute.
    pub failed_auth_per_minute: u32,
    /// Proxies whose forwarding headers name the client (`OPTSYNC_TRUSTED_PROXIES`, CIDRs).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a client may take to send a request's headers (also bounds an idle
    /// keep-alive connection): slow-loris clients are cut off.
    pub header_timeout: Duration,
    /// How long a request may take, body and answer included (408 past it).
    pub request_timeout: Duration,
    /// Connections served at once; past it new ones are closed at once.
    pub max_connections: usize,
    /// `OPTSYNC_MASTER_KEY`, if set.
    pub master_key: Option<String>,
    /// Limits to pace every Keap credential to, instead of Keap's published ones (an account
    /// with a negotiated quota; tests against the emulator).
    pub keap_limits: Option<keap::Limits>,
    /// `serve` sweeps every tenant on a schedule.
    pub reconcile: bool,
    /// Share of a credential's remaining daily quota one sweep may spend.
    pub reconcile_budget_share: f64,
    // Edge guards: who the client is, what one client may hold, the admin listener's checks.
    /// The one forwarding header believed from a trusted proxy.
    pub forwarded_header: ForwardedHeader,
    /// Failed Keap-post authentications per app per hour, all clients together, past which
    /// the app's legacy 6-character token is refused (its full token keeps working).
    pub legacy_failed_auth_per_hour: u32,
    /// Connections one client address (IPv6: one /64) may hold at once.
    pub max_connections_per_client: usize,
    /// How long a Keap post's body (at most 64 KiB) may take to arrive.
    pub keap_body_timeout: Duration,
    /// Host names the admin listener answers to (lower-case, no port).
    pub admin_hosts: Vec<String>,
    /// The console's own URL (`https://…`: the session cookie is `Secure` and `__Host-`).
    pub admin_public_url: Option<String>,
    /// A console session unused this long ends (besides its absolute lifetime).
    pub console_idle: Duration,
}

/// Without the master key and the database password: settings end up in logs and panics.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &crate::store::redact(&self.database_url))
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("public_url", &self.public_url)
            .field("workers", &self.workers)
            .field("lease", &self.lease)
            .field("max_attempts", &self.max_attempts)
            .field("bury_after", &self.bury_after)
            .field("tenant_workers", &self.tenant_workers)
            .field("retry_base", &self.retry_base)
            .field("retry_cap", &self.retry_cap)
            .field("poll", &self.poll)
            .field("blocked_retry", &self.blocked_retry)
            .field("failed_auth_per_minute", &self.failed_auth_per_minute)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("header_timeout", &self.header_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("master_key", &self.master_key.as_ref().map(|_| "***"))
            .field("keap_limits", &self.keap_limits)
            .field("reconcile", &self.reconcile)
            .field("reconcile_budget_share", &self.reconcile_budget_share)
            .field("forwarded_header", &self.forwarded_header)
            .field(
                "legacy_failed_auth_per_hour",
                &self.legacy_failed_auth_per_hour,
            )
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("keap_body_timeout", &self.keap_body_timeout)
            .field("admin_hosts", &self.admin_hosts)
            .field("admin_public_url", &self.admin_public_url)
            .field("console_idle", &self.console_idle)
            .finish()
    }
}

/// Parses a comma-separated list of CIDRs (`10.0.0.0/8, 2001:db8::/32`; a bare address is
/// one host).
pub fn parse_proxies(s: &str) -> Result<Vec<ipnet::IpNet>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    Error::Config(format!("trusted proxy {p:?} is not an address or CIDR"))
                })
        })
        .collect()
}

/// Parses `10/s,240/min,30000/day` (any subset; `N/Xms`, `N/Xs` for other windows).
pub fn parse_limits(s: &str) -> Result<keap::Limits> {
    let bad = || {
        Error::Config(format!(
            "keap limits {s:?}: expected e.g. 10/s,240/min,30000/day"
        ))
    };
    let mut limits = keap::Limits {
        windows: Vec::new(),
        daily: None,
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (n, unit) = part.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let length = match unit.trim() {
            "day" => {
                limits.daily = Some(n);
                continue;
            }
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            u if u.ends_with("ms") => {
                Duration::from_millis(u[..u.len() - 2].parse().map_err(|_| bad())?)
            }
            u if u.ends_with('s') => {
                Duration::from_secs(u[..u.len() - 1].parse().map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        };
        limits.windows.push(keap::WindowLimit { limit: n, length });
    }
    limits.windows.sort_by_key(|w| w.length);
    Ok(limits)
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
        let (header_timeout, request_timeout, max_connections) = server_limits(&file)?;
        let (reconcile, reconcile_budget_share) = reconcile_settings(&file)?;
        let workers = o.workers.or(file.workers).unwrap_or(4).max(1);
        let j = job_settings(&file, workers)?;
        let admin_listen = parse_admin_listen(&admin_listen_text(&file))?;
        let edge = edge_settings(&file, admin_listen)?;
        let trusted_proxies = parse_proxies(
            env("OPTSYNC_TRUSTED_PROXIES")
                .or(file.trusted_proxies.clone())
                .as_deref()
                .unwrap_or_default(),
        )?;
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
            forwarded_header: edge.forwarded_header,
            legacy_failed_auth_per_hour: edge.legacy_failed_auth_per_hour,
            max_connections_per_client: edge.max_connections_per_client,
            keap_body_timeout: edge.keap_body_timeout,
            admin_hosts: edge.admin_hosts,
            admin_public_url: edge.admin_public_url,
            console_idle: edge.console_idle,
            workers,
            tenant_workers: j.tenant_workers,
            bury_after: j.bury_after,
            lease: j.lease,
            max_attempts: j.max_attempts,
            retry_base: j.retry_base,
            retry_cap: j.retry_cap,
            poll: ms(env_parse("OPTSYNC_POLL_MS")?.or(file.poll_ms), 500),
            blocked_retry: j.blocked_retry,
            failed_auth_per_minute: env_parse("OPTSYNC_FAILED_AUTH_PER_MINUTE")?
                .or(file.failed_auth_per_minute)
                .unwrap_or(20),
            trusted_proxies,
            header_timeout,
            request_timeout,
            max_connections,
            master_key: env("OPTSYNC_MASTER_KEY"),
            keap_limits: env("OPTSYNC_KEAP_LIMITS")
                .or(file.keap_limits)
                .map(|v| parse_limits(&v))
                .transpose()?,
            reconcile,
            reconcile_budget_share,
            data_dir,
            database_url,
            listen,
            admin_listen,
            public_url: public_url.trim_end_matches('/').to_string(),
        };
        s.check()?;
        Ok(s)
    }

    /// Values that parse but cannot be used.
    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.reconcile_budget_share) {
            return Err(Error::Config(
                "reconcile_budget_share must be between 0 and 1".into(),
            ));
        }
        url::Url::parse(&self.public_url)
            .map_err(|e| Error::Config(format!("public URL {:?}: {e}", self.public_url)))?;
        Ok(())
    }

    /// Settings for tests and the demo: a data directory and a database URL, defaults
    /// elsewhere.
    pub fn for_dir(data_dir: &Path, database_url: Option<String>) -> Self {
        Self {
            database_url: database_url
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("optsync.db").display())),
            data_dir: data_dir.to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: None,
            public_url: "http://127.0.0.1:8080".into(),
            workers: 2,
            tenant_workers: default_tenant_workers(2),
            lease: Duration::from_secs(60),
            max_attempts: 8,
            bury_after: Duration::from_secs(72 * 3600),
            retry_base: Duration::from_millis(2_000),
            retry_cap: Duration::from_secs(3600),
            poll: Duration::from_millis(200),
            blocked_retry: Duration::from_secs(300),
            failed_auth_per_minute: 20,
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            master_key: None,
            keap_limits: None,
            reconcile: false,
            reconcile_budget_share: 0.5,
            forwarded_header: ForwardedHeader::default(),
            legacy_failed_auth_per_hour: 100,
            max_connections_per_client: 64,
            keap_body_timeout: Duration::from_secs(5),
            admin_hosts: default_admin_hosts(None),
            admin_public_url: None,
            console_idle: Duration::from_secs(30 * 60),
        }
    }
}

pub use crate::http::auth_gate::ForwardedHeader;
use edge::{default_admin_hosts, edge_settings};

/// How jobs are claimed, retried and buried.
struct JobSettings {
    tenant_workers: usize,
    bury_after: Duration,
    lease: Duration,
    max_attempts: i64,
    retry_base: Duration,
    retry_cap: Duration,
    blocked_retry: Duration,
}

fn job_settings(file: &FileConfig, workers: usize) -> Result<JobSettings> {
    let ms = |v: Option<u64>, d: u64| Duration::from_millis(v.unwrap_or(d));
    Ok(JobSettings {
        tenant_workers: env_parse("OPTSYNC_TENANT_WORKERS")?
            .or(file.tenant_workers)
            .unwrap_or(default_tenant_workers(workers))
            .max(1),
        bury_after: Duration::from_secs(
            3600 * env_parse("OPTSYNC_BURY_AFTER_HOURS")?
                .or(file.bury_after_hours)
                .unwrap_or(72)
                .max(1),
        ),
        lease: Duration::from_secs(
            env_parse("OPTSYNC_LEASE_SECS")?
                .or(file.lease_secs)
                .unwrap_or(60),
        ),
        max_attempts: env_parse("OPTSYNC_MAX_ATTEMPTS")?
            .or(file.max_attempts)
            .unwrap_or(8)
            .max(1),
        retry_base: ms(
            env_parse("OPTSYNC_RETRY_BASE_MS")?.or(file.retry_base_ms),
            2_000,
        ),
        retry_cap: ms(
            env_parse("OPTSYNC_RETRY_CAP_MS")?.or(file.retry_cap_ms),
            3_600_000,
        ),
        blocked_retry: Duration::from_secs(
            env_parse("OPTSYNC_BLOCKED_RETRY_SECS")?
                .or(file.blocked_retry_secs)
                .unwrap_or(300)
                .max(1),
        ),
    })
}

fn admin_listen_text(file: &FileConfig) -> String {
    env("OPTSYNC_ADMIN_LISTEN")
        .or(file.admin_listen.clone())
        .unwrap_or_else(|| "127.0.0.1:9090".into())
}

/// `host:port`, or `off` for no admin listener.
fn parse_admin_listen(v: &str) -> Result<Option<SocketAddr>> {
    if v.trim() == "off" {
        return Ok(None);
    }
    v.trim().parse().map(Some).map_err(|_| {
        Error::Config(format!(
            "OPTSYNC_ADMIN_LISTEN={v:?}: expected host:port (e.g. 127.0.0.1:9090) or off"
        ))
    })
}

/// Three workers in four: one tenant's flood leaves the rest to the others (never fewer
/// than one).
fn default_tenant_workers(workers: usize) -> usize {
    (workers - workers / 4).max(1)
}

/// Whether `serve` sweeps, and the share of the daily quota a sweep may spend.
fn reconcile_settings(file: &FileConfig) -> Result<(bool, f64)> {
    Ok((
        env_parse("OPTSYNC_RECONCILE")?
            .or(file.reconcile)
            .unwrap_or(true),
        env_parse("OPTSYNC_RECONCILE_BUDGET_SHARE")?
            .or(file.reconcile_budget_share)
            .unwrap_or(0.5),
    ))
}

/// Header-read timeout, request timeout and connection cap.
fn server_limits(file: &FileConfig) -> Result<(Duration, Duration, usize)> {
    let secs = |name: &str, v: Option<u64>, d: u64| -> Result<Duration> {
        Ok(Duration::from_secs(
            env_parse(name)?.or(v).unwrap_or(d).max(1),
        ))
    };
    Ok((
        secs("OPTSYNC_HEADER_TIMEOUT_SECS", file.header_timeout_secs, 10)?,
        secs(
            "OPTSYNC_REQUEST_TIMEOUT_SECS",
            file.request_timeout_secs,
            30,
        )?,
        env_parse("OPTSYNC_MAX_CONNECTIONS")?
            .or(file.max_connections)
            .unwrap_or(1024)
            .max(1),
    ))
}

/// Checks an `optsync.toml` text as `load` would read it: known keys only, and the values
/// that are parsed further (Keap limits, proxy CIDRs) parsed.
pub fn check_file_text(text: &str) -> Result<()> {
    let f: FileConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
    if let Some(l) = &f.keap_limits {
        parse_limits(l)?;
    }
    if let Some(p) = &f.trusted_proxies {
        parse_proxies(p)?;
    }
    if let Some(h) = &f.forwarded_header {
        h.parse::<ForwardedHeader>()?;
    }
    Ok(())
}

fn read_file(p: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_documents_valid_keys() {
        let text = include_str!("../../../optsync.example.toml");
        let f: FileConfig = toml::from_str(text).expect("optsync.example.toml parses");
        assert_eq!(f.workers, Some(4));
        // Every key the file may hold appears in the example, commented or not.
        for key in [
            "data_dir",
            "database_url",
            "listen",
            "public_url",
            "workers",
            "lease_secs",
            "max_attempts",
            "retry_base_ms",
            "retry_cap_ms",
            "poll_ms",
            "blocked_retry_secs",
            "failed_auth_per_minute",
            "trusted_proxies",
            "header_timeout_secs",
            "request_timeout_secs",
            "max_connections",
            "keap_limits",
            "reconcile",
            "reconcile_budget_share",
            "forwarded_header",
            "legacy_failed_auth_per_hour",
            "max_connections_per_client",
            "keap_body_timeout_secs",
            "admin_hosts",
            "admin_public_url",
            "console_idle_minutes",
        ] {
            assert!(
                text.contains(&format!("{key} = ")),
                "{key} is not documented"
            );
        }
    }

    #[test]
    fn debug_output_keeps_secrets_out() {
        let mut s = Settings::for_dir(
            Path::new("/tmp/x"),
            Some("postgres://optsync:hunter2@db.example/optsync".into()),
        );
        s.master_key = Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into());
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2") && !d.contains("AAECAwQF"), "{d}");
        assert!(d.contains("db.example"));
    }

    #[test]
    fn limits_parse() {
        let l = parse_limits("240/min, 10/s,30000/day").unwrap();
        assert_eq!(
            l.windows,
            vec![
                keap::WindowLimit::per_second(10),
                keap::WindowLimit::per_minute(240)
            ]
        );
        assert_eq!(l.daily, Some(30_000));
        assert_eq!(
            parse_limits("5/250ms").unwrap().windows[0].length,
            Duration::from_millis(250)
        );
        assert!(parse_limits("ten/s").is_err());
        assert!(parse_limits("10/fortnight").is_err());
    }
}
