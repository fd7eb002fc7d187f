//! The tunnel's UDP socket: dual-stack `[::]:port` (IPv4 peers as v4-mapped addresses) with an
//! IPv4-only fallback, and socket buffers forced large (SO_RCVBUFFORCE / SO_SNDBUFFORCE as root,
//! plain SO_RCVBUF / SO_SNDBUF capped by net.core.*mem_max otherwise).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Socket buffer size asked for, as upstream wireguard-go sets (7 MiB).
pub(crate) const SOCKET_BUFFER: usize = 7 << 20;

/// Binds the tunnel socket on `port` (0: ephemeral) and sizes its buffers.
pub(crate) fn bind(port: u16) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
        .or_else(|_| UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))))?;
    set_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)?;
    set_buffer(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)?;
    Ok(sock)
}

/// Binds `addr` exactly (no dual-stack fallback) and sizes its buffers like the tunnel socket.
pub(crate) fn bind_addr(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr)?;
    set_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)?;
    set_buffer(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)?;
    Ok(sock)
}

/// Binds `count` sockets to one port with SO_REUSEPORT (the first picks the port when `port`
/// is 0): the kernel spreads peers over them by address hash, so one peer's datagrams always
/// reach the same socket. With `count` 1 this is [`bind`].
pub(crate) fn bind_many(port: u16, count: usize) -> io::Result<Vec<UdpSocket>> {
    if count <= 1 {
        return Ok(vec![bind(port)?]);
    }
    let first = bind_reuseport(port)?;
    let port = first.local_addr()?.port();
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind_reuseport(port)?);
    }
    Ok(all)
}

fn bind_reuseport(port: u16) -> io::Result<UdpSocket> {
    let sock = reuseport_socket(libc::AF_INET6, port)
        .or_else(|_| reuseport_socket(libc::AF_INET, port))?;
    set_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)?;
    set_buffer(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)?;
    Ok(sock)
}

/// A UDP socket of `family` with SO_REUSEPORT (and dual-stack for IPv6), bound to `port`.
fn reuseport_socket(family: libc::c_int, port: u16) -> io::Result<UdpSocket> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket this function owns; the UdpSocket takes ownership and
    // closes it on every path from here.
    let sock = unsafe { <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    setsockopt_level(&sock, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    let addr: SocketAddr = if family == libc::AF_INET6 {
        setsockopt_level(&sock, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
        (Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, port).into()
    };
    let (raw, len) = crate::net::batch::raw_sockaddr(addr);
    // SAFETY: `raw` is a live sockaddr of `len` bytes for this family; the fd is open.
    let rc = unsafe { libc::bind(sock.as_raw_fd(), raw.as_ptr(), len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// The address to pass to `send_to` on `sock`: v4-mapped when the socket is IPv6.
pub(crate) fn to_socket_family(sock_is_v6: bool, addr: SocketAddr) -> SocketAddr {
    match (sock_is_v6, addr) {
        (true, SocketAddr::V4(v4)) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        _ => addr,
    }
}

/// A received source address with v4-mapped IPv6 turned back into IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn set_buffer(sock: &UdpSocket, force: libc::c_int, plain: libc::c_int) -> io::Result<()> {
    let size = libc::c_int::try_from(SOCKET_BUFFER).unwrap_or(libc::c_int::MAX);
    if setsockopt_int(sock, force, size).is_ok() {
        return Ok(());
    }
    setsockopt_int(sock, plain, size)
}

fn setsockopt_int(sock: &UdpSocket, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    setsockopt_level(sock, libc::SOL_SOCKET, opt, value)
}

/// `setsockopt` with an `int` value (shared with the batching code).
pub(crate) fn setsockopt_level(
    sock: &UdpSocket,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is open for the lifetime of `sock`; the option value is a live c_int and
    // its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
