//! SIGINT/SIGTERM as a polled event: [`block_termination`] blocks both in the calling thread
//! (threads spawned afterwards inherit the mask), and [`wait_termination`] takes a pending one
//! with a timeout, so no asynchronous handler ever runs.

use std::io;
use std::time::Duration;

fn termination_set() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t; SIGINT and SIGTERM are valid signal numbers.
    let rc = unsafe {
        libc::sigemptyset(&mut set)
            | libc::sigaddset(&mut set, libc::SIGINT)
            | libc::sigaddset(&mut set, libc::SIGTERM)
    };
    match rc {
        0 => Ok(set),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Blocks SIGINT and SIGTERM in this thread and in threads it spawns later.
pub(crate) fn block_termination() -> io::Result<()> {
    let set = termination_set()?;
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Waits up to `timeout` for SIGINT or SIGTERM (blocked beforehand): the signal, or `None`.
pub(crate) fn wait_termination(timeout: Duration) -> io::Result<Option<i32>> {
    let set = termination_set()?;
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `set` and `ts` are initialised and live; a null siginfo pointer is allowed.
    let rc = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    if rc >= 0 {
        return Ok(Some(rc));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}
