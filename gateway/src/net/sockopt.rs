//! Socket calls std does not offer: SO_MARK, and a non-blocking send on a blocking socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Sets SO_MARK on a socket, so the firewall and policy routing can match its packets (0
/// clears it; needs CAP_NET_ADMIN).
pub(crate) fn set_mark(sock: &UdpSocket, mark: u32) -> io::Result<()> {
    let len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: the fd is open for the life of `sock`; the option value points at a live u32 of
    // exactly `len` bytes, which the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&raw const mark).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends one datagram with `MSG_DONTWAIT`, whatever the socket's blocking mode (a full buffer
/// answers `WouldBlock` instead of waiting).
pub(crate) fn send_to_nowait(sock: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<()> {
    let (addr, len) = super::batch::raw_sockaddr(to);
    // SAFETY: `data` and `addr` are live for the call and their exact lengths are passed; the
    // fd is open for the lifetime of `sock`.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT,
            addr.as_ptr(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
