//! Peer-set changes (`wg set`, config reload, start-up) and status reads. A change touches only
//! the peers it names (`replace_peers` aside): their prefixes move one by one in the
//! allowed-IPs trie (O(prefix bits) each, whatever the number of peers), the route delta comes
//! from exactly the prefixes touched, and peers not named keep their `Tunn` and sessions.
//! Reads are linear in the peers. Invariant: a prefix is in a peer's `allowed_ips` exactly when
//! the trie gives it to that peer.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gotatun::noise::Tunn;
use pqgate_core::wg::IpCidr;

use super::timers::Watch;
use super::{
    Engine, Keys, Peer, PeerChange, PeerConfig, PeerCounts, PeerRef, PeerStatus, RouteDelta, Table,
    TunQueue, UdpTransport, lock,
};
use pqgate_core::wg::allowed_ips::AllowedIps;

impl<T: TunQueue, U: UdpTransport> Engine<T, U> {
    /// Adds the configured peers at start, through the same path as [`Engine::apply`] (a
    /// public key listed twice is one peer; a prefix listed twice goes to the later peer).
    pub(super) fn add_configured(&self, peers: Vec<PeerConfig>) {
        let changes: Vec<PeerChange> = peers
            .into_iter()
            .map(|p| PeerChange {
                public_key: p.public_key,
                preshared_key: Some(p.preshared_key),
                endpoint: p.endpoint,
                persistent_keepalive: Some(p.persistent_keepalive),
                allowed_ips: p.allowed_ips,
                ..PeerChange::default()
            })
            .collect();
        // Start-up routes are installed by the caller from the configuration.
        let _ = self.apply(false, &changes);
    }

    /// Replaces the interface's private key. Every peer's sessions end (they were keyed from
    /// the old static key); the next packet to each peer starts a new handshake. A peer whose
    /// public key is the new interface public key is removed, as wireguard-go does.
    pub(crate) fn set_private_key(&self, private_key: [u8; 32]) -> RouteDelta {
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
    pub(crate) fn peers(&self) -> Vec<PeerStatus> {
        let list: Vec<PeerRef> = self.table().peers.iter().flatten().cloned().collect();
        let now = SystemTime::now();
        list.iter().map(|p| status(&mut lock(p), now)).collect()
    }

    /// Applies peer changes in order. Peers not named keep their sessions; a PSK, endpoint,
    /// keepalive or allowed-IPs change keeps the peer's `Tunn` (and so its session). A prefix
    /// given to a peer is taken from the peer that held it.
    pub(crate) fn apply(&self, replace_peers: bool, changes: &[PeerChange]) -> RouteDelta {
        // A copy, so that `keys` is never taken while `table` is held here.
        let keys = self.keys().clone();
        let mut t = self.table_mut();
        let delta = t.apply(replace_peers, changes, |key| {
            self.new_tunn(&keys, key, None, None)
        });
        // Removed peers' agile receiver indices go with them (order: table, then index map).
        let live = |o: usize| t.peers.get(o).is_some_and(Option::is_some);
        self.agile_index().retain(|_, owners| {
            owners.retain(|&o| live(o));
            !owners.is_empty()
        });
        delta
    }

    /// Starts a new handshake with the peer now (e.g. right after both sides installed a new
    /// PSK). Returns false for an unknown peer or one with no endpoint yet.
    pub(crate) fn force_handshake(&self, public_key: &[u8; 32]) -> bool {
        let Some((i, peer)) = self.peer_by_key(public_key) else {
            return false;
        };
        let mut p = lock(&peer);
        let init = p.tunn.format_handshake_initiation(true);
        let endpoint = p.endpoint;
        drop(p);
        self.table().wake(i);
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
    pub(crate) fn reset_sessions(&self, public_key: &[u8; 32]) -> bool {
        let Some((_, peer)) = self.peer_by_key(public_key) else {
            return false;
        };
        lock(&peer).tunn.reset();
        true
    }

    pub(super) fn peer_by_key(&self, public_key: &[u8; 32]) -> Option<(usize, PeerRef)> {
        self.table().by_key_ref(public_key)
    }
}

impl Table {
    /// [`Engine::apply`] on the table; `new_tunn` makes the protocol state of a new peer.
    pub(super) fn apply(
        &mut self,
        replace_peers: bool,
        changes: &[PeerChange],
        mut new_tunn: impl FnMut([u8; 32]) -> Tunn,
    ) -> RouteDelta {
        let mut delta = Delta::default();
        if replace_peers {
            self.remove_all(&mut delta);
        }
        for c in changes {
            if c.remove {
                self.remove_peer(&c.public_key, &mut delta);
                continue;
            }
            let (i, peer) = match self.by_key_ref(&c.public_key) {
                Some(found) => found,
                None if c.update_only => continue,
                None => self.add_peer(new_tunn(c.public_key), c.public_key),
            };
            let taken = {
                let mut p = lock(&peer);
                configure(&mut p, c);
                move_prefixes(&mut self.routes, &mut p, i, c, &mut delta)
            };
            self.forget_taken(&taken);
            self.wake(i);
        }
        delta.finish(&self.routes)
    }

    pub(super) fn by_key_ref(&self, public_key: &[u8; 32]) -> Option<(usize, PeerRef)> {
        let i = *self.by_key.get(public_key)?;
        Some((i, self.peers.get(i)?.clone()?))
    }

    /// A new peer in a new slot (slots are never reused).
    fn add_peer(&mut self, tunn: Tunn, public_key: [u8; 32]) -> (usize, PeerRef) {
        let p = Arc::new(Mutex::new(Peer {
            tunn,
            public_key,
            endpoint: None,
            allowed_ips: Vec::new(),
            last_handshake: None,
            stats: PeerCounts::default(),
            watch: Watch::new(Instant::now()),
            agile: None,
        }));
        let i = self.peers.len();
        self.peers.push(Some(Arc::clone(&p)));
        self.by_key.insert(public_key, i);
        (i, p)
    }

    /// Removes one peer and every prefix it holds.
    fn remove_peer(&mut self, public_key: &[u8; 32], delta: &mut Delta) {
        let Some(i) = self.by_key.remove(public_key) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(i).and_then(Option::take) else {
            return;
        };
        for a in std::mem::take(&mut lock(&peer).allowed_ips) {
            delta.touch(a, &self.routes);
            self.routes.remove(a, i);
        }
    }

    /// Removes every peer (`replace_peers`): the one change that is linear in the peer set.
    fn remove_all(&mut self, delta: &mut Delta) {
        for peer in self.peers.iter_mut().filter_map(Option::take) {
            for a in std::mem::take(&mut lock(&peer).allowed_ips) {
                delta.touch(a, &self.routes);
            }
        }
        self.by_key.clear();
        self.routes.clear();
    }

    /// Drops each prefix from the list of the peer it was taken from.
    fn forget_taken(&self, taken: &[(usize, IpCidr)]) {
        for (j, net) in taken {
            if let Some(Some(q)) = self.peers.get(*j) {
                let mut q = lock(q);
                if let Some(k) = q.allowed_ips.iter().position(|a| a == net) {
                    q.allowed_ips.remove(k);
                }
            }
        }
    }
}

/// Applies a change's PSK, endpoint and keepalive to its peer.
fn configure(p: &mut Peer, c: &PeerChange) {
    if let Some(psk) = c.preshared_key {
        p.tunn.set_preshared_key(psk);
    }
    if let Some(e) = c.endpoint {
        p.endpoint = Some(e);
    }
    if let Some(k) = c.persistent_keepalive {
        p.tunn.set_persistent_keepalive(k);
    }
}

/// Updates the trie and peer `i`'s list for a change's allowed IPs; returns the prefixes taken
/// from other peers (with their previous owner), whose lists the caller fixes after releasing
/// this peer's lock.
fn move_prefixes(
    routes: &mut AllowedIps,
    p: &mut Peer,
    i: usize,
    c: &PeerChange,
    delta: &mut Delta,
) -> Vec<(usize, IpCidr)> {
    if c.replace_allowed_ips {
        for a in std::mem::take(&mut p.allowed_ips) {
            delta.touch(a, routes);
            routes.remove(a, i);
        }
    }
    let mut taken = Vec::new();
    for a in &c.allowed_ips {
        let net = a.network();
        delta.touch(net, routes);
        match routes.assign(net, i) {
            Some(j) if j == i => {}
            Some(j) => {
                taken.push((j, net));
                p.allowed_ips.push(net);
            }
            None => p.allowed_ips.push(net),
        }
    }
    taken
}

/// The prefixes a change touched, each with whether some peer held it before the change.
#[derive(Default)]
struct Delta {
    order: Vec<IpCidr>,
    before: HashMap<IpCidr, bool>,
}

impl Delta {
    /// Records `net`'s state before its first change.
    fn touch(&mut self, net: IpCidr, routes: &AllowedIps) {
        if let Entry::Vacant(e) = self.before.entry(net) {
            e.insert(routes.owner(net).is_some());
            self.order.push(net);
        }
    }

    /// Compares each touched prefix with its state now.
    fn finish(self, routes: &AllowedIps) -> RouteDelta {
        let mut d = RouteDelta::default();
        for net in self.order {
            let was = self.before.get(&net).copied().unwrap_or(false);
            match (was, routes.owner(net).is_some()) {
                (true, false) => d.removed.push(net),
                (false, true) => d.added.push(net),
                _ => {}
            }
        }
        d
    }
}

/// One peer's status; keeps the first reported handshake time unless it moved by a second or
/// more (a new handshake), so repeated reads print the same value.
fn status(p: &mut Peer, now: SystemTime) -> PeerStatus {
    let (since, tx, rx, _, _) = p.tunn.stats();
    let fresh = since.and_then(|d| now.checked_sub(d));
    p.last_handshake = match (p.last_handshake, fresh) {
        (Some(old), Some(new))
            if new.duration_since(old).unwrap_or_default() < Duration::from_secs(1)
                && old.duration_since(new).unwrap_or_default() < Duration::from_secs(1) =>
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
        tx_bytes: (tx as u64).saturating_add(p.stats.agile_tx_bytes),
        rx_bytes: (rx as u64).saturating_add(p.stats.agile_rx_bytes),
        persistent_keepalive: p.tunn.persistent_keepalive(),
        allowed_ips: p.allowed_ips.clone(),
        counts: p.stats,
        agile: super::agile::status_of(p),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use gotatun::noise::index_table::IndexTable;
    use gotatun::noise::rate_limiter::RateLimiter;
    use gotatun::x25519::{PublicKey, StaticSecret};

    use super::*;

    fn tunn(key: [u8; 32]) -> Tunn {
        let private = StaticSecret::from([7; 32]);
        let public = PublicKey::from(&private);
        Tunn::new(
            private,
            PublicKey::from(key),
            None,
            None,
            IndexTable::from_os_rng(),
            Arc::new(RateLimiter::new(&public, 10)),
        )
    }

    fn cidr(s: &str) -> IpCidr {
        s.parse().expect("test prefix")
    }

    fn add(key: u8, ips: &[&str]) -> PeerChange {
        PeerChange {
            public_key: [key; 32],
            allowed_ips: ips.iter().map(|s| cidr(s)).collect(),
            ..PeerChange::default()
        }
    }

    fn list(t: &Table, key: u8) -> Vec<IpCidr> {
        let (_, p) = t.by_key_ref(&[key; 32]).expect("peer exists");
        lock(&p).allowed_ips.clone()
    }

    #[test]
    fn a_moved_prefix_stays_routed_and_leaves_its_old_owner() {
        let mut t = Table::default();
        let d = t.apply(false, &[add(1, &["10.0.0.1/32", "10.1.0.0/16"])], tunn);
        assert_eq!(d.added, [cidr("10.0.0.1/32"), cidr("10.1.0.0/16")]);
        let first = t.by_key_ref(&[1; 32]).expect("peer 1").1;
        let d = t.apply(false, &[add(2, &["10.0.0.1/32"])], tunn);
        assert_eq!(
            d,
            RouteDelta::default(),
            "still routed: no host route change"
        );
        assert_eq!(list(&t, 1), [cidr("10.1.0.0/16")]);
        assert_eq!(list(&t, 2), [cidr("10.0.0.1/32")]);
        assert_eq!(t.routes.lookup("10.0.0.1".parse().expect("ip")), Some(1));
        let same = t.by_key_ref(&[1; 32]).expect("peer 1").1;
        assert!(
            Arc::ptr_eq(&first, &same),
            "peer 1 was not named: same state"
        );
        let gone = PeerChange {
            public_key: [2; 32],
            remove: true,
            ..PeerChange::default()
        };
        let d = t.apply(false, &[gone], tunn);
        assert_eq!(d.removed, [cidr("10.0.0.1/32")]);
        assert!(d.added.is_empty());
        assert_eq!(t.routes.lookup("10.0.0.1".parse().expect("ip")), None);
        assert_eq!(t.routes.lookup("10.1.2.3".parse().expect("ip")), Some(0));
    }

    #[test]
    fn replacing_allowed_ips_reports_only_the_difference() {
        let mut t = Table::default();
        t.apply(false, &[add(1, &["10.0.0.1/32", "10.0.0.2/32"])], tunn);
        let mut c = add(1, &["10.0.0.2/32", "10.0.0.3/32"]);
        c.replace_allowed_ips = true;
        let d = t.apply(false, &[c], tunn);
        assert_eq!(d.removed, [cidr("10.0.0.1/32")]);
        assert_eq!(d.added, [cidr("10.0.0.3/32")]);
        let mut update = add(9, &["10.9.0.0/16"]);
        update.update_only = true;
        assert_eq!(t.apply(false, &[update], tunn), RouteDelta::default());
        assert!(
            t.by_key_ref(&[9; 32]).is_none(),
            "update_only never creates"
        );
        let d = t.apply(true, &[add(1, &["10.0.0.3/32"])], tunn);
        assert_eq!(d.removed, [cidr("10.0.0.2/32")]);
        assert!(d.added.is_empty());
    }

    /// The obvious model: who holds each prefix, and the live peers.
    #[derive(Clone, Default)]
    struct Model {
        peers: BTreeSet<u8>,
        owner: BTreeMap<IpCidr, u8>,
    }

    impl Model {
        fn apply(&mut self, replace: bool, changes: &[PeerChange]) {
            if replace {
                *self = Model::default();
            }
            for c in changes {
                let k = c.public_key[0];
                if c.remove {
                    self.peers.remove(&k);
                    self.owner.retain(|_, o| *o != k);
                    continue;
                }
                if !self.peers.contains(&k) {
                    if c.update_only {
                        continue;
                    }
                    self.peers.insert(k);
                }
                if c.replace_allowed_ips {
                    self.owner.retain(|_, o| *o != k);
                }
                for a in &c.allowed_ips {
                    self.owner.insert(a.network(), k);
                }
            }
        }
    }

    #[test]
    fn incremental_changes_match_a_rebuilt_model() {
        let universe: Vec<IpCidr> = [
            "10.0.0.1/32",
            "10.0.0.2/32",
            "10.0.0.0/24",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "10.0.0.5/24",
            "fd00::1/128",
            "fd00::/64",
            "::/0",
        ]
        .iter()
        .map(|s| cidr(s))
        .collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut t, mut model) = (Table::default(), Model::default());
        for step in 0..300 {
            let changes: Vec<PeerChange> = (0..1 + rnd(3))
                .map(|_| PeerChange {
                    public_key: [1 + rnd(5) as u8; 32],
                    remove: rnd(6) == 0,
                    update_only: rnd(5) == 0,
                    replace_allowed_ips: rnd(4) == 0,
                    allowed_ips: (0..rnd(4))
                        .map(|_| universe[rnd(universe.len() as u64) as usize])
                        .collect(),
                    ..PeerChange::default()
                })
                .collect();
            let replace = rnd(25) == 0;
            let named: BTreeSet<u8> = changes.iter().map(|c| c.public_key[0]).collect();
            let kept: Vec<(u8, PeerRef)> = model
                .peers
                .iter()
                .filter(|k| !named.contains(k))
                .filter_map(|&k| Some((k, t.by_key_ref(&[k; 32])?.1)))
                .collect();
            let before = model.clone();
            let d = t.apply(replace, &changes, tunn);
            model.apply(replace, &changes);
            let was: BTreeSet<&IpCidr> = before.owner.keys().collect();
            let now: BTreeSet<&IpCidr> = model.owner.keys().collect();
            let removed: BTreeSet<&IpCidr> = d.removed.iter().collect();
            let added: BTreeSet<&IpCidr> = d.added.iter().collect();
            assert_eq!(removed, &was - &now, "removed at step {step}");
            assert_eq!(added, &now - &was, "added at step {step}");
            for u in &universe {
                let want = model.owner.get(&u.network()).copied();
                let got = t.routes.owner(*u).and_then(|i| {
                    let p = t.peers.get(i)?.as_ref()?;
                    Some(lock(p).public_key[0])
                });
                assert_eq!(got, want, "owner of {u} at step {step}");
            }
            for &k in &model.peers {
                let got: BTreeSet<IpCidr> = list(&t, k).into_iter().collect();
                let want: BTreeSet<IpCidr> = model
                    .owner
                    .iter()
                    .filter(|(_, o)| **o == k)
                    .map(|(c, _)| *c)
                    .collect();
                assert_eq!(got, want, "peer {k}'s list at step {step}");
                assert_eq!(list(&t, k).len(), want.len(), "no duplicates");
            }
            assert_eq!(t.by_key.len(), model.peers.len());
            if !replace {
                for (k, p) in kept {
                    let now = t.by_key_ref(&[k; 32]).expect("unnamed peer kept").1;
                    assert!(Arc::ptr_eq(&p, &now), "peer {k} not named but replaced");
                }
            }
        }
    }
}
