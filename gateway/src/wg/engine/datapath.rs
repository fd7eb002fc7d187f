//! The packet paths: TUN -> allowed-IPs lookup -> `Tunn` -> UDP, and UDP -> mac1/cookie check
//! -> peer by key or receiver index -> `Tunn` -> inner source check -> TUN.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use gotatun::noise::TunnResult;
use gotatun::noise::errors::WireGuardError;
use gotatun::noise::handshake::parse_handshake_anon;
use gotatun::packet::{Packet, WgKind};
use gotatun::tun::MtuWatcher;

use super::{Engine, MAX_PACKET, TICK, bump, lock};
use crate::net::udp;
use crate::wg::route;

impl Engine {
    /// Sends a message to `to`, first noting the receiver index a handshake message claims.
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
            if matches!(out, Some(WgKind::Data(_))) && endpoint.is_some() {
                peer.stats.tx_packets += 1;
            }
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
        let handshake = matches!(message, WgKind::HandshakeInit(_) | WgKind::HandshakeResp(_));
        let mut peer = lock(&peer);
        match peer.tunn.handle_incoming_packet(message) {
            TunnResult::Done => {}
            TunnResult::Err(e) => self.count_error(&e),
            TunnResult::WriteToNetwork(reply) => {
                if handshake {
                    peer.stats.handshakes += 1;
                }
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
                if allowed {
                    peer.stats.rx_packets += 1;
                }
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
}
