//! The edge guards' settings: which forwarding header a trusted proxy sets, the admin
//! listener's host names, and their parsing. The values themselves are declared in
//! [`super::keys::KEYS`] like every other setting.

use std::net::SocketAddr;

use super::Values;
use crate::error::{Error, Result};

/// The forwarding header a trusted proxy sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, AWS ALB, Caddy, HAProxy).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=…`.
    Forwarded,
    /// `X-Real-IP: client` (nginx's `proxy_set_header X-Real-IP $remote_addr`).
    XRealIp,
}

impl ForwardedHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }
}

impl std::str::FromStr for ForwardedHeader {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            "x-real-ip" => Ok(Self::XRealIp),
            other => Err(Error::Config(format!(
                "OPTSYNC_FORWARDED_HEADER={other:?}: expected x-forwarded-for, forwarded or x-real-ip"
            ))),
        }
    }
}

/// Host names as compared: lower-case, without port or IPv6 brackets, from a
/// comma-separated list.
pub fn parse_hosts(list: &str) -> Vec<String> {
    list.split(',')
        .filter_map(|h| host_name(h.trim()))
        .collect()
}

/// The host of a `Host` value or a list entry (`name`, `name:port`, `[v6]:port`, `v6`).
pub fn host_name(raw: &str) -> Option<String> {
    let raw = raw.trim().to_ascii_lowercase();
    if raw.is_empty() {
        return None;
    }
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next().map(str::to_string);
    }
    if raw.matches(':').count() > 1 {
        return Some(raw); // a bare IPv6 address
    }
    raw.split(':').next().map(str::to_string)
}

/// The admin listener's host names: the list given (or its own address, `localhost` and
/// `127.0.0.1`), and always the host of the console's public URL.
pub fn admin_hosts(v: &Values, admin_listen: Option<SocketAddr>) -> Result<Vec<String>> {
    let public_host = v
        .text("admin_public_url")?
        .map(|u| {
            url::Url::parse(&u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .ok_or_else(|| Error::Config(format!("admin_public_url {u:?} is not a URL")))
        })
        .transpose()?;
    let mut hosts = match v.text("admin_hosts")? {
        Some(list) => parse_hosts(&list),
        None => default_admin_hosts(admin_listen),
    };
    hosts.extend(public_host.map(|h| parse_hosts(&h)).unwrap_or_default());
    Ok(hosts)
}

/// The admin listener's own address, `localhost` and `127.0.0.1`.
pub fn default_admin_hosts(admin_listen: Option<SocketAddr>) -> Vec<String> {
    let own = admin_listen.map(|a| a.ip().to_string()).unwrap_or_default();
    parse_hosts(&format!("{own},localhost,127.0.0.1"))
}
