//! The packet engine of one WireGuard interface: a TUN reader (IP packet -> allowed-IPs lookup ->
//! `Tunn` -> UDP), a UDP reader (datagram -> cookie/mac1 check -> peer by key or receiver index
//! -> `Tunn` -> source check -> TUN) and a timer thread (`update_timers` every 100 ms). Peer
//! state sits behind one mutex per peer. Bad datagrams and packets are counted and dropped,
//! never a panic; endpoints follow authenticated packets (roaming).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use gotatun::noise::errors::WireGuardError;
use gotatun::noise::handshake::parse_handshake_anon;
use gotatun::noise::index_table::IndexTable;
use gotatun::noise::rate_limiter::RateLimiter;
use gotatun::noise::{Tunn, TunnResult};
use gotatun::packet::{Packet, WgKind};
use gotatun::tun::MtuWatcher;
use gotatun::x25519::{PublicKey, StaticSecret};
use pqgate_core::wg::IpCidr;

use super::route::{self, AllowedIps};
use crate::net::tun::Tun;
use crate::net::udp;

/// How often the timer thread ticks, and how long blocking reads wait before checking `stop`.
pub const TICK: Duration = Duration::from_millis(100);
/// Handshake initiations per second per source address before cookies are required (gotatun's
/// device uses the same).
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// Largest datagram or TUN packet read.
const MAX_PACKET: usize = 65_536;

/// One configured peer.
pub struct PeerConfig {
    /// The peer's static public key.
    pub public_key: [u8; 32],
    /// Pre-shared key, `None` for none.
    pub preshared_key: Option<[u8; 32]>,
    /// Prefixes routed to the peer and accepted as inner source addresses from it.
    pub allowed_ips: Vec<IpCidr>,
    /// Where to send before the peer has sent anything.
    pub endpoint: Option<SocketAddr>,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
}

struct Peer {
    tunn: Tunn,
    public_key: [u8; 32],
    endpoint: Option<SocketAddr>,
    allowed_ips: Vec<IpCidr>,
    /// Wall-clock time of the last handshake as last reported, kept stable across reads.
    last_handshake: Option<SystemTime>,
}

type PeerRef = Arc<Mutex<Peer>>;

/// The interface's static key pair and the handshake rate limiter keyed from it.
#[derive(Clone)]
struct Keys {
    private: StaticSecret,
    public: PublicKey,
    rate_limiter: Arc<RateLimiter>,
}

impl Keys {
    fn new(private_key: [u8; 32]) -> Self {
        let private = StaticSecret::from(private_key);
        let public = PublicKey::from(&private);
        let rate_limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        Self {
            private,
            public,
            rate_limiter,
        }
    }
}

fn lock(p: &PeerRef) -> MutexGuard<'_, Peer> {
    // A poisoned peer (a panic elsewhere) still holds consistent gotatun state.
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// The peer set. Slots are never reused, so a stale receiver index can only name a removed
/// peer (`None`), never a different one.
#[derive(Default)]
struct Table {
    peers: Vec<Option<PeerRef>>,
    by_key: HashMap<[u8; 32], usize>,
    routes: AllowedIps,
}

/// One peer as `get` reports it.
#[derive(Clone, Debug)]
pub struct PeerStatus {
    /// Static public key.
    pub public_key: [u8; 32],
    /// Pre-shared key, `None` for none.
    pub preshared_key: Option<[u8; 32]>,
    /// Current endpoint.
    pub endpoint: Option<SocketAddr>,
    /// Wall-clock time of the last completed handshake.
    pub last_handshake: Option<SystemTime>,
    /// Data bytes sent.
    pub tx_bytes: u64,
    /// Data bytes received.
    pub rx_bytes: u64,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
    /// Allowed IPs.
    pub allowed_ips: Vec<IpCidr>,
}

/// One peer's part of a configuration change (`set`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerChange {
    /// Which peer.
    pub public_key: [u8; 32],
    /// Remove the peer.
    pub remove: bool,
    /// Change only an existing peer; never create one.
    pub update_only: bool,
    /// New pre-shared key (`Some(None)` removes it).
    pub preshared_key: Option<Option<[u8; 32]>>,
    /// New endpoint.
    pub endpoint: Option<SocketAddr>,
    /// New keepalive interval (`Some(None)` disables it).
    pub persistent_keepalive: Option<Option<u16>>,
    /// Drop the current allowed IPs before adding `allowed_ips`.
    pub replace_allowed_ips: bool,
    /// Allowed IPs to add.
    pub allowed_ips: Vec<IpCidr>,
}

/// What a change did to the routed prefixes, for the host routing table.
#[derive(Debug, Default, PartialEq)]
pub struct RouteDelta {
    /// Prefixes no peer holds any more.
    pub removed: Vec<IpCidr>,
    /// Prefixes newly held by some peer.
    pub added: Vec<IpCidr>,
}

/// Packets dropped, by reason, and packets carried.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams that are not WireGuard messages, or fail mac1.
    pub garbage: AtomicU64,
    /// Datagrams for no known peer or index.
    pub unknown_peer: AtomicU64,
    /// Replayed or too old data.
    pub replay: AtomicU64,
    /// Failed decryption or handshake authentication.
    pub decrypt: AtomicU64,
    /// Other protocol errors reported by the core.
    pub protocol: AtomicU64,
    /// TUN packets with no peer for the destination (or not IP).
    pub no_route: AtomicU64,
    /// Packets for a peer with no known endpoint.
    pub no_endpoint: AtomicU64,
    /// Decrypted packets whose source is outside the peer's allowed IPs.
    pub bad_source: AtomicU64,
    /// Packets written to the TUN.
    pub rx_packets: AtomicU64,
    /// Datagrams sent.
    pub tx_datagrams: AtomicU64,
    /// Send or TUN write errors.
    pub io_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A running interface's shared state.
pub struct Engine {
    tun: Tun,
    sock: UdpSocket,
    sock_is_v6: bool,
    mtu: u16,
    keys: RwLock<Keys>,
    index_table: IndexTable,
    table: RwLock<Table>,
    by_index: Mutex<HashMap<u32, usize>>,
    /// Set to make every thread return.
    pub stop: AtomicBool,
    /// Drop and traffic counters.
    pub counters: Counters,
}

impl Engine {
    /// Builds the engine over an open TUN and a bound socket.
    pub fn new(
        tun: Tun,
        sock: UdpSocket,
        mtu: u16,
        private_key: [u8; 32],
        peers: Vec<PeerConfig>,
    ) -> io::Result<Self> {
        let sock_is_v6 = sock.local_addr()?.is_ipv6();
        sock.set_read_timeout(Some(TICK))?;
        let keys = Keys::new(private_key);
        let snapshot = keys.clone();
        let index_table = IndexTable::from_os_rng();
        let engine = Self {
            tun,
            sock,
            sock_is_v6,
            mtu,
            keys: RwLock::new(snapshot),
            index_table,
            table: RwLock::new(Table::default()),
            by_index: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        };
        {
            let mut t = engine.table_mut();
            for p in peers {
                let i = t.peers.len();
                t.routes.insert(&p.allowed_ips, i);
                t.by_key.insert(p.public_key, i);
                let tunn =
                    engine.new_tunn(&keys, p.public_key, p.preshared_key, p.persistent_keepalive);
                t.peers.push(Some(Arc::new(Mutex::new(Peer {
                    tunn,
                    public_key: p.public_key,
                    endpoint: p.endpoint,
                    allowed_ips: p.allowed_ips,
                    last_handshake: None,
                }))));
            }
        }
        Ok(engine)
    }

    fn new_tunn(
        &self,
        k: &Keys,
        key: [u8; 32],
        psk: Option<[u8; 32]>,
        keepalive: Option<u16>,
    ) -> Tunn {
        Tunn::new(
            k.private.clone(),
            PublicKey::from(key),
            psk,
            keepalive,
            self.index_table.clone(),
            k.rate_limiter.clone(),
        )
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn table_mut(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The interface's private key (as configured).
    pub fn private_key(&self) -> [u8; 32] {
        self.keys().private.to_bytes()
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

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

    /// The bound UDP address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    fn peer(&self, i: usize) -> Option<PeerRef> {
        self.table().peers.get(i).cloned().flatten()
    }

    fn index_map(&self) -> MutexGuard<'_, HashMap<u32, usize>> {
        self.by_index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a message to `to`, first noting the receiver index a handshake message claims.
    fn send(&self, peer: usize, packet: WgKind, to: SocketAddr) {
        match &packet {
            WgKind::HandshakeInit(p) => {
                self.index_map().insert(p.sender_idx.get(), peer);
            }
            WgKind::HandshakeResp(p) => {
                self.index_map().insert(p.sender_idx.get(), peer);
            }
            _ => {}
        }
        let bytes = Packet::from(packet);
        let to = udp::to_socket_family(self.sock_is_v6, to);
        match self.sock.send_to(bytes.as_ref(), to) {
            Ok(_) => bump(&self.counters.tx_datagrams),
            Err(_) => bump(&self.counters.io_errors),
        }
    }

    /// TUN -> peers, until `stop`.
    pub fn run_tun(&self) -> io::Result<()> {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut mtu = MtuWatcher::new(self.mtu);
        while !self.stop.load(Ordering::Relaxed) {
            let Some(n) = self.tun.read_timeout(&mut buf, TICK)? else {
                continue;
            };
            let packet = buf.get(..n).unwrap_or_default();
            let found = route::destination(packet).and_then(|d| {
                let t = self.table();
                let i = t.routes.lookup(d)?;
                Some((i, t.peers.get(i).cloned().flatten()?))
            });
            let Some((i, peer)) = found else {
                bump(&self.counters.no_route);
                continue;
            };
            let mut peer = lock(&peer);
            let out = peer
                .tunn
                .handle_outgoing_packet(Packet::from_bytes(BytesMut::from(packet)), Some(&mut mtu));
            let endpoint = peer.endpoint;
            drop(peer);
            match (out, endpoint) {
                (Some(p), Some(to)) => self.send(i, p, to),
                (Some(_), None) => bump(&self.counters.no_endpoint),
                (None, _) => {}
            }
        }
        Ok(())
    }

    /// UDP -> peers -> TUN, until `stop`.
    pub fn run_udp(&self) -> io::Result<()> {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut mtu = MtuWatcher::new(self.mtu);
        while !self.stop.load(Ordering::Relaxed) {
            let (n, src) = match self.sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                // ICMP errors from earlier sends surface here: not fatal.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            let src = udp::canonical(src);
            let datagram = BytesMut::from(buf.get(..n).unwrap_or_default());
            self.datagram(Packet::from_bytes(datagram), src, &mut mtu);
        }
        Ok(())
    }

    fn datagram(&self, packet: Packet, src: SocketAddr, mtu: &mut MtuWatcher) {
        let keys = self.keys();
        let message = match keys.rate_limiter.verify_packet(src, packet) {
            Ok(m) => m,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                let bytes = Packet::from(cookie);
                let to = udp::to_socket_family(self.sock_is_v6, src);
                let _ = self.sock.send_to(bytes.as_ref(), to);
                return;
            }
            Err(_) => return bump(&self.counters.garbage),
        };
        let initiator = match &message {
            WgKind::HandshakeInit(p) => parse_handshake_anon(&keys.private, &keys.public, p)
                .ok()
                .map(|h| h.peer_static_public),
            _ => None,
        };
        // Never hold `keys` while taking `table` (set_private_key takes them the other way).
        drop(keys);
        let peer_index = match &message {
            WgKind::HandshakeInit(_) => {
                initiator.and_then(|k| self.table().by_key.get(&k).copied())
            }
            WgKind::HandshakeResp(p) => self.index_map().get(&p.receiver_idx.get()).copied(),
            WgKind::CookieReply(p) => self.index_map().get(&p.receiver_idx.get()).copied(),
            WgKind::Data(p) => self.index_map().get(&p.header.receiver_idx.get()).copied(),
        };
        let Some(i) = peer_index else {
            return bump(&self.counters.unknown_peer);
        };
        let Some(peer) = self.peer(i) else {
            return bump(&self.counters.unknown_peer);
        };
        let mut peer = lock(&peer);
        match peer.tunn.handle_incoming_packet(message) {
            TunnResult::Done => {}
            TunnResult::Err(e) => self.count_error(&e),
            TunnResult::WriteToNetwork(reply) => {
                peer.endpoint = Some(src);
                let queued: Vec<WgKind> = peer.tunn.get_queued_packets(mtu).collect();
                drop(peer);
                self.send(i, reply, src);
                for q in queued {
                    self.send(i, q, src);
                }
            }
            TunnResult::WriteToTunnel(inner) => {
                peer.endpoint = Some(src);
                if inner.is_empty() {
                    return; // keepalive
                }
                let allowed = route::source(&inner)
                    .is_some_and(|s| peer.allowed_ips.iter().any(|c| c.contains(s)));
                drop(peer);
                if !allowed {
                    return bump(&self.counters.bad_source);
                }
                match self.tun.write(&inner) {
                    Ok(_) => bump(&self.counters.rx_packets),
                    Err(_) => bump(&self.counters.io_errors),
                }
            }
        }
    }

    fn count_error(&self, e: &WireGuardError) {
        let c = &self.counters;
        match e {
            WireGuardError::DuplicateCounter | WireGuardError::InvalidCounter => bump(&c.replay),
            WireGuardError::InvalidAeadTag | WireGuardError::InvalidMac => bump(&c.decrypt),
            WireGuardError::NoCurrentSession | WireGuardError::WrongIndex => bump(&c.unknown_peer),
            _ => bump(&c.protocol),
        }
    }

    /// Timers (handshake retries, rekeys, keepalives), until `stop`.
    pub fn run_timers(&self) -> io::Result<()> {
        let mut last_prune = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            let list: Vec<(usize, PeerRef)> = self
                .table()
                .peers
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((i, p.clone()?)))
                .collect();
            for (i, peer) in list {
                let mut peer = lock(&peer);
                let out = peer.tunn.update_timers();
                let endpoint = peer.endpoint;
                drop(peer);
                if let (Ok(Some(p)), Some(to)) = (out, endpoint) {
                    self.send(i, p, to);
                }
            }
            if last_prune.elapsed() >= Duration::from_secs(5) {
                last_prune = Instant::now();
                self.index_map()
                    .retain(|idx, _| self.index_table.in_use(*idx));
            }
        }
        Ok(())
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
