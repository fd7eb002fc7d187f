//! Moving the calling thread (only it) into a named network namespace (`/run/netns/NAME`, as
//! `ip netns add` creates): sockets it opens afterwards live there. For tests and tools that
//! talk to a tunnel inside a namespace without a helper process.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Switches the calling thread into the network namespace `name`. Needs CAP_SYS_ADMIN.
pub fn enter_thread(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad namespace name",
        ));
    }
    let ns = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `ns` is an open namespace file for the duration of the call; setns only changes
    // the calling thread's network namespace and touches no memory of ours.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
