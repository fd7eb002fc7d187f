//! Engine tests over the in-memory transports ([`super::memory`]): two engines, each running its
//! own TUN, UDP, handshake and timer threads exactly as an interface does, exchange WireGuard
//! over a [`MemNet`]; no root, no network namespace. Every wait is bounded by [`WAIT`].
//! Here: the harness and the plain data path; `agile`, `offload`, `adversity` and `handshakes`
//! hold the rest.

mod adversity;
mod agile;
mod handshakes;
mod offload;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gotatun::x25519::{PublicKey, StaticSecret};
use pqgate_core::offload::csum;

use super::memory::{MemNet, MemTun, MemUdp, TunHandle, mem_tun};
use super::{Engine, PeerConfig, PeerStatus};
use crate::net::tun::TunOffloads;

/// The engine over the in-memory transports.
type MemEngine = Engine<MemTun, MemUdp>;

/// The longest any test waits for one thing to happen.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure something does not happen.
const QUIET: Duration = Duration::from_millis(300);
const MTU: u16 = 1420;

const A_KEY: [u8; 32] = [0xa1; 32];
const B_KEY: [u8; 32] = [0xb2; 32];
const A_IP: [u8; 4] = [10, 0, 0, 1];
const B_IP: [u8; 4] = [10, 0, 0, 2];

fn a_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 51820))
}

fn b_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 2], 51820))
}

fn public_of(private: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(private)).to_bytes()
}

/// One engine on the in-memory network with its threads; stopped (and its threads' results
/// checked) when dropped.
struct Node {
    engine: Arc<MemEngine>,
    tun: TunHandle,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl Node {
    /// Starts an engine with key `private` bound at `addr` (`offload`: vnet header with TSO on
    /// the TUN and GSO-style batches on the UDP side).
    fn start(
        net: &MemNet,
        private: [u8; 32],
        addr: SocketAddr,
        offload: bool,
        peers: Vec<PeerConfig>,
    ) -> Self {
        let offloads = TunOffloads {
            vnet_hdr: offload,
            tso: offload,
            uso: false,
        };
        let (tun, handle) = mem_tun(offloads);
        let udp = net.bind(addr, offload);
        let engine = Engine::with_transports(vec![tun], vec![udp], MTU, private, peers)
            .expect("engine over in-memory transports");
        let engine = Arc::new(engine);
        let jobs: [fn(&MemEngine) -> io::Result<()>; 3] =
            [Engine::run_tun, Engine::run_udp, Engine::run_timers];
        let threads = jobs
            .into_iter()
            .map(|job| {
                let e = Arc::clone(&engine);
                std::thread::spawn(move || job(&e))
            })
            .collect();
        Self {
            engine,
            tun: handle,
            threads,
        }
    }

    /// The node's only peer, as `get` reports it.
    fn peer(&self) -> PeerStatus {
        let mut peers = self.engine.peers();
        assert_eq!(peers.len(), 1, "one peer");
        peers.remove(0)
    }

    /// The node's UDP socket.
    fn udp(&self) -> &MemUdp {
        &self.engine.socks[0]
    }

    /// The next `n` TUN writes, each within [`WAIT`].
    fn written(&self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                self.tun
                    .written(WAIT)
                    .unwrap_or_else(|| panic!("TUN write {i} of {n} never came"))
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.engine.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let r = t.join();
            if !std::thread::panicking() {
                assert!(matches!(r, Ok(Ok(()))), "an engine thread failed: {r:?}");
            }
        }
    }
}

/// A peer entry for `public` routing `ip`/32.
fn peer(public: [u8; 32], ip: [u8; 4], endpoint: Option<SocketAddr>) -> PeerConfig {
    let cidr = format!("{}.{}.{}.{}/32", ip[0], ip[1], ip[2], ip[3]);
    PeerConfig {
        public_key: public,
        preshared_key: None,
        allowed_ips: vec![cidr.parse().expect("prefix")],
        endpoint,
        persistent_keepalive: None,
    }
}

/// Two engines: A (10.0.0.1, knows B's endpoint) and B (10.0.0.2, learns A's).
fn pair(net: &MemNet, offload: bool) -> (Node, Node) {
    let a_peer = peer(public_of(B_KEY), B_IP, Some(b_addr()));
    let b_peer = peer(public_of(A_KEY), A_IP, None);
    let a = Node::start(net, A_KEY, a_addr(), offload, vec![a_peer]);
    let b = Node::start(net, B_KEY, b_addr(), offload, vec![b_peer]);
    (a, b)
}

/// An IPv4 UDP packet (ports 4000 -> 5000, no UDP checksum) carrying `payload`.
fn udp_packet(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = ipv4_header(src, dst, 17, total, 0);
    p.extend_from_slice(&4000u16.to_be_bytes());
    p.extend_from_slice(&5000u16.to_be_bytes());
    p.extend_from_slice(&u16::try_from(total - 20).expect("length").to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// A 20-byte IPv4 header (DF set, TTL 64) with its checksum.
fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, total: usize, id: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&u16::try_from(total).expect("length").to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = csum::ipv4_header_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// `n` bytes that differ with `seed`.
fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Polls `done` until it holds, for at most [`WAIT`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Completes A's handshake with B by sending one packet, checked on arrival.
fn handshake(a: &Node, b: &Node) {
    let first = udp_packet(A_IP, B_IP, b"first");
    a.tun.inject(&first);
    assert_eq!(
        b.written(1),
        [first],
        "the first packet, after the handshake"
    );
}

#[test]
fn two_engines_handshake_and_carry_data_both_ways_byte_exact() {
    let net = MemNet::default();
    let (a, b) = pair(&net, false);
    handshake(&a, &b);
    let to_b: Vec<Vec<u8>> = (0..64)
        .map(|i| udp_packet(A_IP, B_IP, &payload(i * 21, 1)))
        .collect();
    let to_a: Vec<Vec<u8>> = (0..64)
        .map(|i| udp_packet(B_IP, A_IP, &payload(1300 - i * 20, 2)))
        .collect();
    for (x, y) in to_b.iter().zip(&to_a) {
        a.tun.inject(x);
        b.tun.inject(y);
    }
    assert_eq!(b.written(64), to_b, "A -> B, in order, byte-exact");
    assert_eq!(a.written(64), to_a, "B -> A, in order, byte-exact");
    let (pa, pb) = (a.peer(), b.peer());
    assert_eq!((pa.counts.handshakes, pb.counts.handshakes), (1, 1));
    assert_eq!((pa.counts.rx_packets, pb.counts.rx_packets), (64, 65));
    assert_eq!(pb.counts.tx_packets, 64);
    assert_eq!(pb.endpoint, Some(a_addr()), "B learnt A's endpoint");
    assert!(pa.last_handshake.is_some() && pb.last_handshake.is_some());
    // Counted just after each TUN write.
    wait_until("65 TUN writes counted", || {
        get(&b.engine.counters.rx_packets) == 65
    });
    for n in [&a, &b] {
        let c = &n.engine.counters;
        let dropped = [
            &c.garbage,
            &c.unknown_peer,
            &c.replay,
            &c.decrypt,
            &c.bad_source,
        ];
        assert!(dropped.iter().all(|c| get(c) == 0), "{c:?}");
    }
}

#[test]
fn unrouted_packets_and_bad_inner_sources_are_dropped() {
    let net = MemNet::default();
    let (a, b) = pair(&net, false);
    handshake(&a, &b);
    a.tun.inject(&udp_packet(A_IP, [10, 9, 9, 9], b"nowhere"));
    a.tun.inject(b"\x60 not an ip packet");
    wait_until("two no-route drops", || {
        get(&a.engine.counters.no_route) == 2
    });
    // A source B does not route to A: decrypted, then refused by cryptokey routing.
    a.tun.inject(&udp_packet([10, 0, 0, 7], B_IP, b"spoofed"));
    wait_until("a bad-source drop", || {
        get(&b.engine.counters.bad_source) == 1
    });
    assert_eq!(b.tun.written(QUIET), None, "nothing spoofed is delivered");
}

#[test]
fn the_transport_seam_reports_offloads_and_takes_the_fwmark() {
    let net = MemNet::default();
    let (a, _b) = pair(&net, false);
    let path = a.engine.describe_data_path();
    assert_eq!(
        path,
        "1 queue(s); offloads: TUN vnet-hdr off, TSO off, USO off; UDP GSO off, GRO off"
    );
    assert_eq!(a.engine.local_addr().expect("address"), a_addr());
    a.engine.set_fwmark(0x51).expect("fwmark");
    assert_eq!((a.engine.fwmark(), a.udp().fwmark()), (0x51, 0x51));
    let (c, _d) = pair(&MemNet::default(), true);
    let (tun, gso, gro) = c.engine.offloads();
    assert!(tun.vnet_hdr && tun.tso && !tun.uso && gso && gro);
}
