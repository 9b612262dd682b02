//! The edge guards' settings, declared together: which forwarding header a trusted proxy
//! sets, the legacy token's per-app failure limit, what one client may hold, how long a Keap
//! body may take, and the admin listener's host names, public URL and session idle time.

use std::net::SocketAddr;
use std::time::Duration;

use super::{FileConfig, ForwardedHeader, env, env_parse};
use crate::error::{Error, Result};

/// The edge guards' settings, loaded together.
pub(super) struct Edge {
    pub(super) forwarded_header: ForwardedHeader,
    pub(super) legacy_failed_auth_per_hour: u32,
    pub(super) max_connections_per_client: usize,
    pub(super) keap_body_timeout: Duration,
    pub(super) admin_hosts: Vec<String>,
    pub(super) admin_public_url: Option<String>,
    pub(super) console_idle: Duration,
}

pub(super) fn edge_settings(file: &FileConfig, admin_listen: Option<SocketAddr>) -> Result<Edge> {
    let admin_public_url = env("OPTSYNC_ADMIN_PUBLIC_URL")
        .or(file.admin_public_url.clone())
        .map(|u| u.trim_end_matches('/').to_string());
    let public_host = admin_public_url
        .as_deref()
        .map(|u| {
            url::Url::parse(u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .ok_or_else(|| {
                    Error::Config(format!("OPTSYNC_ADMIN_PUBLIC_URL={u:?} is not a URL"))
                })
        })
        .transpose()?;
    let mut admin_hosts = match env("OPTSYNC_ADMIN_HOSTS").or(file.admin_hosts.clone()) {
        Some(list) => crate::http::admin::parse_hosts(&list),
        None => default_admin_hosts(admin_listen),
    };
    admin_hosts.extend(
        public_host
            .map(|h| crate::http::admin::parse_hosts(&h))
            .unwrap_or_default(),
    );
    Ok(Edge {
        forwarded_header: env("OPTSYNC_FORWARDED_HEADER")
            .or(file.forwarded_header.clone())
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or_default(),
        legacy_failed_auth_per_hour: env_parse("OPTSYNC_LEGACY_FAILED_AUTH_PER_HOUR")?
            .or(file.legacy_failed_auth_per_hour)
            .unwrap_or(100)
            .max(1),
        max_connections_per_client: env_parse("OPTSYNC_MAX_CONNECTIONS_PER_CLIENT")?
            .or(file.max_connections_per_client)
            .unwrap_or(64)
            .max(1),
        keap_body_timeout: Duration::from_secs(
            env_parse("OPTSYNC_KEAP_BODY_TIMEOUT_SECS")?
                .or(file.keap_body_timeout_secs)
                .unwrap_or(5)
                .max(1),
        ),
        admin_hosts,
        admin_public_url,
        console_idle: Duration::from_secs(
            60 * env_parse("OPTSYNC_CONSOLE_IDLE_MINUTES")?
                .or(file.console_idle_minutes)
                .unwrap_or(30)
                .max(1),
        ),
    })
}

/// The admin listener's own address, `localhost` and `127.0.0.1`.
pub(super) fn default_admin_hosts(admin_listen: Option<SocketAddr>) -> Vec<String> {
    let own = admin_listen.map(|a| a.ip().to_string()).unwrap_or_default();
    crate::http::admin::parse_hosts(&format!("{own},localhost,127.0.0.1"))
}
