//! The packet engine of one WireGuard interface: per queue a TUN reader (IP packets -> allowed-IPs
//! lookup -> `Tunn` -> batched UDP) and a UDP reader (datagrams -> peer by receiver index ->
//! `Tunn` -> source check -> coalesced TUN writes), a handshake thread (cookie/mac1 check -> peer
//! by key or receiver index -> `Tunn`) and a timer thread (`update_timers` every 100 ms for
//! active peers, every 2 s for idle ones). Peer state sits behind one mutex per peer. Bad
//! datagrams and packets are counted and dropped, never a panic; endpoints follow authenticated
//! packets (roaming).
//!
//! The TUN queues and UDP sockets come in through the `transport` seam ([`TunQueue`],
//! [`UdpTransport`]): the kernel's by default, in-memory ones in the tests (`memory`, `tests`),
//! which run two engines against each other without root.
//!
//! Layout: this file holds the shared state; `peers` the peer set and its changes,
//! `datapath` the outbound path (TUN -> UDP), `inbound` UDP -> TUN, `handshake` the handshake
//! thread and under-load cookies, `timers` the timer thread.

mod agile;
#[cfg(test)]
pub(crate) use agile::{AgileError, SWITCH_AFTER_MS};
pub(crate) use agile::{AgileInstall, AgileStatus, switch_after_ms};
mod datapath;
mod handshake;
mod inbound;
#[cfg(test)]
pub(crate) mod memory;
mod peers;
#[cfg(test)]
mod tests;
mod timers;
mod transport;
pub(crate) use transport::{KernelUdp, TunQueue, UdpTransport};

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use gotatun::noise::Tunn;
use gotatun::noise::index_table::IndexTable;
use gotatun::noise::rate_limiter::RateLimiter;
use gotatun::x25519::{PublicKey, StaticSecret};
use pqgate_core::wg::IpCidr;

use crate::net::tun::{Tun, TunOffloads};
use crate::wg::shared_port::{QuicSender, SharedPort};
use pqgate_core::wg::allowed_ips::AllowedIps;

/// How often the timer thread ticks, and how long blocking reads wait before checking `stop`.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Handshake initiations per second per source address before cookies are required (gotatun's
/// device uses the same).
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// Largest TUN read: a virtio-net header and a 64 KiB GSO super-packet.
const MAX_PACKET: usize = 65_536 + pqgate_core::offload::VNET_HDR_LEN;

/// One configured peer.
pub(crate) struct PeerConfig {
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
    /// Traffic and handshake counts.
    stats: PeerCounts,
    /// What the timer thread last saw of this peer (how often it needs ticking).
    watch: timers::Watch,
    /// Agile tunnel keys, when the PQ channel installed some: data goes agile-sealed.
    agile: Option<agile::AgileSession>,
}

/// One peer's packet and handshake counts (under the peer's lock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerCounts {
    /// Data packets sent (keepalives excluded).
    pub tx_packets: u64,
    /// Data packets received and delivered to the TUN.
    pub rx_packets: u64,
    /// Completed handshakes (as initiator or responder).
    pub handshakes: u64,
    /// Of `tx_packets`, those sealed by the agile tunnel.
    pub agile_tx_packets: u64,
    /// Of `rx_packets`, those opened by the agile tunnel.
    pub agile_rx_packets: u64,
    /// Agile datagram bytes sent (keepalives included), beside WireGuard's own count.
    pub agile_tx_bytes: u64,
    /// Agile datagram bytes received and authenticated.
    pub agile_rx_bytes: u64,
    /// Agile key updates inside an epoch, both directions (sender and receiver side).
    pub agile_key_updates: u64,
    /// Pending agile send keys the sealer refused (the peer stays on its previous epoch).
    pub agile_switch_failures: u64,
}

type PeerRef = Arc<Mutex<Peer>>;

/// The interface's static key pair and the handshake rate limiters keyed from it: `rate_limiter`
/// asks for a cookie above [`HANDSHAKE_RATE_LIMIT`] per source per second, `under_load` from the
/// first handshake (used while the handshake queue is backed up).
#[derive(Clone)]
struct Keys {
    private: StaticSecret,
    public: PublicKey,
    rate_limiter: Arc<RateLimiter>,
    under_load: Arc<RateLimiter>,
}

impl Keys {
    fn new(private_key: [u8; 32]) -> Self {
        let private = StaticSecret::from(private_key);
        let public = PublicKey::from(&private);
        let rate_limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        let under_load = Arc::new(RateLimiter::new(&public, 0));
        Self {
            private,
            public,
            rate_limiter,
            under_load,
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
    /// Peers just added or changed, for the timer thread to tick at the fine rate.
    wake: Mutex<Vec<usize>>,
}

/// One peer as `get` reports it.
#[derive(Clone, Debug)]
pub(crate) struct PeerStatus {
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
    /// Packet and handshake counts.
    pub counts: PeerCounts,
    /// The agile tunnel, when the PQ channel installed keys.
    pub agile: Option<AgileStatus>,
}

/// One peer's part of a configuration change (`set`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PeerChange {
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
pub(crate) struct RouteDelta {
    /// Prefixes no peer holds any more.
    pub removed: Vec<IpCidr>,
    /// Prefixes newly held by some peer.
    pub added: Vec<IpCidr>,
}

/// Packets dropped, by reason, and packets carried.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Datagrams that are not WireGuard messages, or fail mac1.
    pub garbage: AtomicU64,
    /// Datagrams for no known peer or index.
    pub unknown_peer: AtomicU64,
    /// Replayed or too old data.
    pub replay: AtomicU64,
    /// Failed decryption or handshake authentication.
    pub decrypt: AtomicU64,
    /// Other protocol errors reported by the core, and decrypted packets whose IP header
    /// claims more bytes than were carried.
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
    /// TUN reads the offload codec refused (bad virtio-net header or GSO packet).
    pub tun_malformed: AtomicU64,
    /// Packets dropped because a bounded queue (handshake queue, staging) was full.
    pub queue_full: AtomicU64,
    /// Handshake messages answered with a cookie reply (under load or rate-limited).
    pub cookies_sent: AtomicU64,
    /// Packets opened by the agile tunnel (delivered to the TUN).
    pub agile_rx: AtomicU64,
    /// Packets sealed by the agile tunnel.
    pub agile_tx: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A running interface's shared state, over TUN queues `T` and UDP sockets `U` (the kernel's by
/// default; see [`TunQueue`] and [`UdpTransport`]).
pub(crate) struct Engine<T = Tun, U = KernelUdp> {
    /// TUN queues (one file descriptor each; at least one).
    tuns: Vec<T>,
    /// UDP sockets sharing the port (SO_REUSEPORT when more than one; at least one), with the
    /// GSO/GRO probed on each.
    socks: Vec<U>,
    sock_is_v6: bool,
    mtu: u16,
    keys: RwLock<Keys>,
    index_table: IndexTable,
    table: RwLock<Table>,
    by_index: Mutex<HashMap<u32, usize>>,
    /// Handshake messages waiting for the handshake thread.
    handshakes_queued: AtomicUsize,
    /// When the handshake queue was last backed up (ms since `started`).
    loaded_at_ms: AtomicU64,
    started: Instant,
    /// Agile receiver index -> the peer slots holding it (almost always one).
    agile_index: Mutex<HashMap<u32, Vec<usize>>>,
    /// Where QUIC datagrams on the tunnel port go, once a QUIC endpoint shares it.
    quic: OnceLock<QuicSender>,
    /// Set to make every thread return.
    pub stop: AtomicBool,
    /// SO_MARK of the tunnel's sockets (0: none), as last set.
    fwmark: AtomicU32,
    /// Drop and traffic counters.
    pub counters: Counters,
}

impl Engine {
    /// Builds the engine over the queues of one TUN ([`Tun::open_queues`]) and sockets bound to
    /// one port ([`crate::net::udp::bind_many`]): one outbound thread per TUN queue and one
    /// inbound thread per socket. `udp_offload`: use UDP GSO/GRO where the kernel has them.
    pub(crate) fn with_queues(
        tuns: Vec<Tun>,
        socks: Vec<UdpSocket>,
        udp_offload: bool,
        mtu: u16,
        private_key: [u8; 32],
        peers: Vec<PeerConfig>,
    ) -> io::Result<Self> {
        let socks = socks
            .into_iter()
            .map(|s| KernelUdp::new(s, udp_offload))
            .collect();
        Self::with_transports(tuns, socks, mtu, private_key, peers)
    }
}

impl<T: TunQueue> Engine<T, KernelUdp> {
    /// Shares the tunnel's UDP port with a QUIC endpoint: datagrams whose first byte has the
    /// QUIC fixed bit go to the returned socket (build the quinn endpoint on it with
    /// `Endpoint::new_with_abstract_socket`). Once per engine.
    pub(crate) fn share_port_with_quic(&self) -> io::Result<SharedPort> {
        let (port, sender) = SharedPort::new(self.socks[0].socket().try_clone()?)?;
        self.quic.set(sender).map_err(|_| {
            io::Error::new(io::ErrorKind::AlreadyExists, "the port is already shared")
        })?;
        Ok(port)
    }
}

impl<T: TunQueue, U: UdpTransport> Engine<T, U> {
    /// Builds the engine over any TUN queues and UDP sockets of one port (at least one of each):
    /// one outbound thread per TUN queue and one inbound thread per socket.
    pub(crate) fn with_transports(
        tuns: Vec<T>,
        socks: Vec<U>,
        mtu: u16,
        private_key: [u8; 32],
        peers: Vec<PeerConfig>,
    ) -> io::Result<Self> {
        let first = socks
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no UDP socket"))?;
        if tuns.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no TUN queue"));
        }
        let sock_is_v6 = first.local_addr()?.is_ipv6();
        for sock in &socks {
            sock.set_read_timeout(Some(TICK))?;
        }
        let keys = Keys::new(private_key);
        let snapshot = keys.clone();
        let index_table = IndexTable::from_os_rng();
        let engine = Self {
            tuns,
            socks,
            sock_is_v6,
            mtu,
            keys: RwLock::new(snapshot),
            index_table,
            table: RwLock::new(Table::default()),
            by_index: Mutex::new(HashMap::new()),
            handshakes_queued: AtomicUsize::new(0),
            loaded_at_ms: AtomicU64::new(0),
            started: Instant::now(),
            agile_index: Mutex::new(HashMap::new()),
            quic: OnceLock::new(),
            stop: AtomicBool::new(false),
            fwmark: AtomicU32::new(0),
            counters: Counters::default(),
        };
        engine.add_configured(peers);
        Ok(engine)
    }

    /// Sets SO_MARK on every tunnel socket (0 clears it; needs CAP_NET_ADMIN), as `fwmark` in
    /// the config and `wg set IFACE fwmark` do. On an error the sockets set before it keep the
    /// new mark and the reported one stays the old: set it again.
    pub(crate) fn set_fwmark(&self, mark: u32) -> io::Result<()> {
        for sock in &self.socks {
            sock.set_fwmark(mark)?;
        }
        self.fwmark.store(mark, Ordering::Relaxed);
        Ok(())
    }

    /// The tunnel sockets' SO_MARK (0: none).
    pub(crate) fn fwmark(&self) -> u32 {
        self.fwmark.load(Ordering::Relaxed)
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
    pub(crate) fn private_key(&self) -> [u8; 32] {
        self.keys().private.to_bytes()
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The offloads in use: TUN (virtio-net header, TSO, USO) and UDP (GSO, GRO).
    pub(crate) fn offloads(&self) -> (TunOffloads, bool, bool) {
        let udp = &self.socks[0];
        (self.tuns[0].offloads(), udp.gso(), udp.gro())
    }

    /// The data path's shape in one line: queues and offloads in use.
    pub(crate) fn describe_data_path(&self) -> String {
        let (tun, gso, gro) = self.offloads();
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "{} queue(s); offloads: TUN vnet-hdr {}, TSO {}, USO {}; UDP GSO {}, GRO {}",
            self.tuns.len(),
            on(tun.vnet_hdr),
            on(tun.tso),
            on(tun.uso),
            on(gso),
            on(gro)
        )
    }

    /// The tunnel MTU.
    pub(crate) fn mtu(&self) -> usize {
        usize::from(self.mtu)
    }

    /// The bound UDP address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socks[0].local_addr()
    }

    fn peer(&self, i: usize) -> Option<PeerRef> {
        self.table().peers.get(i).cloned().flatten()
    }

    fn agile_index(&self) -> MutexGuard<'_, HashMap<u32, Vec<usize>>> {
        self.agile_index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn index_map(&self) -> MutexGuard<'_, HashMap<u32, usize>> {
        self.by_index.lock().unwrap_or_else(|e| e.into_inner())
    }
}
