//! The packet engine of one WireGuard interface: a TUN reader (IP packet -> allowed-IPs lookup ->
//! `Tunn` -> UDP), a UDP reader (datagram -> cookie/mac1 check -> peer by key or receiver index
//! -> `Tunn` -> source check -> TUN) and a timer thread (`update_timers` every 100 ms). Peer
//! state sits behind one mutex per peer. Bad datagrams and packets are counted and dropped,
//! never a panic; endpoints follow authenticated packets (roaming).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    endpoint: Option<SocketAddr>,
    allowed_ips: Vec<IpCidr>,
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
    private: StaticSecret,
    public: PublicKey,
    rate_limiter: Arc<RateLimiter>,
    index_table: IndexTable,
    peers: Vec<Mutex<Peer>>,
    by_key: HashMap<[u8; 32], usize>,
    by_index: Mutex<HashMap<u32, usize>>,
    routes: AllowedIps,
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
        let private = StaticSecret::from(private_key);
        let public = PublicKey::from(&private);
        let rate_limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        let index_table = IndexTable::from_os_rng();
        let mut routes = AllowedIps::default();
        let mut by_key = HashMap::new();
        let mut list = Vec::with_capacity(peers.len());
        for (i, p) in peers.into_iter().enumerate() {
            routes.insert(&p.allowed_ips, i);
            by_key.insert(p.public_key, i);
            let tunn = Tunn::new(
                private.clone(),
                PublicKey::from(p.public_key),
                p.preshared_key,
                p.persistent_keepalive,
                index_table.clone(),
                rate_limiter.clone(),
            );
            list.push(Mutex::new(Peer {
                tunn,
                endpoint: p.endpoint,
                allowed_ips: p.allowed_ips,
            }));
        }
        Ok(Self {
            tun,
            sock,
            sock_is_v6,
            mtu,
            private,
            public,
            rate_limiter,
            index_table,
            peers: list,
            by_key,
            by_index: Mutex::new(HashMap::new()),
            routes,
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    fn peer(&self, i: usize) -> Option<MutexGuard<'_, Peer>> {
        // A poisoned peer (a panic elsewhere) still holds consistent gotatun state.
        self.peers
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
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
            let Some(i) = route::destination(packet).and_then(|d| self.routes.lookup(d)) else {
                bump(&self.counters.no_route);
                continue;
            };
            let Some(mut peer) = self.peer(i) else {
                continue;
            };
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
        let message = match self.rate_limiter.verify_packet(src, packet) {
            Ok(m) => m,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                let bytes = Packet::from(cookie);
                let to = udp::to_socket_family(self.sock_is_v6, src);
                let _ = self.sock.send_to(bytes.as_ref(), to);
                return;
            }
            Err(_) => return bump(&self.counters.garbage),
        };
        let peer_index = match &message {
            WgKind::HandshakeInit(p) => parse_handshake_anon(&self.private, &self.public, p)
                .ok()
                .and_then(|h| self.by_key.get(&h.peer_static_public).copied()),
            WgKind::HandshakeResp(p) => self.index_map().get(&p.receiver_idx.get()).copied(),
            WgKind::CookieReply(p) => self.index_map().get(&p.receiver_idx.get()).copied(),
            WgKind::Data(p) => self.index_map().get(&p.header.receiver_idx.get()).copied(),
        };
        let Some(i) = peer_index else {
            return bump(&self.counters.unknown_peer);
        };
        let Some(mut peer) = self.peer(i) else { return };
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
            for i in 0..self.peers.len() {
                let Some(mut peer) = self.peer(i) else {
                    continue;
                };
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
