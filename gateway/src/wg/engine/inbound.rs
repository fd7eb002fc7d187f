//! The inbound packet path: `recvmmsg` (+ UDP GRO) -> data messages decrypted inline by the peer
//! their receiver index names -> inner source check -> TCP/UDP coalescing -> one TUN write per
//! super-packet. Handshake messages go to a bounded queue served by their own thread
//! ([`super::handshake`]), so a handshake flood can never hold up established peers' data.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use bytes::BytesMut;
use gotatun::noise::TunnResult;
use gotatun::noise::errors::WireGuardError;
use gotatun::packet::{Packet, WgKind};
use pqgate_core::offload::Coalescer;

use super::handshake::{HANDSHAKE_QUEUE, Queued};
use super::{Engine, PeerRef, TunQueue, UdpTransport, bump, lock};
use crate::wg::shared_port::is_quic;
use pqgate_core::ip;

/// Largest super-packet the coalescer builds (IPv4's total-length limit).
const COALESCE_MAX: usize = 65_535;
/// WireGuard message type of transport data.
const MESSAGE_DATA: u8 = 4;

/// The peer of the last data message, so a run of datagrams for one peer looks it up once.
/// Cleared for every receive batch, so a removed peer stops within one batch.
type PeerCache = Option<(u32, usize, PeerRef)>;

impl<T: TunQueue, U: UdpTransport> Engine<T, U> {
    /// UDP -> peers -> TUN, until `stop`: one thread per socket (this one serves the first),
    /// and the handshake thread.
    pub(crate) fn run_udp(&self) -> io::Result<()> {
        let (queue, handshakes) = sync_channel::<Queued>(HANDSHAKE_QUEUE);
        std::thread::scope(|s| {
            let worker = s.spawn(|| self.run_handshakes(handshakes));
            let others: Vec<_> = (1..self.socks.len())
                .map(|q| {
                    let queue = queue.clone();
                    s.spawn(move || self.read_datagrams(q, queue))
                })
                .collect();
            let mut result = self.read_datagrams(0, queue);
            for t in others.into_iter().chain([worker]) {
                let r = t
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a UDP thread panicked")));
                result = result.and(r);
            }
            result
        })
    }

    fn read_datagrams(&self, q: usize, queue: SyncSender<Queued>) -> io::Result<()> {
        let sock = &self.socks[q];
        let tun = &self.tuns[q % self.tuns.len()];
        let mut recv = sock.recv_state();
        let vnet = tun.offloads().vnet_hdr;
        let mut coalescer = Coalescer::new(COALESCE_MAX, tun.offloads().uso);
        let mut cache: PeerCache;
        let result = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            cache = None;
            let got = sock.recv_batch(&mut recv, &mut |d, src| {
                self.datagram(d, src, &queue, &mut cache, &mut |inner: &[u8]| {
                    if vnet {
                        coalescer.push(inner, &mut |b| self.write_tun(tun, b));
                    } else {
                        self.write_tun(tun, inner);
                    }
                });
            });
            if let Err(e) = got {
                break Err(e);
            }
            coalescer.flush(&mut |b| self.write_tun(tun, b));
        };
        // Dropping `queue` ends the handshake thread.
        drop(queue);
        result
    }

    /// Sorts one datagram: data inline, handshakes to the queue, anything else counted.
    fn datagram(
        &self,
        d: BytesMut,
        src: SocketAddr,
        queue: &SyncSender<Queued>,
        cache: &mut PeerCache,
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        match d.first() {
            Some(&MESSAGE_DATA) => self.data(d, src, cache, deliver),
            Some(&pqgate_core::agile::MSG_TYPE) => self.agile_data(d, src, deliver),
            Some(1..=3) => self.enqueue_handshake(d, src, queue),
            Some(&b) if is_quic(b) => self.to_quic(d, src),
            _ => bump(&self.counters.garbage),
        }
    }

    /// A QUIC datagram: to the endpoint sharing the port, or garbage when there is none.
    fn to_quic(&self, d: BytesMut, src: SocketAddr) {
        let Some(quic) = self.quic.get() else {
            return bump(&self.counters.garbage);
        };
        if quic.try_send((d, src)).is_err() {
            bump(&self.counters.queue_full);
        }
    }

    fn enqueue_handshake(&self, d: BytesMut, src: SocketAddr, queue: &SyncSender<Queued>) {
        let depth = self.handshakes_queued.fetch_add(1, Ordering::Relaxed) + 1;
        self.note_load(depth);
        match queue.try_send(Queued { datagram: d, src }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.handshakes_queued.fetch_sub(1, Ordering::Relaxed);
                bump(&self.counters.queue_full);
            }
        }
    }

    /// A transport data message: decrypt with the peer the receiver index names.
    fn data(
        &self,
        d: BytesMut,
        src: SocketAddr,
        cache: &mut PeerCache,
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let message = match Packet::from_bytes(d).try_into_wg() {
            Ok(m @ WgKind::Data(_)) => m,
            _ => return bump(&self.counters.garbage),
        };
        let WgKind::Data(p) = &message else {
            return;
        };
        let idx = p.header.receiver_idx.get();
        let Some((i, peer_ref)) = self.peer_for_index(idx, cache) else {
            return bump(&self.counters.unknown_peer);
        };
        let mut peer = lock(&peer_ref);
        match peer.tunn.handle_incoming_packet(message) {
            TunnResult::Done => {}
            TunnResult::Err(e) => self.count_error(&e),
            TunnResult::WriteToNetwork(reply) => {
                peer.endpoint = Some(src);
                drop(peer);
                self.send(i, reply, src);
            }
            TunnResult::WriteToTunnel(inner) => {
                peer.endpoint = Some(src);
                if inner.is_empty() {
                    return; // keepalive
                }
                drop(peer);
                let Some(inner) = ip::unpadded(&inner) else {
                    return bump(&self.counters.protocol);
                };
                // Cryptokey routing: the source's longest-prefix match must be this peer. The
                // table is read with the peer unlocked (`apply` takes table, then peer).
                let allowed = ip::source(inner).is_some_and(|s| self.table().routes.allows(s, i));
                if !allowed {
                    return bump(&self.counters.bad_source);
                }
                lock(&peer_ref).stats.rx_packets += 1;
                deliver(inner);
            }
        }
    }

    /// The peer a receiver index belongs to, from the cache when it is the last one seen.
    fn peer_for_index(&self, idx: u32, cache: &mut PeerCache) -> Option<(usize, PeerRef)> {
        if let Some((cached, i, p)) = cache
            && *cached == idx
        {
            return Some((*i, p.clone()));
        }
        let i = self.index_map().get(&idx).copied()?;
        let p = self.peer(i)?;
        *cache = Some((idx, i, p.clone()));
        Some((i, p))
    }

    /// Counts a protocol error under its drop reason.
    pub(super) fn count_error(&self, e: &WireGuardError) {
        let c = &self.counters;
        match e {
            WireGuardError::DuplicateCounter | WireGuardError::InvalidCounter => bump(&c.replay),
            WireGuardError::InvalidAeadTag | WireGuardError::InvalidMac => bump(&c.decrypt),
            WireGuardError::NoCurrentSession | WireGuardError::WrongIndex => bump(&c.unknown_peer),
            _ => bump(&c.protocol),
        }
    }

    /// Writes one packet (with its virtio-net header when the TUN has one) into the kernel.
    fn write_tun(&self, tun: &T, buf: &[u8]) {
        match tun.write(buf) {
            Ok(_) => {
                bump(&self.counters.rx_packets);
            }
            Err(_) => bump(&self.counters.io_errors),
        }
    }
}
