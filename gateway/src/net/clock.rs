//! The daemon's clock readings, in one place: Unix time in milliseconds (the wall clock) and
//! CLOCK_MONOTONIC (which systemd's notification protocol wants). The sans-IO core never reads
//! a clock; the daemon passes these values (or ones derived from them) in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z; `None` when the clock is set before 1970 (saturates
/// at `u64::MAX`).
pub(crate) fn unix_ms() -> Option<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    Some(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// CLOCK_MONOTONIC now (the clock `MONOTONIC_USEC` in sd_notify refers to), `None` if the
/// kernel refuses.
pub(crate) fn monotonic_now() -> Option<Duration> {
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
    #[test]
    fn is_after_2020() {
        assert!(super::unix_ms().is_some_and(|ms| ms > 1_577_836_800_000));
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = super::monotonic_now().expect("CLOCK_MONOTONIC");
        let b = super::monotonic_now().expect("CLOCK_MONOTONIC");
        assert!(b >= a);
        assert!(a > std::time::Duration::ZERO);
    }
}
