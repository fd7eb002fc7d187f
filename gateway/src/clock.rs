//! The daemon's one reading of the wall clock: Unix time in milliseconds. The sans-IO core never
//! reads a clock; the daemon passes this value (or one derived from it) in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z; `None` when the clock is set before 1970 (saturates
/// at `u64::MAX`).
pub fn unix_ms() -> Option<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    Some(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_after_2020() {
        assert!(super::unix_ms().is_some_and(|ms| ms > 1_577_836_800_000));
    }
}
