//! Who the client is, for the hook gate and the console sign-in alike. The TCP peer, unless
//! the peer is a trusted proxy (`OPTSYNC_TRUSTED_PROXIES`); then the one forwarding header
//! the operator named (`OPTSYNC_FORWARDED_HEADER`) is read, right to left, and the first address in it that is
//! not a trusted proxy is the client. Only that header: a proxy that appends to
//! `X-Forwarded-For` passes a client's own `Forwarded` through untouched, so reading any
//! other header would let the client choose who it is.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::Settings;

pub use crate::config::ForwardedHeader;

/// Whom limits count against: an IPv4 address, or an IPv6 /64 (one host holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(std::net::Ipv4Addr),
    V6Net(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The client behind `peer`, as the settings say to find it.
pub fn client_ip(settings: &Settings, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if untrusted_local_proxy(peer, headers, &settings.trusted_proxies)
        && !PROXY_WARNED.swap(true, Ordering::Relaxed)
    {
        // Once per process: a proxy in front sends every request, and the log must not fill.
        tracing::warn!(
            peer = %peer,
            "requests from a loopback peer carry forwarding headers, but that peer is not in \
             OPTSYNC_TRUSTED_PROXIES: a proxy on this machine is counted as one client for all \
             the clients behind it (the auth gate will refuse Keap's posts once anyone guesses \
             tokens); set OPTSYNC_TRUSTED_PROXIES to its address (127.0.0.1/32, ::1/128) and \
             OPTSYNC_FORWARDED_HEADER to the header it sets"
        );
    }
    client_address(
        peer,
        headers,
        &settings.trusted_proxies,
        settings.forwarded_header,
    )
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy, else the
/// right-most address in `header` that is not one.
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let values = headers
        .get_all(header.name())
        .iter()
        .map(|v| v.to_str().unwrap_or_default());
    let hops: Vec<IpAddr> = match header {
        ForwardedHeader::Forwarded => values
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|part| {
                let (k, v) = part.trim().split_once('=')?;
                k.eq_ignore_ascii_case("for").then_some(v)
            })
            .filter_map(parse_hop)
            .collect(),
        // X-Real-IP is one address; several lines are read like a list all the same.
        ForwardedHeader::XForwardedFor | ForwardedHeader::XRealIp => values
            .flat_map(|v| v.split(','))
            .filter_map(parse_hop)
            .collect(),
    };
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// Whether the warning about an untrusted local proxy was logged in this process.
static PROXY_WARNED: AtomicBool = AtomicBool::new(false);

/// Every header a proxy may forward the client's address in.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "x-real-ip", "forwarded"];

/// A request that looks forwarded by a proxy on this machine that is not trusted: its peer is
/// loopback, not among `trusted`, and it carries a forwarding header. (A client elsewhere
/// sending such headers is only talking; loopback means a local proxy is the likely sender.)
fn untrusted_local_proxy(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    peer.is_loopback()
        && !trusted.iter().any(|n| n.contains(&peer))
        && FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// One hop of a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `"[2001:db8::1]:443"`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(v6) = s.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

/// The TCP peer of a request (0.0.0.0 where there is none, as in unit tests).
pub fn peer_of(parts: &axum::http::request::Parts) -> IpAddr {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_loopback_peer_with_forwarding_headers_is_an_untrusted_local_proxy() {
        let xff = headers(&[("x-forwarded-for", "198.51.100.7")]);
        let fwd = headers(&[("forwarded", "for=198.51.100.7")]);
        let loopback = ip("127.0.0.1");
        assert!(untrusted_local_proxy(loopback, &xff, &[]));
        assert!(untrusted_local_proxy(ip("::1"), &fwd, &[]));
        assert!(untrusted_local_proxy(ip("::ffff:127.0.0.1"), &xff, &[]));
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(!untrusted_local_proxy(loopback, &xff, &trusted));
        let other: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(untrusted_local_proxy(loopback, &xff, &other));
        assert!(!untrusted_local_proxy(loopback, &HeaderMap::new(), &[]));
        assert!(!untrusted_local_proxy(ip("203.0.113.5"), &xff, &[]));
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards() {
        use ForwardedHeader::*;
        let proxy = ip("10.0.0.2");
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "198.51.100.7, 10.0.0.9")]);
        assert_eq!(
            client_address(proxy, &xff, &trusted, XForwardedFor),
            ip("198.51.100.7")
        );
        // An untrusted peer's headers are not believed.
        let stranger = ip("203.0.113.5");
        assert_eq!(
            client_address(stranger, &xff, &trusted, XForwardedFor),
            stranger
        );
        let fwd = headers(&[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")]);
        assert_eq!(
            client_address(proxy, &fwd, &trusted, Forwarded),
            ip("2001:db8::1")
        );
        // A spoofed leftmost entry does not win over the hop the proxy saw.
        let spoof = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(
            client_address(proxy, &spoof, &trusted, XForwardedFor),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(proxy, &HeaderMap::new(), &trusted, XForwardedFor),
            proxy
        );
        let real = headers(&[("x-real-ip", "198.51.100.9")]);
        assert_eq!(
            client_address(proxy, &real, &trusted, XRealIp),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn only_the_named_header_is_read() {
        let proxy = ip("10.0.0.2");
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // nginx appends X-Forwarded-For and passes the client's own Forwarded through.
        let h = headers(&[
            ("forwarded", "for=192.0.2.77"),
            ("x-forwarded-for", "198.51.100.7"),
            ("x-real-ip", "192.0.2.88"),
        ]);
        let read = |which| client_address(proxy, &h, &trusted, which);
        assert_eq!(read(ForwardedHeader::XForwardedFor), ip("198.51.100.7"));
        assert_eq!(read(ForwardedHeader::Forwarded), ip("192.0.2.77"));
        assert_eq!(read(ForwardedHeader::XRealIp), ip("192.0.2.88"));
        assert!("X-Forwarded-For".parse::<ForwardedHeader>().is_ok());
        assert!("x-client-ip".parse::<ForwardedHeader>().is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = ClientKey::from(ip("2001:db8:1:2::1"));
        let b = ClientKey::from(ip("2001:db8:1:2:ffff::9"));
        let c = ClientKey::from(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
