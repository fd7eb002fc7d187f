//! In-memory transports for engine tests (no root, no network namespace): [`MemNet`], a switch
//! of UDP sockets by address that delivers every datagram, in order, to whichever socket holds
//! the destination (to no one otherwise), and [`mem_tun`], a TUN queue whose reads are packets
//! the test injects and whose writes the test reads back, with or without a virtio-net header.
//!
//! With `gso` on, a send batch's run of datagrams to one address arrives as one message, which
//! the receiver takes in one [`UdpTransport::recv_batch`] (what UDP GSO + GRO do), so the
//! receive side's TUN coalescing sees the whole run. A tap can copy every datagram for the test.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;

use super::transport::{TunQueue, UdpTransport};
use crate::net::batch::{SendBatch, SendOutcome};
use crate::net::tun::TunOffloads;

/// One message on the switch: its source and its datagrams (one without GSO).
type Message = (SocketAddr, Vec<BytesMut>);
/// A tapped datagram: source, destination, bytes.
pub(crate) type Tapped = (SocketAddr, SocketAddr, BytesMut);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Switch {
    ports: HashMap<SocketAddr, Sender<Message>>,
    tap: Option<Sender<Tapped>>,
}

/// The in-memory network: sockets bound to addresses, and an optional tap.
#[derive(Clone, Default)]
pub(crate) struct MemNet {
    switch: Arc<Mutex<Switch>>,
}

impl MemNet {
    /// A socket bound to `addr` (taking the address over if another socket held it); `gso`:
    /// runs to one address travel as one message.
    pub(crate) fn bind(&self, addr: SocketAddr, gso: bool) -> MemUdp {
        let (tx, rx) = channel();
        locked(&self.switch).ports.insert(addr, tx.clone());
        MemUdp {
            net: self.clone(),
            local: Mutex::new(addr),
            inbox: tx,
            rx: Mutex::new(rx),
            timeout: Mutex::new(None),
            gso,
            fwmark: AtomicU32::new(0),
        }
    }

    /// Copies every datagram sent from now on (source, destination, bytes) to the returned
    /// receiver.
    pub(crate) fn tap(&self) -> Receiver<Tapped> {
        let (tx, rx) = channel();
        locked(&self.switch).tap = Some(tx);
        rx
    }

    /// Delivers one message; false when no socket holds `to` (the datagrams are lost).
    fn deliver(&self, src: SocketAddr, to: SocketAddr, datagrams: Vec<BytesMut>) -> bool {
        let switch = locked(&self.switch);
        if let Some(tap) = &switch.tap {
            for d in &datagrams {
                let _ = tap.send((src, to, d.clone()));
            }
        }
        switch
            .ports
            .get(&to)
            .is_some_and(|port| port.send((src, datagrams)).is_ok())
    }
}

/// A UDP socket on a [`MemNet`].
pub(crate) struct MemUdp {
    net: MemNet,
    local: Mutex<SocketAddr>,
    inbox: Sender<Message>,
    rx: Mutex<Receiver<Message>>,
    timeout: Mutex<Option<Duration>>,
    gso: bool,
    fwmark: AtomicU32,
}

impl MemUdp {
    /// Moves the socket to `addr` (a NAT rebinding): datagrams to the old address are lost from
    /// now on, and datagrams it sends come from `addr`.
    pub(crate) fn rebind(&self, addr: SocketAddr) {
        let mut local = locked(&self.local);
        let mut switch = locked(&self.net.switch);
        switch.ports.remove(&local);
        switch.ports.insert(addr, self.inbox.clone());
        *local = addr;
    }

    /// Waits up to `timeout` for one datagram (the first of a message; the rest are dropped).
    pub(crate) fn recv_one(&self, timeout: Duration) -> Option<(SocketAddr, BytesMut)> {
        let (src, datagrams) = locked(&self.rx).recv_timeout(timeout).ok()?;
        Some((src, datagrams.into_iter().next()?))
    }

    /// The mark [`UdpTransport::set_fwmark`] set last.
    pub(crate) fn fwmark(&self) -> u32 {
        self.fwmark.load(Ordering::Relaxed)
    }

    fn source(&self) -> SocketAddr {
        *locked(&self.local)
    }
}

impl UdpTransport for MemUdp {
    type Recv = ();

    fn recv_state(&self) {}

    fn recv_batch(
        &self,
        _state: &mut (),
        each: &mut dyn FnMut(BytesMut, SocketAddr),
    ) -> io::Result<usize> {
        let rx = locked(&self.rx);
        let timeout = *locked(&self.timeout);
        let first = match timeout {
            Some(t) => rx
                .recv_timeout(t)
                .map_err(|e| e == RecvTimeoutError::Timeout),
            None => rx.recv().map_err(|_| false),
        };
        let mut message = match first {
            Ok(m) => m,
            Err(true) => return Ok(0),
            Err(false) => return Err(io::ErrorKind::BrokenPipe.into()),
        };
        let (mut handed, mut messages) = (0, 0);
        // Like `recvmmsg`: up to RECV_MESSAGES messages (a GSO message holds several datagrams).
        loop {
            let (src, datagrams) = message;
            for d in datagrams {
                each(d, src);
                handed += 1;
            }
            messages += 1;
            if messages == crate::net::batch::RECV_MESSAGES {
                break;
            }
            match rx.try_recv() {
                Ok(m) => message = m,
                Err(_) => break,
            }
        }
        Ok(handed)
    }

    fn send_batch(&self, batch: &mut SendBatch) -> SendOutcome {
        let src = self.source();
        let mut out = SendOutcome::default();
        let mut run: Option<(SocketAddr, Vec<BytesMut>)> = None;
        let send = |(to, datagrams): (SocketAddr, Vec<BytesMut>), out: &mut SendOutcome| {
            // UDP: a datagram to an address nobody holds is sent all the same.
            out.sent += datagrams.len() as u64;
            self.net.deliver(src, to, datagrams);
        };
        for (to, d) in batch.drain() {
            match &mut run {
                Some((at, ds)) if self.gso && *at == to => ds.push(d),
                _ => {
                    if let Some(done) = run.replace((to, vec![d])) {
                        send(done, &mut out);
                    }
                }
            }
        }
        if let Some(done) = run {
            send(done, &mut out);
        }
        out
    }

    fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.net
            .deliver(self.source(), to, vec![BytesMut::from(datagram)]);
        Ok(datagram.len())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.source())
    }

    fn gso(&self) -> bool {
        self.gso
    }

    fn gro(&self) -> bool {
        self.gso
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        *locked(&self.timeout) = timeout;
        Ok(())
    }

    fn set_fwmark(&self, mark: u32) -> io::Result<()> {
        self.fwmark.store(mark, Ordering::Relaxed);
        Ok(())
    }
}

/// The engine's side of an in-memory TUN queue.
pub(crate) struct MemTun {
    offloads: TunOffloads,
    reads: Mutex<Receiver<Vec<u8>>>,
    writes: Sender<Vec<u8>>,
}

/// The test's side of an in-memory TUN queue: what it injects the engine reads; what the engine
/// writes it reads back.
pub(crate) struct TunHandle {
    inject: Sender<Vec<u8>>,
    written: Receiver<Vec<u8>>,
}

/// An in-memory TUN queue with `offloads` (with `vnet_hdr`, every read and write carries the
/// 10-byte virtio-net header).
pub(crate) fn mem_tun(offloads: TunOffloads) -> (MemTun, TunHandle) {
    let (inject, reads) = channel();
    let (writes, written) = channel();
    let tun = MemTun {
        offloads,
        reads: Mutex::new(reads),
        writes,
    };
    (tun, TunHandle { inject, written })
}

impl TunHandle {
    /// Queues `packet` for the engine to read.
    pub(crate) fn inject(&self, packet: &[u8]) {
        let _ = self.inject.send(packet.to_vec());
    }

    /// The next write of the engine, waiting up to `timeout`.
    pub(crate) fn written(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.written.recv_timeout(timeout).ok()
    }
}

impl MemTun {
    fn copy_out(packet: &[u8], buf: &mut [u8]) -> io::Result<Option<usize>> {
        let dst = buf
            .get_mut(..packet.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read buffer too small"))?;
        dst.copy_from_slice(packet);
        Ok(Some(packet.len()))
    }
}

impl TunQueue for MemTun {
    fn offloads(&self) -> TunOffloads {
        self.offloads
    }

    fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        match locked(&self.reads).recv_timeout(timeout) {
            Ok(p) => Self::copy_out(&p, buf),
            Err(_) => Ok(None),
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match locked(&self.reads).try_recv() {
            Ok(p) => Self::copy_out(&p, buf),
            Err(_) => Ok(None),
        }
    }

    fn write(&self, packet: &[u8]) -> io::Result<usize> {
        self.writes
            .send(packet.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(packet.len())
    }
}
