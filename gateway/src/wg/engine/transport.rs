//! The engine's transport seam: [`TunQueue`] (one TUN queue: bounded-wait and non-blocking reads
//! into the caller's buffer, one write per packet or super-packet, the offloads it carries) and
//! [`UdpTransport`] (one UDP socket of the tunnel port: batched receive into per-thread state,
//! batched send of a [`SendBatch`], single sends, its address and UDP offloads), with the kernel
//! implementations: [`Tun`] itself and [`KernelUdp`] (a `UdpSocket` with its probed GSO/GRO).
//!
//! The engine is generic over both (static dispatch, no per-packet virtual call or allocation);
//! an in-memory pair for tests lives in `memory`. Nothing here is `unsafe`: the syscalls stay in
//! `crate::net`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::BytesMut;

use crate::net::batch::{Offloads, RecvBatch, SendBatch, SendOutcome};
use crate::net::tun::{Tun, TunOffloads};

/// One queue of a layer-3 TUN device, as the engine drives it. Every read and write carries a
/// 10-byte virtio-net header exactly when [`TunQueue::offloads`] says `vnet_hdr`.
pub(crate) trait TunQueue: Send + Sync {
    /// What reads and writes carry beyond one plain packet (fixed for the queue's life).
    fn offloads(&self) -> TunOffloads;

    /// Waits up to `timeout` for a packet and reads it into `buf`: its length, `Ok(None)` when
    /// none came.
    fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>>;

    /// Reads a packet into `buf` if one is queued, without waiting.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Writes one packet (or one GSO super-packet behind its virtio-net header).
    fn write(&self, packet: &[u8]) -> io::Result<usize>;
}

/// One UDP socket of the tunnel port, as the engine drives it. Addresses passed in are already
/// in the socket's family ([`crate::net::udp::to_socket_family`]); addresses handed out are
/// canonical (IPv4 rather than v4-mapped).
pub(crate) trait UdpTransport: Send + Sync {
    /// Per-thread receive state (buffers), made once per receiving thread.
    type Recv;

    /// Fresh receive state for one receiving thread.
    fn recv_state(&self) -> Self::Recv;

    /// Waits up to the read timeout for datagrams, then takes what is queued, handing each one
    /// to `each` with its source. Returns how many were handed out; `Ok(0)` on timeout.
    fn recv_batch(
        &self,
        state: &mut Self::Recv,
        each: &mut dyn FnMut(BytesMut, SocketAddr),
    ) -> io::Result<usize>;

    /// Sends everything queued in `batch`, in order, and empties it.
    fn send_batch(&self, batch: &mut SendBatch) -> SendOutcome;

    /// Sends one datagram now.
    fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Whether sends use UDP GSO (may turn off at run time).
    fn gso(&self) -> bool;

    /// Whether receives take GRO-coalesced datagrams.
    fn gro(&self) -> bool;

    /// How long [`UdpTransport::recv_batch`] waits for the first datagram (`None`: forever).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// Sets the firewall mark of sent datagrams (0 clears it).
    fn set_fwmark(&self, mark: u32) -> io::Result<()>;
}

impl TunQueue for Tun {
    fn offloads(&self) -> TunOffloads {
        Tun::offloads(self)
    }

    fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        Tun::read_timeout(self, buf, timeout)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Tun::try_read(self, buf)
    }

    fn write(&self, packet: &[u8]) -> io::Result<usize> {
        Tun::write(self, packet)
    }
}

/// A kernel UDP socket with the GSO/GRO it was found to have: `recvmmsg`/`sendmmsg` batches.
#[derive(Debug)]
pub(crate) struct KernelUdp {
    sock: UdpSocket,
    offloads: Offloads,
}

impl KernelUdp {
    /// Wraps `sock`, turning on UDP GSO/GRO where the kernel has them if `offload` is set.
    pub(crate) fn new(sock: UdpSocket, offload: bool) -> Self {
        let offloads = if offload {
            Offloads::probe(&sock)
        } else {
            Offloads::disabled()
        };
        Self { sock, offloads }
    }

    /// The socket itself (e.g. to share the port with a QUIC endpoint).
    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.sock
    }
}

impl UdpTransport for KernelUdp {
    type Recv = RecvBatch;

    fn recv_state(&self) -> RecvBatch {
        RecvBatch::new()
    }

    fn recv_batch(
        &self,
        state: &mut RecvBatch,
        each: &mut dyn FnMut(BytesMut, SocketAddr),
    ) -> io::Result<usize> {
        state.recv(&self.sock, each)
    }

    fn send_batch(&self, batch: &mut SendBatch) -> SendOutcome {
        batch.flush(&self.sock, &self.offloads)
    }

    fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.sock.send_to(datagram, to)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    fn gso(&self) -> bool {
        self.offloads.gso()
    }

    fn gro(&self) -> bool {
        self.offloads.gro()
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    fn set_fwmark(&self, mark: u32) -> io::Result<()> {
        crate::net::sockopt::set_mark(&self.sock, mark)
    }
}
