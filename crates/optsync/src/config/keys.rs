//! The one declaration of every setting: its name (the `optsync.toml` key; the environment
//! variable is `OPTSYNC_` and the name in capitals), where it may be given, its default and
//! a line of help. Flags, variables, the file, the defaults, `optsync config` and the check of
//! `optsync.example.toml` are all read from [`KEYS`].

/// Where a setting may be given besides the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// The environment and the file.
    Plain,
    /// Also a global flag, `--` and the name with dashes.
    Flag,
    /// A secret: never a flag (argv shows in `ps`), never printed; also read from the file
    /// named by `OPTSYNC_…_FILE`. `in_file`: may also be written in `optsync.toml`.
    Secret { in_file: bool },
}

/// The value of a setting declared earlier, by name (empty when it has none).
pub type Lookup<'a> = &'a dyn Fn(&str) -> String;

/// A setting's value when nothing gives one.
#[derive(Debug, Clone, Copy)]
pub enum Fallback {
    Value(&'static str),
    /// Computed from the settings declared before it.
    Derived(fn(Lookup<'_>) -> String),
    /// No value (the setting is optional).
    Unset,
}

#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub given: Given,
    pub fallback: Fallback,
    pub help: &'static str,
}

impl Key {
    pub fn env(&self) -> String {
        format!("OPTSYNC_{}", self.name.to_ascii_uppercase())
    }

    pub fn flag(&self) -> Option<String> {
        (self.given == Given::Flag).then(|| self.name.replace('_', "-"))
    }

    pub fn secret(&self) -> bool {
        matches!(self.given, Given::Secret { .. })
    }

    pub fn in_file(&self) -> bool {
        !matches!(self.given, Given::Secret { in_file: false })
    }
}

const fn key(name: &'static str, given: Given, fallback: Fallback, help: &'static str) -> Key {
    Key {
        name,
        given,
        fallback,
        help,
    }
}

use Fallback::{Derived, Unset, Value};
use Given::{Flag, Plain, Secret};

/// Every setting, in the order `optsync config` prints them; a derived default follows what
/// it is derived from.
pub const KEYS: &[Key] = &[
    key(
        "data_dir",
        Flag,
        // Installed and source-checkout binaries keep their state in different places.
        Derived(|_| {
            super::Layout::detect()
                .default_data_dir()
                .display()
                .to_string()
        }),
        "Directory for the SQLite database and the master key file (default: /var/lib/optsync for an installed binary, ./optsync-data in a source checkout)",
    ),
    key(
        "database_url",
        Secret { in_file: true },
        Derived(|v| {
            format!(
                "sqlite://{}/optsync.db",
                v("data_dir").trim_end_matches('/')
            )
        }),
        "postgres://… or sqlite://… (may hold a password)",
    ),
    key(
        "master_key",
        Secret { in_file: false },
        Unset,
        "The key that seals stored secrets (default: DATA_DIR/master.key)",
    ),
    key(
        "listen",
        Flag,
        Value("127.0.0.1:8080"),
        "Address the HTTP server listens on",
    ),
    key(
        "admin_listen",
        Plain,
        Value("127.0.0.1:9090"),
        "Address of the console and /metrics, or off",
    ),
    key(
        "tls_cert",
        Plain,
        Unset,
        "PEM certificate chain: the HTTP server serves HTTPS (with tls_key; re-read on SIGHUP)",
    ),
    key("tls_key", Plain, Unset, "PEM private key of tls_cert"),
    key(
        "acme_domains",
        Plain,
        Unset,
        "DNS names (comma-separated): the HTTP server serves HTTPS with a certificate it obtains and renews through ACME (TLS-ALPN-01 on its own port)",
    ),
    key(
        "acme_contact",
        Plain,
        Unset,
        "Email address the ACME account is registered with (the CA's expiry and policy notices)",
    ),
    key(
        "acme_directory",
        Plain,
        Value("https://acme-v02.api.letsencrypt.org/directory"),
        "The ACME directory (default: Let's Encrypt production)",
    ),
    key(
        "acme_directory_ca",
        Plain,
        Unset,
        "Testing or a private CA only: a PEM root trusted (besides the usual ones) for the ACME directory's HTTPS",
    ),
    key(
        "public_url",
        Flag,
        Derived(|v| {
            if let Some(name) = v("acme_domains")
                .split(',')
                .map(str::trim)
                .find(|d| !d.is_empty())
            {
                return super::acme::default_public_url(name, &v("listen"));
            }
            let scheme = if v("tls_cert").is_empty() {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{}", v("listen"))
        }),
        "The URL Keap and the providers reach this service at",
    ),
    key(
        "workers",
        Flag,
        Value("4"),
        "Worker tasks per process (each claims jobs and runs them as tasks)",
    ),
    key(
        "jobs_in_flight",
        Plain,
        Value("256"),
        "Jobs running at once per process, across all workers",
    ),
    key(
        "tenant_workers",
        Plain,
        Derived(|v| default_tenant_workers(&v("workers"))),
        "Jobs one tenant may have running at once",
    ),
    key(
        "lease_secs",
        Plain,
        Value("60"),
        "Seconds a claimed job belongs to its worker",
    ),
    key(
        "max_attempts",
        Plain,
        Value("8"),
        "Attempts before a failing job may be buried",
    ),
    key(
        "bury_after_hours",
        Plain,
        Value("72"),
        "Hours a job keeps failing before it may be buried",
    ),
    key(
        "retry_base_ms",
        Plain,
        Value("2000"),
        "First retry delay, doubled per attempt",
    ),
    key(
        "retry_cap_ms",
        Plain,
        Value("3600000"),
        "Longest retry delay",
    ),
    key(
        "poll_ms",
        Plain,
        Value("500"),
        "How often idle workers look for jobs other processes enqueued",
    ),
    key(
        "push_per_second",
        Plain,
        Value("5"),
        "Pushes per second to one sending provider's suppression list, per app",
    ),
    key(
        "blocked_retry_secs",
        Plain,
        Value("300"),
        "How long a blocked job waits before it is tried again",
    ),
    key(
        "failed_auth_per_minute",
        Plain,
        Value("20"),
        "Failed Keap-post authentications per app and client per minute",
    ),
    key(
        "trusted_proxies",
        Plain,
        Value(""),
        "Proxies (addresses or CIDRs) whose forwarding headers are believed",
    ),
    key(
        "header_timeout_secs",
        Plain,
        Value("10"),
        "Seconds a client has to send a request's headers",
    ),
    key(
        "request_timeout_secs",
        Plain,
        Value("30"),
        "Seconds a whole request may take",
    ),
    key(
        "max_connections",
        Plain,
        Value("1024"),
        "Connections served at once",
    ),
    key(
        "keap_limits",
        Plain,
        Unset,
        "Pace every Keap credential to these limits (10/s,240/min,30000/day)",
    ),
    key(
        "forwarded_header",
        Plain,
        Value("x-forwarded-for"),
        "The one forwarding header believed from a trusted proxy (x-forwarded-for, forwarded, x-real-ip)",
    ),
    key(
        "legacy_failed_auth_per_hour",
        Plain,
        Value("100"),
        "Failed Keap-post authentications per app per hour before its legacy token is refused",
    ),
    key(
        "max_connections_per_client",
        Plain,
        Value("64"),
        "Connections one client address (IPv6: one /64) may hold at once",
    ),
    key(
        "keap_body_timeout_secs",
        Plain,
        Value("5"),
        "Seconds a Keap post's body may take to arrive",
    ),
    key(
        "admin_hosts",
        Plain,
        Unset,
        "Host names the admin listener answers to (default: its own address, localhost, 127.0.0.1)",
    ),
    key(
        "admin_public_url",
        Plain,
        Unset,
        "The console's own URL (https: the session cookie is Secure and __Host-)",
    ),
    key(
        "keap_client_id",
        Plain,
        Unset,
        "The client id of your Keap developer app: the console's \"Connect a Keap app\" (with keap_client_secret and admin_public_url)",
    ),
    key(
        "keap_client_secret",
        Secret { in_file: false },
        Unset,
        "The client secret of your Keap developer app",
    ),
    key(
        "keap_authorize_url",
        Plain,
        Value("https://accounts.infusionsoft.com/app/oauth/authorize"),
        "Keap's OAuth consent page the console sends the browser to",
    ),
    key(
        "keap_token_url",
        Plain,
        Value("https://api.infusionsoft.com/token"),
        "Keap's OAuth token endpoint",
    ),
    key(
        "keap_api_url",
        Plain,
        Value("https://api.infusionsoft.com/crm"),
        "The Keap API base URL an app connected in the console gets",
    ),
    key(
        "console_idle_minutes",
        Plain,
        Value("30"),
        "Minutes an unused console session lasts",
    ),
    key(
        "reconcile",
        Plain,
        Value("true"),
        "serve sweeps every tenant on a schedule",
    ),
    key(
        "reconcile_budget_share",
        Plain,
        Value("0.5"),
        "Share of a credential's remaining daily quota one sweep may spend",
    ),
];

/// Three workers in four: one tenant's flood leaves the rest to the others (never fewer
/// than one). An unparsable worker count is reported against `workers` itself.
fn default_tenant_workers(workers: &str) -> String {
    let w: usize = workers.trim().parse().unwrap_or(1).max(1);
    (w - w / 4).max(1).to_string()
}

/// The setting called `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
