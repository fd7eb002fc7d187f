//! Facts about this process that libc reports and std does not: whether it runs as root, and
//! the CLOCK_MONOTONIC reading systemd's notification protocol wants.

use std::time::Duration;

/// Whether the effective user is root (uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// CLOCK_MONOTONIC now (the clock `MONOTONIC_USEC` in sd_notify refers to), `None` if the
/// kernel refuses.
pub fn monotonic_now() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (rc == 0).then(|| {
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_now().expect("CLOCK_MONOTONIC");
        let b = monotonic_now().expect("CLOCK_MONOTONIC");
        assert!(b >= a);
        assert!(a > Duration::ZERO);
    }
}
