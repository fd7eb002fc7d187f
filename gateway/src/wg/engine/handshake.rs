//! The handshake thread: handshake messages from a bounded queue -> mac1 check, and a cookie
//! reply instead of the expensive Diffie-Hellman work when the sender is over its rate or the
//! interface is under load -> the initiator's peer (found by its static key) or the receiver
//! index's peer -> `Tunn`. "Under load" follows the kernel's rule: the queue held at least an
//! eighth of its capacity within the last second; then every handshake needs a valid cookie (mac2).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use bytes::BytesMut;
use gotatun::noise::TunnResult;
use gotatun::noise::handshake::parse_handshake_anon;
use gotatun::packet::{Packet, WgKind};
use gotatun::tun::MtuWatcher;

use super::{Engine, TICK, TunQueue, UdpTransport, bump, lock};
use crate::net::udp;

/// Handshake messages queued at most; more are dropped (`queue_full`).
pub(super) const HANDSHAKE_QUEUE: usize = 4096;
/// Queue depth from which the interface is under load.
const UNDER_LOAD_DEPTH: usize = HANDSHAKE_QUEUE / 8;
/// How long the interface stays under load after the queue was last that deep.
const UNDER_LOAD_HOLD: Duration = Duration::from_secs(1);

/// One queued handshake datagram.
pub(super) struct Queued {
    pub(super) datagram: BytesMut,
    pub(super) src: SocketAddr,
}

impl<T: TunQueue, U: UdpTransport> Engine<T, U> {
    /// Notes the queue depth seen when a handshake message arrived.
    pub(super) fn note_load(&self, depth: usize) {
        if depth >= UNDER_LOAD_DEPTH {
            let now = self.millis();
            self.loaded_at_ms.store(now.max(1), Ordering::Relaxed);
        }
    }

    /// Whether handshakes need a cookie now.
    pub(crate) fn under_load(&self) -> bool {
        let at = self.loaded_at_ms.load(Ordering::Relaxed);
        at != 0 && self.millis().saturating_sub(at) < UNDER_LOAD_HOLD.as_millis() as u64
    }

    pub(super) fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Serves the handshake queue until the sender side is dropped or `stop`.
    pub(super) fn run_handshakes(&self, queue: Receiver<Queued>) -> io::Result<()> {
        let mut mtu = MtuWatcher::new(self.mtu);
        loop {
            match queue.recv_timeout(TICK) {
                Ok(q) => {
                    self.handshakes_queued.fetch_sub(1, Ordering::Relaxed);
                    self.handshake(q, &mut mtu);
                }
                Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::Relaxed) => {}
                Err(_) => return Ok(()),
            }
        }
    }

    fn handshake(&self, q: Queued, mtu: &mut MtuWatcher) {
        let Queued { datagram, src } = q;
        let keys = self.keys();
        let limiter = if self.under_load() {
            &keys.under_load
        } else {
            &keys.rate_limiter
        };
        let message = match limiter.verify_packet(src, Packet::from_bytes(datagram)) {
            Ok(m) => m,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                let bytes = Packet::from(cookie);
                let to = udp::to_socket_family(self.sock_is_v6, src);
                let _ = self.socks[0].send_to(bytes.as_ref(), to);
                return bump(&self.counters.cookies_sent);
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
            WgKind::Data(_) => None,
        };
        let Some((i, peer)) = peer_index.and_then(|i| Some((i, self.peer(i)?))) else {
            return bump(&self.counters.unknown_peer);
        };
        let completes = matches!(message, WgKind::HandshakeInit(_) | WgKind::HandshakeResp(_));
        let mut peer = lock(&peer);
        match peer.tunn.handle_incoming_packet(message) {
            TunnResult::Done => {}
            TunnResult::Err(e) => self.count_error(&e),
            TunnResult::WriteToNetwork(reply) => {
                if completes {
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
            // Handshake messages carry no tunnel data.
            TunnResult::WriteToTunnel(_) => {}
        }
    }
}
