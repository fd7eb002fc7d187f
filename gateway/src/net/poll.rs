//! Waiting for a descriptor to become readable, bounded in time (poll(2)): the callers wake at
//! once on data and still get back in time to check their stop flag.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Waits up to `timeout` until `fd` is readable (or closed, or in error: the next read says
/// which). `Ok(false)` when the time passed or a signal interrupted the wait.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid, live pollfd and nfds is 1; `fd` is borrowed, so it stays open
    // for the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(e),
        };
    }
    Ok(rc > 0)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn readable_only_once_data_is_there() {
        let (mut a, b) = UnixStream::pair().expect("socket pair");
        let short = Duration::from_millis(10);
        assert!(!wait_readable(b.as_fd(), short).expect("poll"));
        a.write_all(b"x").expect("write");
        assert!(wait_readable(b.as_fd(), Duration::from_secs(5)).expect("poll"));
    }
}
