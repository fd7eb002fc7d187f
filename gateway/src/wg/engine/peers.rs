//! Peer-set changes (`wg set`, config reload) and status reads; peers not named keep their
//! sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pqgate_core::wg::IpCidr;

use super::{
    Engine, Keys, Peer, PeerChange, PeerCounts, PeerRef, PeerStatus, RouteDelta, Table, lock,
};
use crate::wg::route::AllowedIps;

impl Engine {
    /// Replaces the interface's private key. Every peer's sessions end (they were keyed from
    /// the old static key); the next packet to each peer starts a new handshake. A peer whose
    /// public key is the new interface public key is removed, as wireguard-go does.
    pub fn set_private_key(&self, private_key: [u8; 32]) -> RouteDelta {
        if private_key == self.private_key() {
            return RouteDelta::default();
        }
        let keys = Keys::new(private_key);
        let own = keys.public.to_bytes();
        {
            let t = self.table_mut();
            for p in t.peers.iter().flatten() {
                lock(p).tunn.set_static_private(
                    keys.private.clone(),
                    keys.public,
                    keys.rate_limiter.clone(),
                );
            }
            *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        }
        let self_peer = PeerChange {
            public_key: own,
            remove: true,
            ..PeerChange::default()
        };
        self.apply(false, &[self_peer])
    }

    /// Every peer's state, in configuration order.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let list: Vec<PeerRef> = self.table().peers.iter().flatten().cloned().collect();
        let now = SystemTime::now();
        list.iter()
            .map(|p| {
                let mut p = lock(p);
                let (since, tx, rx, _, _) = p.tunn.stats();
                let fresh = since.and_then(|d| now.checked_sub(d));
                // Keep the first reported time unless it moved by a second or more (a new
                // handshake), so repeated reads print the same value.
                p.last_handshake = match (p.last_handshake, fresh) {
                    (Some(old), Some(new))
                        if new.duration_since(old).unwrap_or_default() < Duration::from_secs(1)
                            && old.duration_since(new).unwrap_or_default()
                                < Duration::from_secs(1) =>
                    {
                        Some(old)
                    }
                    (Some(old), None) => Some(old),
                    (_, new) => new,
                };
                PeerStatus {
                    public_key: p.public_key,
                    preshared_key: p.tunn.preshared_key(),
                    endpoint: p.endpoint,
                    last_handshake: p.last_handshake,
                    tx_bytes: tx as u64,
                    rx_bytes: rx as u64,
                    persistent_keepalive: p.tunn.persistent_keepalive(),
                    allowed_ips: p.allowed_ips.clone(),
                    counts: p.stats,
                }
            })
            .collect()
    }

    /// Applies peer changes in order. Peers not named keep their sessions; a PSK, endpoint,
    /// keepalive or allowed-IPs change keeps the peer's `Tunn` (and so its session).
    pub fn apply(&self, replace_peers: bool, changes: &[PeerChange]) -> RouteDelta {
        // A copy, so that `keys` is never taken while `table` is held here.
        let keys = self.keys().clone();
        let mut t = self.table_mut();
        let before: Vec<IpCidr> = routed(&t);
        if replace_peers {
            t.peers.iter_mut().for_each(|p| *p = None);
            t.by_key.clear();
        }
        for c in changes {
            let existing = t.by_key.get(&c.public_key).copied();
            if c.remove {
                if let Some(i) = existing {
                    t.by_key.remove(&c.public_key);
                    if let Some(slot) = t.peers.get_mut(i) {
                        *slot = None;
                    }
                }
                continue;
            }
            let peer = match existing.and_then(|i| t.peers.get(i).cloned().flatten()) {
                Some(p) => p,
                None if c.update_only => continue,
                None => {
                    let tunn = self.new_tunn(&keys, c.public_key, None, None);
                    let p = Arc::new(Mutex::new(Peer {
                        tunn,
                        public_key: c.public_key,
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        last_handshake: None,
                        stats: PeerCounts::default(),
                    }));
                    let i = t.peers.len();
                    t.peers.push(Some(Arc::clone(&p)));
                    t.by_key.insert(c.public_key, i);
                    p
                }
            };
            let mut p = lock(&peer);
            if let Some(psk) = c.preshared_key {
                p.tunn.set_preshared_key(psk);
            }
            if let Some(e) = c.endpoint {
                p.endpoint = Some(e);
            }
            if let Some(k) = c.persistent_keepalive {
                p.tunn.set_persistent_keepalive(k);
            }
            if c.replace_allowed_ips {
                p.allowed_ips.clear();
            }
            for a in &c.allowed_ips {
                let net = a.network();
                if !p.allowed_ips.contains(&net) {
                    p.allowed_ips.push(net);
                }
            }
        }
        // A prefix belongs to one peer: the later one in slot order wins, as on insert.
        let mut routes = AllowedIps::default();
        let mut owners: HashMap<IpCidr, usize> = HashMap::new();
        for (i, p) in t.peers.iter().enumerate() {
            if let Some(p) = p {
                let p = lock(p);
                routes.insert(&p.allowed_ips, i);
                for a in &p.allowed_ips {
                    owners.insert(*a, i);
                }
            }
        }
        // Drop each prefix from peers that lost it to a later one.
        for (i, p) in t.peers.iter().enumerate() {
            if let Some(p) = p {
                lock(p).allowed_ips.retain(|a| owners.get(a) == Some(&i));
            }
        }
        t.routes = routes;
        let after = routed(&t);
        RouteDelta {
            removed: before
                .iter()
                .filter(|c| !after.contains(c))
                .copied()
                .collect(),
            added: after
                .iter()
                .filter(|c| !before.contains(c))
                .copied()
                .collect(),
        }
    }

    /// Starts a new handshake with the peer now (e.g. right after both sides installed a new
    /// PSK). Returns false for an unknown peer or one with no endpoint yet.
    pub fn force_handshake(&self, public_key: &[u8; 32]) -> bool {
        let Some((i, peer)) = self.peer_by_key(public_key) else {
            return false;
        };
        let mut p = lock(&peer);
        let init = p.tunn.format_handshake_initiation(true);
        let endpoint = p.endpoint;
        drop(p);
        match (init, endpoint) {
            (Some(init), Some(to)) => {
                self.send(i, init.into(), to);
                true
            }
            _ => false,
        }
    }

    /// Ends every session of the peer (its queued packets too): no data flows until a new
    /// handshake succeeds. Returns false for an unknown peer.
    pub fn reset_sessions(&self, public_key: &[u8; 32]) -> bool {
        let Some((_, peer)) = self.peer_by_key(public_key) else {
            return false;
        };
        lock(&peer).tunn.reset();
        true
    }

    fn peer_by_key(&self, public_key: &[u8; 32]) -> Option<(usize, PeerRef)> {
        let t = self.table();
        let i = *t.by_key.get(public_key)?;
        Some((i, t.peers.get(i).cloned().flatten()?))
    }
}

/// Every prefix some peer holds (with a route table entry).
fn routed(t: &Table) -> Vec<IpCidr> {
    let mut out = Vec::new();
    for p in t.peers.iter().flatten() {
        for a in &lock(p).allowed_ips {
            if !out.contains(a) {
                out.push(*a);
            }
        }
    }
    out
}
