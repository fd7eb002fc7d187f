//! One UDP port for WireGuard and QUIC. WireGuard messages start with a type byte of 1-4 (and
//! the agile tunnel's with 0x11); every QUIC packet has the fixed bit 0x40 set in its first byte
//! (RFC 9000 section 17). The engine's inbound threads hand the QUIC ones to a [`SharedPort`],
//! which quinn drives as its socket ([`quinn::AsyncUdpSocket`]): it receives from a bounded
//! channel and sends through a duplicate of the tunnel socket. No extra port, no extra firewall
//! rule. The endpoint on a shared port must not advertise `grease_quic_bit` (RFC 9287:
//! `EndpointConfig::grease_quic_bit(false)`), so peers never clear the fixed bit.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::BytesMut;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

use crate::net::udp;

/// QUIC datagrams waiting for quinn; more are dropped (and counted by the engine).
pub(crate) const QUIC_QUEUE: usize = 1024;

/// Whether a datagram's first byte marks it as QUIC.
pub fn is_quic(first: u8) -> bool {
    first & 0x40 != 0
}

/// The engine's side: where it puts QUIC datagrams.
pub(crate) type QuicSender = mpsc::Sender<(BytesMut, SocketAddr)>;

/// quinn's side of the shared port.
pub struct SharedPort {
    incoming: Mutex<mpsc::Receiver<(BytesMut, SocketAddr)>>,
    sock: UdpSocket,
    sock_is_v6: bool,
}

impl fmt::Debug for SharedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPort")
            .field("local", &self.sock.local_addr().ok())
            .finish()
    }
}

impl SharedPort {
    /// A port over `sock` (a duplicate of the tunnel socket, see [`UdpSocket::try_clone`]) and
    /// the sender the engine feeds.
    pub fn new(sock: UdpSocket) -> io::Result<(Self, QuicSender)> {
        let sock_is_v6 = sock.local_addr()?.is_ipv6();
        let (tx, rx) = mpsc::channel(QUIC_QUEUE);
        Ok((
            Self {
                incoming: Mutex::new(rx),
                sock,
                sock_is_v6,
            },
            tx,
        ))
    }
}

// The tunnel socket is blocking (the engine's threads wait on it); quinn's sends use
// `MSG_DONTWAIT` (crate::net::sockopt::send_to_nowait).

impl AsyncUdpSocket for SharedPort {
    fn create_io_poller(self: std::sync::Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let to = udp::to_socket_family(self.sock_is_v6, transmit.destination);
        // One datagram per transmit (max_transmit_segments is 1).
        // Like quinn-udp: a send error drops the datagram (a full buffer, EPERM from a firewall
        // rule, an unreachable route) and QUIC's loss recovery or idle timeout copes. Returning
        // it would end quinn's connection driver and leave the connection hanging.
        if let Err(e) = crate::net::sockopt::send_to_nowait(&self.sock, transmit.contents, to)
            && e.kind() != io::ErrorKind::WouldBlock
        {
            tracing::debug!(%to, "QUIC datagram not sent: {e}");
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut rx = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            let next = if filled == 0 {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(d)) => d,
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            "the tunnel engine stopped",
                        )));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                match rx.try_recv() {
                    Ok(d) => d,
                    Err(_) => break,
                }
            };
            let (datagram, src) = next;
            let len = datagram.len().min(bufs[filled].len());
            bufs[filled][..len].copy_from_slice(&datagram[..len]);
            meta[filled] = RecvMeta {
                // In the socket's family, as quinn keeps its peers' addresses (a v4 source
                // would not match a connection opened to the v4-mapped address on a v6 socket).
                addr: udp::to_socket_family(self.sock_is_v6, src),
                len,
                stride: len,
                ecn: None,
                dst_ip: None,
            };
            filled += 1;
        }
        Poll::Ready(Ok(filled))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// Sends never wait for readiness: a full socket buffer drops the datagram like the network
/// would, and QUIC's loss recovery resends.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
