//! Batched UDP IO for the tunnel socket: `recvmmsg` with UDP GRO (one message may carry up to
//! 64 coalesced datagrams of equal size, split here without copying) and `sendmmsg` with UDP GSO
//! (consecutive equal-size datagrams to one address go out as one message with a `UDP_SEGMENT`
//! control message). Both offloads are probed at run time; GSO turns itself off for good when the
//! kernel answers `EIO` (no checksum offload on the route), and everything works without them.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;

use super::udp;

/// Receive buffer per message: a GRO message can be up to 64 KiB.
const RECV_BUF: usize = 65_536;
/// Messages per `recvmmsg`.
pub(crate) const RECV_MESSAGES: usize = 16;
/// Most datagrams in one GSO message (the kernel's UDP_MAX_SEGMENTS is 64 before 6.11).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO message (IPv4's UDP limit, with room to spare).
const GSO_MAX_BYTES: usize = 65_000;
/// Messages per `sendmmsg`.
const SEND_MESSAGES: usize = 64;
/// `UDP_SEGMENT` / `UDP_GRO` socket options and control messages (linux/udp.h).
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// Control buffer: room for one `int` control message, 8-byte aligned.
const CMSG_BUF: usize = 64;

/// What the socket can do, probed once.
#[derive(Debug)]
pub(crate) struct Offloads {
    gso: AtomicBool,
    gro: bool,
}

impl Offloads {
    /// Turns UDP GRO on where the kernel has it and probes for GSO.
    pub(crate) fn probe(sock: &UdpSocket) -> Self {
        let gro = udp::setsockopt_level(sock, libc::SOL_UDP, UDP_GRO, 1).is_ok();
        let gso = getsockopt(sock, libc::SOL_UDP, UDP_SEGMENT).is_ok();
        Self {
            gso: AtomicBool::new(gso),
            gro,
        }
    }

    /// Neither offload (plain one-datagram messages), whatever the kernel has.
    pub(crate) fn disabled() -> Self {
        Self {
            gso: AtomicBool::new(false),
            gro: false,
        }
    }

    /// Sending with `UDP_SEGMENT` is on.
    pub(crate) fn gso(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    /// Receiving coalesced datagrams is on.
    pub(crate) fn gro(&self) -> bool {
        self.gro
    }
}

fn getsockopt(sock: &UdpSocket, level: libc::c_int, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is open; `value` and `len` are live and `len` holds the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A socket address in the C layout the socket calls take.
#[repr(C)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
    storage: libc::sockaddr_storage,
}

impl RawAddr {
    fn zeroed() -> Self {
        // SAFETY: every field is a plain C struct for which all-zero bytes are valid.
        unsafe { MaybeUninit::<Self>::zeroed().assume_init() }
    }

    fn from_addr(addr: SocketAddr) -> (Self, libc::socklen_t) {
        let mut raw = Self::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                raw.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                (raw, mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            SocketAddr::V6(a) => {
                raw.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                (raw, mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }

    fn to_addr(&self) -> Option<SocketAddr> {
        // SAFETY: the kernel wrote a sockaddr whose family field is common to every variant;
        // the variant read below is the one that family names.
        unsafe {
            match libc::c_int::from(self.storage.ss_family) {
                libc::AF_INET => {
                    let a = self.v4;
                    let ip = std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
                    Some(SocketAddr::V4(SocketAddrV4::new(
                        ip,
                        u16::from_be(a.sin_port),
                    )))
                }
                libc::AF_INET6 => {
                    let a = self.v6;
                    let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                    Some(SocketAddr::V6(SocketAddrV6::new(
                        ip,
                        u16::from_be(a.sin6_port),
                        a.sin6_flowinfo,
                        a.sin6_scope_id,
                    )))
                }
                _ => None,
            }
        }
    }
}

/// A socket address in C layout for bind(2)/connect(2).
pub(crate) struct SockAddrBuf(RawAddr);

impl SockAddrBuf {
    /// Pointer for the socket calls.
    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.0 as *const RawAddr).cast()
    }
}

/// `addr` as a C socket address and its length.
pub(crate) fn raw_sockaddr(addr: SocketAddr) -> (SockAddrBuf, libc::socklen_t) {
    let (raw, len) = RawAddr::from_addr(addr);
    (SockAddrBuf(raw), len)
}

/// 8-byte aligned control-message storage.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; CMSG_BUF]);

/// Receive side: reusable buffers for one `recvmmsg` and the datagrams it produced.
pub(crate) struct RecvBatch {
    bufs: Vec<BytesMut>,
    addrs: Vec<RawAddr>,
    cmsgs: Vec<CmsgBuf>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Buffers for [`RECV_MESSAGES`] messages of 64 KiB.
    pub(crate) fn new() -> Self {
        Self {
            bufs: (0..RECV_MESSAGES)
                .map(|_| BytesMut::with_capacity(RECV_BUF))
                .collect(),
            addrs: (0..RECV_MESSAGES).map(|_| RawAddr::zeroed()).collect(),
            cmsgs: vec![CmsgBuf([0; CMSG_BUF]); RECV_MESSAGES],
        }
    }

    /// Waits for datagrams (up to the socket's read timeout for the first, then takes what is
    /// queued) and hands each one to `each` with its (canonical) source address. A GRO message
    /// is split into its datagrams without copying. Returns how many datagrams were handed out;
    /// `Ok(0)` on timeout.
    pub(crate) fn recv(
        &mut self,
        sock: &UdpSocket,
        each: &mut dyn FnMut(BytesMut, SocketAddr),
    ) -> io::Result<usize> {
        for b in &mut self.bufs {
            b.clear();
            // Reclaims the whole allocation once every datagram split off it was dropped.
            b.reserve(RECV_BUF);
        }
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.spare_capacity_mut().as_mut_ptr().cast(),
                iov_len: RECV_BUF,
            })
            .collect();
        // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths); filled below.
        let mut msgs: Vec<libc::mmsghdr> = (0..RECV_MESSAGES)
            .map(|_| unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() })
            .collect();
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut RawAddr).cast();
            m.msg_hdr.msg_namelen = mem::size_of::<RawAddr>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = self.cmsgs[i].0.as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = CMSG_BUF;
        }
        // SAFETY: `msgs` holds RECV_MESSAGES headers whose name, iovec and control pointers
        // point into `self.addrs`, `iovs` (each iovec into a buffer with RECV_BUF bytes of
        // spare capacity) and `self.cmsgs`, all alive and unmoved until the call returns.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                RECV_MESSAGES as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
                // ICMP errors from earlier sends surface here: not fatal.
                | io::ErrorKind::ConnectionRefused => Ok(0),
                _ => Err(e),
            };
        }
        let mut handed = 0;
        for (i, m) in msgs.iter().enumerate().take(n as usize) {
            let len = (m.msg_len as usize).min(RECV_BUF);
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            let Some(src) = self.addrs[i].to_addr() else {
                continue;
            };
            let src = udp::canonical(src);
            let seg = gro_size(&m.msg_hdr).unwrap_or(len).max(1);
            let buf = &mut self.bufs[i];
            // SAFETY: the kernel wrote `len` bytes (msg_len, at most RECV_BUF) into the spare
            // capacity of this buffer.
            unsafe { buf.set_len(len) };
            while !buf.is_empty() {
                let take = seg.min(buf.len());
                each(buf.split_to(take), src);
                handed += 1;
            }
        }
        Ok(handed)
    }
}

/// The GRO segment size from a received message's control data, if any.
fn gro_size(hdr: &libc::msghdr) -> Option<usize> {
    // SAFETY: `hdr` is a msghdr the kernel filled; CMSG_FIRSTHDR/NXTHDR stay within
    // msg_control..msg_controllen, and the data read is checked to be an `int`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_UDP
                && h.cmsg_type == UDP_GRO
                && h.cmsg_len as usize
                    >= libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as usize
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(v).ok().filter(|&v| v > 0);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
        None
    }
}

/// What one flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SendOutcome {
    /// Datagrams the kernel took.
    pub sent: u64,
    /// Datagrams dropped on a send error.
    pub failed: u64,
}

/// Send side: datagrams queued in order, flushed with `sendmmsg` (+ GSO).
#[derive(Default)]
pub(crate) struct SendBatch {
    queue: Vec<(SocketAddr, BytesMut)>,
}

/// One message to send: a run of queued datagrams.
struct Run {
    start: usize,
    count: usize,
    seg: usize,
}

impl SendBatch {
    /// Queues a datagram for `to` (already in the socket's address family).
    pub(crate) fn push(&mut self, to: SocketAddr, datagram: BytesMut) {
        self.queue.push((to, datagram));
    }

    /// Datagrams queued.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes the queued datagrams out in order (for the in-memory test transport).
    #[cfg(test)]
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (SocketAddr, BytesMut)> + '_ {
        self.queue.drain(..)
    }

    /// Sends everything queued, in order.
    pub(crate) fn flush(&mut self, sock: &UdpSocket, offloads: &Offloads) -> SendOutcome {
        let mut out = SendOutcome::default();
        let mut from = 0;
        while from < self.queue.len() {
            let runs = self.runs(from, offloads.gso());
            match self.send_runs(sock, &runs) {
                Ok(done) if done > 0 => {
                    for r in runs.iter().take(done) {
                        out.sent += r.count as u64;
                        from = r.start + r.count;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) && runs[0].count > 1 => {
                    // No checksum offload on this route: GSO off for good, resend unsegmented.
                    offloads.gso.store(false, Ordering::Relaxed);
                }
                Ok(_) | Err(_) => {
                    // Drop the first message and go on with the rest.
                    out.failed += runs[0].count as u64;
                    from = runs[0].start + runs[0].count;
                }
            }
        }
        self.queue.clear();
        out
    }

    /// Groups queued datagrams from `from` into messages: with GSO, consecutive datagrams to
    /// one address whose sizes are equal (the last of a run may be shorter).
    fn runs(&self, from: usize, gso: bool) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for i in from..self.queue.len() {
            if extends(runs.last(), &self.queue, i, gso) {
                if let Some(r) = runs.last_mut() {
                    r.count += 1;
                }
                continue;
            }
            if runs.len() == SEND_MESSAGES {
                break;
            }
            runs.push(Run {
                start: i,
                count: 1,
                seg: self.queue[i].1.len(),
            });
        }
        runs
    }

    /// One `sendmmsg` over `runs`: how many messages the kernel took.
    fn send_runs(&self, sock: &UdpSocket, runs: &[Run]) -> io::Result<usize> {
        let addrs: Vec<(RawAddr, libc::socklen_t)> = runs
            .iter()
            .map(|r| RawAddr::from_addr(self.queue[r.start].0))
            .collect();
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(self.queue.len());
        let mut cmsgs: Vec<CmsgBuf> = vec![CmsgBuf([0; CMSG_BUF]); runs.len()];
        for r in runs {
            for (_, d) in &self.queue[r.start..r.start + r.count] {
                iovs.push(libc::iovec {
                    iov_base: d.as_ptr() as *mut libc::c_void,
                    iov_len: d.len(),
                });
            }
        }
        // SAFETY: all-zero is a valid `mmsghdr`; filled below.
        let mut msgs: Vec<libc::mmsghdr> = (0..runs.len())
            .map(|_| unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() })
            .collect();
        let mut iov_at = 0;
        for (i, r) in runs.iter().enumerate() {
            let m = &mut msgs[i].msg_hdr;
            m.msg_name = (&addrs[i].0 as *const RawAddr).cast_mut().cast();
            m.msg_namelen = addrs[i].1;
            m.msg_iov = iovs[iov_at..].as_mut_ptr();
            m.msg_iovlen = r.count;
            iov_at += r.count;
            if r.count > 1 {
                m.msg_control = cmsgs[i].0.as_mut_ptr().cast();
                m.msg_controllen = set_segment_cmsg(m, r.seg);
            }
        }
        // SAFETY: every header points into `addrs`, `iovs` (each iovec into a queued datagram
        // held by `self.queue`) and `cmsgs`, all alive and unmoved until the call returns.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Whether datagram `i` can join the run `last` as a GSO segment.
fn extends(last: Option<&Run>, queue: &[(SocketAddr, BytesMut)], i: usize, gso: bool) -> bool {
    let Some(r) = last else {
        return false;
    };
    if !gso || r.count >= GSO_MAX_SEGMENTS || (r.count + 1) * r.seg > GSO_MAX_BYTES {
        return false;
    }
    let (to, d) = &queue[i];
    let prev = &queue[r.start + r.count - 1].1;
    // Only the last segment of a run may be shorter: a run ends after a short one.
    *to == queue[r.start].0 && prev.len() == r.seg && d.len() <= r.seg && !d.is_empty()
}

/// Writes a `UDP_SEGMENT` control message with `seg` into `m`'s control buffer; returns the
/// control length to set.
fn set_segment_cmsg(m: &mut libc::msghdr, seg: usize) -> usize {
    let space = cmsg_space(mem::size_of::<u16>());
    m.msg_controllen = space;
    // SAFETY: msg_control points to a CMSG_BUF-byte, 8-aligned buffer, larger than
    // CMSG_SPACE(2); CMSG_FIRSTHDR therefore returns a header inside it, and the u16 written
    // at CMSG_DATA lies within CMSG_LEN(2) of it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(m);
        if c.is_null() {
            return 0;
        }
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(
            libc::CMSG_DATA(c).cast::<u16>(),
            u16::try_from(seg).unwrap_or(u16::MAX),
        );
    }
    space
}

fn cmsg_space(len: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    unsafe { libc::CMSG_SPACE(len as u32) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a");
        let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind b");
        b.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        (a, b)
    }

    /// 20 datagrams of 1,000 B, one of 300 B, then 5 of 700 B: numbered so order shows.
    fn datagrams() -> Vec<Vec<u8>> {
        let sizes = (0..20)
            .map(|_| 1000)
            .chain([300])
            .chain((0..5).map(|_| 700));
        sizes
            .enumerate()
            .map(|(i, n)| (0..n).map(|j| (i * 7 + j) as u8).collect())
            .collect()
    }

    fn send_and_receive(gso: bool) -> (Vec<Vec<u8>>, SendOutcome) {
        let (a, b) = pair();
        let offloads = Offloads::probe(&a);
        if !gso {
            offloads.gso.store(false, Ordering::Relaxed);
        }
        let _ = Offloads::probe(&b);
        let to = b.local_addr().expect("addr");
        let mut batch = SendBatch::default();
        for d in datagrams() {
            batch.push(to, BytesMut::from(&d[..]));
        }
        let outcome = batch.flush(&a, &offloads);
        assert!(batch.is_empty());
        let mut recv = RecvBatch::new();
        let mut got = Vec::new();
        for _ in 0..20 {
            let n = recv
                .recv(&b, &mut |d, src| {
                    assert_eq!(src, a.local_addr().expect("addr"));
                    got.push(d.to_vec());
                })
                .expect("recv");
            if n == 0 || got.len() >= datagrams().len() {
                break;
            }
        }
        (got, outcome)
    }

    #[test]
    fn gso_batches_arrive_whole_and_in_order() {
        let (got, outcome) = send_and_receive(true);
        assert_eq!(outcome.sent, 26);
        assert_eq!(outcome.failed, 0);
        assert_eq!(got, datagrams());
    }

    #[test]
    fn without_gso_the_same_datagrams_arrive() {
        let (got, outcome) = send_and_receive(false);
        assert_eq!(outcome.sent, 26);
        assert_eq!(got, datagrams());
    }

    #[test]
    fn runs_split_on_size_address_and_segment_limit() {
        let mut batch = SendBatch::default();
        let x: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let y: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        for _ in 0..70 {
            batch.push(x, BytesMut::from(&[0u8; 100][..]));
        }
        batch.push(x, BytesMut::from(&[0u8; 50][..]));
        batch.push(x, BytesMut::from(&[0u8; 100][..]));
        batch.push(y, BytesMut::from(&[0u8; 100][..]));
        let runs = batch.runs(0, true);
        let shape: Vec<(usize, usize)> = runs.iter().map(|r| (r.start, r.count)).collect();
        // 64 is the segment limit; the short one ends its run; another address starts one.
        assert_eq!(shape, vec![(0, 64), (64, 7), (71, 1), (72, 1)]);
        let plain = batch.runs(0, false);
        assert_eq!(plain.len(), SEND_MESSAGES);
        assert!(plain.iter().all(|r| r.count == 1));
    }
}
