//! Settings, layered: command-line flags, then `OPTSYNC_*` environment variables, then an
//! optional `optsync.toml`, then defaults, every setting declared once in [`keys::KEYS`].
//! Every key is documented in `optsync.example.toml` (a test holds the two together).
//! Secrets (the master key, a database URL with a password) are read from the environment
//! (`OPTSYNC_X`, or the file named by `OPTSYNC_X_FILE`) or the file only, never from flags,
//! so they do not show in `ps`.

pub mod acme;
pub mod edge;
pub mod keap_oauth;
pub mod keys;
mod layout;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

pub use acme::AcmeSettings;
pub use edge::ForwardedHeader;
pub use keap_oauth::KeapOAuth;
pub use layout::Layout;
pub use values::{Overrides, Resolved, Source, Values, config_path, process_env};

/// A secret setting: dereferences to its text, and never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// The database URL: `Debug` shows it without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl std::ops::Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::redact(&self.0))
    }
}

impl From<String> for DatabaseUrl {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// The settings, typed; built from [`Values`] only.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration file read, if any.
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: `sqlite://DATA_DIR/optsync.db`.
    pub database_url: DatabaseUrl,
    pub listen: SocketAddr,
    /// The admin listener (`/metrics`); `None` (`OPTSYNC_ADMIN_LISTEN=off`): none.
    pub admin_listen: Option<SocketAddr>,
    pub public_url: String,
    pub workers: usize,
    /// Jobs running at once in this process, across its workers: a job waiting on Keap holds
    /// one of these, not a worker.
    pub jobs_in_flight: usize,
    /// How long a claimed job is a worker's before another may take it over.
    pub lease: Duration,
    /// Attempts before a job may be buried as dead (and only once [`Settings::bury_after`]
    /// has passed too).
    pub max_attempts: i64,
    /// How long a failing job keeps being retried before it is buried: days, so that a Keap
    /// outage never buries an opt-out.
    pub bury_after: Duration,
    /// Jobs one tenant may have running at once, so one app's flood cannot crowd out the
    /// others.
    pub tenant_workers: usize,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often idle workers look for jobs another process enqueued.
    pub poll: Duration,
    /// How long a blocked job (no opt-out path works) waits before it is tried again.
    pub blocked_retry: Duration,
    /// Pushes per second to one sending provider's suppression list, per app.
    pub push_per_second: u32,
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
    /// `OPTSYNC_MASTER_KEY` (or `_FILE`), if set; otherwise `DATA_DIR/master.key`.
    pub master_key: Option<Secret>,
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
    /// The Keap developer app the console connects apps through (`keap_client_id` …).
    pub keap_oauth: Option<KeapOAuth>,
    /// The HTTP server serves HTTPS with these (`tls_cert`, `tls_key`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The HTTP server serves HTTPS with a certificate it obtains through ACME (`acme_*`).
    pub acme: Option<AcmeSettings>,
}

impl Settings {
    /// Flags, the process environment, the configuration file and defaults.
    pub fn load(o: &Overrides) -> Result<Self> {
        let mut s = Self::from_values(&Values::load(o, &process_env)?)?;
        s.config_file = config_path(o, &process_env);
        Ok(s)
    }

    /// The typed settings; values that parse but cannot be used are errors.
    pub fn from_values(v: &Values) -> Result<Self> {
        let secs = |name: &str| -> Result<Duration> {
            Ok(Duration::from_secs(v.get::<u64>(name)?.max(1)))
        };
        let ms = |name: &str| -> Result<Duration> { Ok(Duration::from_millis(v.get(name)?)) };
        let admin_listen = parse_admin_listen(&v.get::<String>("admin_listen")?)?;
        let admin_public_url = v
            .text("admin_public_url")?
            .map(|u| u.trim_end_matches('/').to_string());
        let s = Self {
            keap_oauth: keap_oauth::from_values(v, admin_public_url.as_deref())?,
            forwarded_header: v.get("forwarded_header")?,
            legacy_failed_auth_per_hour: v.get::<u32>("legacy_failed_auth_per_hour")?.max(1),
            max_connections_per_client: v.get::<usize>("max_connections_per_client")?.max(1),
            keap_body_timeout: secs("keap_body_timeout_secs")?,
            admin_hosts: edge::admin_hosts(v, admin_listen)?,
            admin_public_url,
            console_idle: Duration::from_secs(
                v.get::<u64>("console_idle_minutes")?
                    .clamp(1, u64::MAX / 60)
                    * 60,
            ),
            tls: tls_files(v)?,
            acme: acme::from_values(v)?,
            config_file: None,
            data_dir: v.get("data_dir")?,
            database_url: DatabaseUrl(v.get("database_url")?),
            master_key: v.text("master_key")?.map(Secret),
            listen: v.get("listen")?,
            admin_listen,
            public_url: v
                .get::<String>("public_url")?
                .trim_end_matches('/')
                .to_string(),
            workers: v.get::<usize>("workers")?.max(1),
            jobs_in_flight: v.get::<usize>("jobs_in_flight")?.max(1),
            tenant_workers: v.get::<usize>("tenant_workers")?.max(1),
            lease: Duration::from_secs(v.get("lease_secs")?),
            max_attempts: v.get::<i64>("max_attempts")?.max(1),
            bury_after: Duration::from_secs(
                v.get::<u64>("bury_after_hours")?.clamp(1, u64::MAX / 3600) * 3600,
            ),
            retry_base: ms("retry_base_ms")?,
            retry_cap: ms("retry_cap_ms")?,
            poll: ms("poll_ms")?,
            blocked_retry: secs("blocked_retry_secs")?,
            push_per_second: v.get::<u32>("push_per_second")?.max(1),
            failed_auth_per_minute: v.get("failed_auth_per_minute")?,
            trusted_proxies: parse_proxies(&v.text("trusted_proxies")?.unwrap_or_default())?,
            header_timeout: secs("header_timeout_secs")?,
            request_timeout: secs("request_timeout_secs")?,
            max_connections: v.get::<usize>("max_connections")?.max(1),
            keap_limits: v
                .text("keap_limits")?
                .map(|l| parse_limits(&l))
                .transpose()?,
            reconcile: v.get("reconcile")?,
            reconcile_budget_share: v.get("reconcile_budget_share")?,
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

    /// Settings for tests and the demo: the declared defaults, with a data directory and a
    /// database URL, and what an in-process service wants: any free port, no admin
    /// listener, no scheduled sweeps.
    pub fn for_dir(data_dir: &Path, database_url: Option<String>) -> Self {
        let mut v = Values::defaults();
        v.set("data_dir", data_dir.display().to_string());
        let db = database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("optsync.db").display()));
        v.set("database_url", db);
        v.set("listen", "127.0.0.1:0");
        v.set("public_url", "http://127.0.0.1:8080");
        v.set("admin_listen", "off");
        v.set("reconcile", "false");
        // The declared defaults are held to parse by a unit test.
        Self::from_values(&v).expect("the declared defaults parse")
    }
}

/// The certificate chain and key for HTTPS: both or neither.
fn tls_files(v: &Values) -> Result<Option<crate::tls::TlsFiles>> {
    match (v.text("tls_cert")?, v.text("tls_key")?) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
            cert: cert.into(),
            key: key.into(),
        })),
        (None, None) => Ok(None),
        _ => Err(Error::Config(
            "tls_cert and tls_key (OPTSYNC_TLS_CERT, OPTSYNC_TLS_KEY) go together".into(),
        )),
    }
}

/// `host:port`, or `off` for no admin listener.
fn parse_admin_listen(v: &str) -> Result<Option<SocketAddr>> {
    if v.trim() == "off" {
        return Ok(None);
    }
    v.trim().parse().map(Some).map_err(|_| {
        Error::Config(format!(
            "admin_listen {v:?}: expected host:port (e.g. 127.0.0.1:9090) or off"
        ))
    })
}

/// Checks an `optsync.toml` text as `load` would read it: known keys only, every value
/// parsed.
pub fn check_file_text(text: &str) -> Result<()> {
    Settings::from_values(&Values::from_file_text(text)?).map(drop)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared key is in the example (commented or not) with its variable, every
    /// value written there parses, and an uncommented value is the declared default.
    #[test]
    fn the_example_file_documents_every_key() {
        let text = include_str!("../../../../optsync.example.toml");
        check_file_text(text).expect("optsync.example.toml is valid");
        for k in keys::KEYS {
            let line = text
                .lines()
                .find(|l| {
                    l.trim_start_matches("# ")
                        .starts_with(&format!("{} = ", k.name))
                })
                .unwrap_or_else(|| panic!("{} is not in optsync.example.toml", k.name));
            assert!(text.contains(&k.env()), "{} is not named there", k.env());
            if let (false, keys::Fallback::Value(d)) = (line.starts_with('#'), k.fallback) {
                let (_, v) = line.split_once(" = ").unwrap();
                let v: toml::Value = toml::from_str(&format!("v = {v}")).unwrap();
                let v = v.get("v").unwrap();
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                assert_eq!(v, d, "{} in the example is not the default", k.name);
            }
        }
    }

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn each_value_says_where_it_came_from() {
        let dir = std::env::temp_dir().join(format!("optsync-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("optsync.toml");
        std::fs::write(
            &file,
            "workers = 6\npoll_ms = 100\nlisten = \"127.0.0.1:7000\"\n",
        )
        .unwrap();
        let key_file = dir.join("master.key.secret");
        std::fs::write(&key_file, "c2VjcmV0LWtleQ==\n").unwrap();
        let o = Overrides {
            config: Some(file.clone()),
            flags: vec![("listen", "127.0.0.1:7001".into())],
        };
        let env = env_of(&[
            ("OPTSYNC_POLL_MS", "250".into()),
            ("OPTSYNC_MASTER_KEY_FILE", key_file.display().to_string()),
        ]);
        let v = Values::load(&o, &env).unwrap();
        let source = |n: &str| v.iter().find(|r| r.key.name == n).unwrap().source.clone();
        assert_eq!(source("workers"), Source::File(file.clone()));
        assert_eq!(source("poll_ms"), Source::Env("OPTSYNC_POLL_MS".into()));
        assert_eq!(source("listen"), Source::Flag("listen".into()));
        assert_eq!(source("lease_secs"), Source::Default);
        assert_eq!(
            source("master_key"),
            Source::Env("OPTSYNC_MASTER_KEY_FILE".into())
        );
        let s = Settings::from_values(&v).unwrap();
        assert_eq!((s.workers, s.poll), (6, Duration::from_millis(250)));
        assert_eq!(s.listen.port(), 7001);
        assert_eq!(
            s.public_url, "http://127.0.0.1:7001",
            "derived from the flag"
        );
        assert_eq!(s.tenant_workers, 5, "derived from the file's workers");
        assert_eq!(s.master_key.as_deref(), Some("c2VjcmV0LWtleQ=="));
        let shown: Vec<String> = v.iter().map(Resolved::shown).collect();
        assert!(!shown.iter().any(|s| s.contains("c2VjcmV0")), "{shown:?}");
        // Both ways of giving a secret at once is refused; an empty secret file too.
        let both = env_of(&[
            ("OPTSYNC_MASTER_KEY", "x".into()),
            ("OPTSYNC_MASTER_KEY_FILE", key_file.display().to_string()),
        ]);
        assert!(Values::load(&Overrides::default(), &both).is_err());
        std::fs::write(&key_file, "\n").unwrap();
        assert!(Values::load(&Overrides::default(), &env).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_value_names_its_source_and_never_a_secret() {
        let env = env_of(&[
            ("OPTSYNC_WORKERS", "many".into()),
            ("OPTSYNC_DATABASE_URL", "postgres://u:hunter2@db/x".into()),
        ]);
        let e = Settings::from_values(&Values::load(&Overrides::default(), &env).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("OPTSYNC_WORKERS") && e.contains("many"), "{e}");
        assert!(
            check_file_text("master_key = \"k\"").is_err(),
            "not in the file"
        );
        assert!(check_file_text("wrokers = 4").is_err());
    }

    #[test]
    fn for_dir_takes_the_declared_defaults() {
        let s = Settings::for_dir(Path::new("/tmp/x"), None);
        let d = Settings::from_values(&Values::defaults()).unwrap();
        assert_eq!((s.workers, s.poll, s.lease), (d.workers, d.poll, d.lease));
        assert_eq!(s.tenant_workers, d.tenant_workers);
        assert_eq!(&*s.database_url, "sqlite:///tmp/x/optsync.db");
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

    /// HTTPS needs both files; with them the default public URL is https.
    #[test]
    fn tls_files_go_together_and_make_the_default_url_https() {
        let s = Settings::from_values(
            &Values::from_file_text("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap(),
        )
        .unwrap();
        let tls = s.tls.expect("both files given");
        assert_eq!((tls.cert, tls.key), ("c.pem".into(), "k.pem".into()));
        assert_eq!(s.public_url, "https://127.0.0.1:8080");
        assert!(check_file_text("tls_cert = \"c.pem\"").is_err());
        assert!(check_file_text("tls_key = \"k.pem\"").is_err());
        let plain = Settings::from_values(&Values::defaults()).unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.public_url, "http://127.0.0.1:8080");
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
