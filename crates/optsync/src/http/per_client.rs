//! Connections per client: one address (IPv6: one /64) may hold at most
//! `OPTSYNC_MAX_CONNECTIONS_PER_CLIENT` at once, besides the total cap, so a client with slow
//! bodies cannot take every slot and keep Keap's posts out. A trusted proxy carries many
//! clients and is not capped this way (its clients are limited by the proxy and the gates).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use crate::client::ClientKey;

/// Open connections per client.
#[derive(Debug, Clone, Default)]
pub struct PerClient(Arc<Mutex<HashMap<ClientKey, usize>>>);

/// One client's connection; dropping it frees the place.
#[derive(Debug)]
pub struct ClientSlot {
    counts: PerClient,
    key: Option<ClientKey>,
}

impl PerClient {
    /// A place for one more connection from `peer`, unless it already holds `max`.
    pub fn take(&self, peer: IpAddr, max: usize, trusted: &[IpNet]) -> Option<ClientSlot> {
        if trusted.iter().any(|n| n.contains(&peer)) {
            return Some(ClientSlot {
                counts: self.clone(),
                key: None,
            });
        }
        let key = ClientKey::from(peer);
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: self.clone(),
            key: Some(key),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut m = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_cap_and_proxies_none() {
        let p = PerClient::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| p.take(a, 3, &[]).unwrap()).collect();
        assert!(p.take(a, 3, &[]).is_none());
        assert!(p.take(b, 3, &[]).is_some());
        drop(held);
        assert!(p.take(a, 3, &[]).is_some());
        assert!(p.0.lock().unwrap().is_empty(), "freed places are forgotten");
        let proxy: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        let many: Vec<_> = (0..10).map(|_| p.take(a, 3, &proxy)).collect();
        assert!(many.iter().all(Option::is_some));
    }
}
