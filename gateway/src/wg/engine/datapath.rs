//! The outbound packet path: TUN reads (GSO super-packets split into MTU-size packets) ->
//! allowed-IPs lookup -> `Tunn` -> a send batch flushed with `sendmmsg` + UDP GSO. Also the
//! single-message send used for handshakes.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use gotatun::packet::{Packet, WgKind};
use gotatun::tun::MtuWatcher;
use pqgate_core::offload::{VnetHdr, segment};

use super::{Engine, MAX_PACKET, TICK, TunQueue, UdpTransport, bump, lock};
use crate::net::batch::SendBatch;
use crate::net::udp;
use pqgate_core::ip;

/// TUN reads taken per wake-up before the send batch is flushed.
const TUN_READS_PER_BATCH: usize = 16;
/// Datagrams queued before a flush, whatever the number of reads.
const SEND_BATCH_MAX: usize = 512;

/// State of the outbound thread, reused across packets.
struct Outbound {
    batch: SendBatch,
    mtu: MtuWatcher,
    scratch: Vec<u8>,
}

impl<T: TunQueue, U: UdpTransport> Engine<T, U> {
    /// Sends a message to `to` now, first noting the receiver index a handshake message claims.
    pub(super) fn send(&self, peer: usize, packet: WgKind, to: SocketAddr) {
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
        self.send_raw(bytes.as_ref(), to);
    }

    /// Sends one datagram now, outside the batched data path.
    pub(super) fn send_raw(&self, datagram: &[u8], to: SocketAddr) {
        let to = udp::to_socket_family(self.sock_is_v6, to);
        match self.socks[0].send_to(datagram, to) {
            Ok(_) => bump(&self.counters.tx_datagrams),
            Err(_) => bump(&self.counters.io_errors),
        }
    }

    /// TUN -> peers, until `stop`: one thread per TUN queue (this one serves the first).
    pub(crate) fn run_tun(&self) -> io::Result<()> {
        std::thread::scope(|s| {
            let others: Vec<_> = (1..self.tuns.len())
                .map(|q| s.spawn(move || self.tun_queue(q)))
                .collect();
            let mut result = self.tun_queue(0);
            for t in others {
                let r = t
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a TUN queue thread panicked")));
                result = result.and(r);
            }
            result
        })
    }

    fn tun_queue(&self, q: usize) -> io::Result<()> {
        let tun = &self.tuns[q];
        let sock = q % self.socks.len();
        let mut buf = vec![0u8; MAX_PACKET];
        let mut out = Outbound {
            batch: SendBatch::default(),
            mtu: MtuWatcher::new(self.mtu),
            scratch: Vec::with_capacity(2048),
        };
        while !self.stop.load(Ordering::Relaxed) {
            let mut next = tun.read_timeout(&mut buf, TICK)?;
            let mut reads = 0;
            while let Some(n) = next {
                self.tun_read(buf.get(..n).unwrap_or_default(), &mut out);
                reads += 1;
                if reads >= TUN_READS_PER_BATCH || out.batch.len() >= SEND_BATCH_MAX {
                    break;
                }
                next = tun.try_read(&mut buf)?;
            }
            self.flush(sock, &mut out.batch);
        }
        Ok(())
    }

    /// One TUN read: split by the offload codec when it carries a virtio-net header.
    fn tun_read(&self, read: &[u8], out: &mut Outbound) {
        if !self.tuns[0].offloads().vnet_hdr {
            return self.encrypt(read, out);
        }
        let split = VnetHdr::parse(read).and_then(|(hdr, packet)| {
            let mut scratch = std::mem::take(&mut out.scratch);
            let r = segment(&hdr, packet, &mut scratch, &mut |ip| self.encrypt(ip, out));
            out.scratch = scratch;
            r
        });
        if split.is_err() {
            bump(&self.counters.tun_malformed);
        }
    }

    /// Encrypts one IP packet for the peer that holds its destination and queues it.
    fn encrypt(&self, ip: &[u8], out: &mut Outbound) {
        let found = ip::destination(ip).and_then(|d| {
            let t = self.table();
            let i = t.routes.lookup(d)?;
            Some((i, t.peers.get(i).cloned().flatten()?))
        });
        let Some((i, peer)) = found else {
            return bump(&self.counters.no_route);
        };
        let mut peer = lock(&peer);
        if let Some(sealed) = Self::agile_seal(&mut peer, || self.millis(), ip) {
            let endpoint = peer.endpoint;
            match (sealed, endpoint) {
                (Ok(d), Some(to)) => {
                    peer.stats.tx_packets += 1;
                    bump(&self.counters.agile_tx);
                    let to = udp::to_socket_family(self.sock_is_v6, to);
                    out.batch.push(to, d);
                }
                (Ok(_), None) => bump(&self.counters.no_endpoint),
                // No key yet or the usage limit reached: the channel re-keys; never fall back.
                (Err(_), _) => bump(&self.counters.protocol),
            }
            return;
        }
        let sent = peer
            .tunn
            .handle_outgoing_packet(Packet::from_bytes(BytesMut::from(ip)), Some(&mut out.mtu));
        let endpoint = peer.endpoint;
        if matches!(sent, Some(WgKind::Data(_))) && endpoint.is_some() {
            peer.stats.tx_packets += 1;
        }
        drop(peer);
        match (sent, endpoint) {
            (Some(WgKind::Data(d)), Some(to)) => {
                let mut bytes = Packet::from(WgKind::Data(d));
                let to = udp::to_socket_family(self.sock_is_v6, to);
                out.batch.push(to, std::mem::take(bytes.buf_mut()));
            }
            // A handshake initiation (the packet waits in the peer's queue): send it now.
            (Some(p), Some(to)) => self.send(i, p, to),
            (Some(_), None) => bump(&self.counters.no_endpoint),
            (None, _) => {}
        }
    }

    /// Sends the queued datagrams.
    fn flush(&self, sock: usize, batch: &mut SendBatch) {
        if batch.is_empty() {
            return;
        }
        let r = self.socks[sock].send_batch(batch);
        self.counters
            .tx_datagrams
            .fetch_add(r.sent, Ordering::Relaxed);
        self.counters
            .io_errors
            .fetch_add(r.failed, Ordering::Relaxed);
    }
}
