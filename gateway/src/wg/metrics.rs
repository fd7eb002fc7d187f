//! Exports the engines' counters as Prometheus metrics: a sampler thread copies them into the
//! `metrics` recorder once a second. Handles are registered once per interface and peer and
//! then only stored into (atomics), so a round costs one lock per peer and no allocation for
//! known peers: cheap at 10,000 peers. Values are at most one sampling period old.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use metrics::{Counter, Gauge, counter, gauge};
use pqgate_core::wg::Key32;
use pqgate_core::wg::metrics::{self as m, DropReason};

use super::engine::{Counters, Engine, PeerStatus};

/// How often the counters are copied.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// The engines to sample, by interface name; replaced on reload.
pub(crate) type Sources = Arc<Mutex<Vec<(String, Arc<Engine>)>>>;

struct PeerHandles {
    labels: [(&'static str, String); 2],
    rx_bytes: Counter,
    tx_bytes: Counter,
    rx_packets: Counter,
    tx_packets: Counter,
    handshakes: Counter,
    last_handshake: Gauge,
    /// Registered once the peer has agile keys (most peers never do).
    agile: Option<AgileHandles>,
}

struct AgileHandles {
    tx_packets: Counter,
    rx_packets: Counter,
    key_updates: Counter,
    epoch: Gauge,
    generation: Gauge,
}

impl AgileHandles {
    fn new(labels: &[(&'static str, String)]) -> Self {
        Self {
            tx_packets: counter!(m::PEER_AGILE_TX_PACKETS, labels),
            rx_packets: counter!(m::PEER_AGILE_RX_PACKETS, labels),
            key_updates: counter!(m::PEER_AGILE_KEY_UPDATES, labels),
            epoch: gauge!(m::PEER_AGILE_EPOCH, labels),
            generation: gauge!(m::PEER_AGILE_GENERATION, labels),
        }
    }

    fn store(&self, p: &PeerStatus) {
        self.tx_packets.absolute(p.counts.agile_tx_packets);
        self.rx_packets.absolute(p.counts.agile_rx_packets);
        self.key_updates.absolute(p.counts.agile_key_updates);
        let send = p.agile.as_ref().and_then(|a| a.send_epoch);
        self.epoch.set(send.map_or(-1.0, |e| e as f64));
        let generation = p.agile.as_ref().map_or(0, |a| a.send_generation);
        self.generation.set(generation as f64);
    }
}

impl PeerHandles {
    fn new(iface: &str, key: &[u8; 32]) -> Self {
        let labels = [
            ("interface", iface.to_owned()),
            ("peer", Key32::from_bytes(*key).to_base64()),
        ];
        Self {
            rx_bytes: counter!(m::PEER_RX_BYTES, &labels),
            tx_bytes: counter!(m::PEER_TX_BYTES, &labels),
            rx_packets: counter!(m::PEER_RX_PACKETS, &labels),
            tx_packets: counter!(m::PEER_TX_PACKETS, &labels),
            handshakes: counter!(m::PEER_HANDSHAKES, &labels),
            last_handshake: gauge!(m::PEER_LAST_HANDSHAKE_SECONDS, &labels),
            agile: None,
            labels,
        }
    }

    fn store(&mut self, p: &PeerStatus, now: SystemTime) {
        if p.agile.is_some() && self.agile.is_none() {
            self.agile = Some(AgileHandles::new(&self.labels));
        }
        if let Some(a) = &self.agile {
            a.store(p);
        }
        self.rx_bytes.absolute(p.rx_bytes);
        self.tx_bytes.absolute(p.tx_bytes);
        self.rx_packets.absolute(p.counts.rx_packets);
        self.tx_packets.absolute(p.counts.tx_packets);
        self.handshakes.absolute(p.counts.handshakes);
        let age = p
            .last_handshake
            .map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64());
        self.last_handshake.set(age.unwrap_or(-1.0));
    }
}

struct InterfaceHandles {
    drops: Vec<(DropReason, Counter)>,
    cookies: Counter,
    peers: Gauge,
}

impl InterfaceHandles {
    fn new(iface: &str) -> Self {
        let drops = DropReason::ALL
            .iter()
            .map(|&r| {
                let labels = [
                    ("interface", iface.to_owned()),
                    ("reason", r.label().to_owned()),
                ];
                (r, counter!(m::DROPS, &labels))
            })
            .collect();
        Self {
            drops,
            cookies: counter!(m::COOKIES_SENT, "interface" => iface.to_owned()),
            peers: gauge!(m::PEERS, "interface" => iface.to_owned()),
        }
    }

    fn store(&self, c: &Counters, peers: usize) {
        for (r, h) in &self.drops {
            h.absolute(drop_count(c, *r).load(Ordering::Relaxed));
        }
        self.cookies
            .absolute(c.cookies_sent.load(Ordering::Relaxed));
        self.peers.set(peers as f64);
    }
}

/// The engine counter behind a drop reason.
fn drop_count(c: &Counters, r: DropReason) -> &AtomicU64 {
    match r {
        DropReason::NoRoute => &c.no_route,
        DropReason::BadSource => &c.bad_source,
        DropReason::Replay => &c.replay,
        DropReason::Decrypt => &c.decrypt,
        DropReason::QueueFull => &c.queue_full,
        DropReason::Garbage => &c.garbage,
        DropReason::UnknownPeer => &c.unknown_peer,
        DropReason::NoEndpoint => &c.no_endpoint,
        DropReason::Protocol => &c.protocol,
        DropReason::IoError => &c.io_errors,
        _ => &c.protocol,
    }
}

/// One interface's handles and its peers' handles, each with the round it was last seen in.
struct InterfaceCache {
    handles: InterfaceHandles,
    peers: HashMap<[u8; 32], (PeerHandles, u64)>,
    round: u64,
}

/// The sampler's caches, kept between rounds.
#[derive(Default)]
struct Cache {
    round: u64,
    interfaces: HashMap<String, InterfaceCache>,
}

impl Cache {
    /// One round over every engine. Handles of peers and interfaces no longer present are
    /// dropped (their last values stay in the exporter's output).
    fn sample(&mut self, sources: &[(String, Arc<Engine>)]) {
        self.round += 1;
        let round = self.round;
        let now = SystemTime::now();
        for (name, engine) in sources {
            let peers = engine.peers();
            if !self.interfaces.contains_key(name) {
                let c = InterfaceCache {
                    handles: InterfaceHandles::new(name),
                    peers: HashMap::new(),
                    round,
                };
                self.interfaces.insert(name.clone(), c);
            }
            let Some(c) = self.interfaces.get_mut(name) else {
                continue;
            };
            c.round = round;
            c.handles.store(&engine.counters, peers.len());
            for p in &peers {
                let entry = c
                    .peers
                    .entry(p.public_key)
                    .or_insert_with(|| (PeerHandles::new(name, &p.public_key), round));
                entry.0.store(p, now);
                entry.1 = round;
            }
            if c.peers.len() > peers.len() {
                c.peers.retain(|_, (_, r)| *r == round);
            }
        }
        if self.interfaces.len() > sources.len() {
            self.interfaces.retain(|_, c| c.round == round);
        }
    }
}

/// The sampler thread; stops and joins on drop.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `sources` every [`PERIOD`] (and once right away).
    pub(crate) fn start(sources: Sources) -> std::io::Result<Self> {
        describe();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("wg-metrics".to_owned())
            .spawn(move || {
                let mut cache = Cache::default();
                while !flag.load(Ordering::Relaxed) {
                    let list = sources.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    cache.sample(&list);
                    drop(list);
                    sleep_unless(&flag, PERIOD);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

/// Sleeps `total` in short steps, returning early once `stop` is set.
fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(100);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let d = left.min(step);
        thread::sleep(d);
        left -= d;
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        m::PEER_RX_BYTES,
        Unit::Bytes,
        "WireGuard data bytes received from a peer"
    );
    describe_counter!(
        m::PEER_TX_BYTES,
        Unit::Bytes,
        "WireGuard data bytes sent to a peer"
    );
    describe_counter!(
        m::PEER_RX_PACKETS,
        "WireGuard data packets received from a peer"
    );
    describe_counter!(m::PEER_TX_PACKETS, "WireGuard data packets sent to a peer");
    describe_counter!(
        m::PEER_HANDSHAKES,
        "Completed WireGuard handshakes with a peer"
    );
    describe_gauge!(
        m::PEER_LAST_HANDSHAKE_SECONDS,
        Unit::Seconds,
        "Seconds since the last completed handshake with a peer (-1: none yet)"
    );
    describe_counter!(
        m::PEER_AGILE_TX_PACKETS,
        "Data packets sent to a peer through the agile tunnel"
    );
    describe_counter!(
        m::PEER_AGILE_RX_PACKETS,
        "Data packets received from a peer through the agile tunnel"
    );
    describe_counter!(
        m::PEER_AGILE_KEY_UPDATES,
        "Agile tunnel key updates inside an epoch with a peer (both directions)"
    );
    describe_gauge!(
        m::PEER_AGILE_EPOCH,
        "Epoch a peer's agile data is sent under (-1: none yet)"
    );
    describe_gauge!(
        m::PEER_AGILE_GENERATION,
        "Key generation a peer's agile data is sent under within its epoch"
    );
    describe_gauge!(m::PEERS, "Configured WireGuard peers");
    describe_counter!(
        m::DROPS,
        "Dropped WireGuard packets and datagrams by reason"
    );
    describe_counter!(
        m::COOKIES_SENT,
        "Handshake messages answered with a cookie reply"
    );
}
