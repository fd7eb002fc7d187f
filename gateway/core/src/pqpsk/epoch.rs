//! The epoch schedule: epoch `e` is the half-open span of unix milliseconds
//! `[e * interval, (e + 1) * interval)`. Its PSK is installed at (or soon after) the span's
//! start and stays valid until `2 * interval + margin` after it, so one missed rotation is
//! survived. All inputs are caller-supplied times; nothing here reads a clock.

/// Shortest rotation interval accepted, in milliseconds (a handshake plus a round trip must fit).
pub const MIN_INTERVAL_MS: u64 = 500;

/// Longest rotation interval accepted, in milliseconds (one day: a PSK older than that defeats
/// the purpose of rotating).
pub const MAX_INTERVAL_MS: u64 = 86_400_000;

/// Why a schedule cannot be built.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The interval is outside [`MIN_INTERVAL_MS`, `MAX_INTERVAL_MS`].
    #[error("rotation interval {0} ms is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS} ms")]
    Interval(u64),
}

/// When epochs start and when their PSKs expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    interval_ms: u64,
    margin_ms: u64,
}

impl Schedule {
    /// A schedule with `interval_ms` per epoch; the expiry margin is a quarter interval (30 s at
    /// the default 120 s: room for clock skew and a slow round trip).
    pub fn new(interval_ms: u64) -> Result<Self, ScheduleError> {
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
            return Err(ScheduleError::Interval(interval_ms));
        }
        Ok(Self {
            interval_ms,
            margin_ms: interval_ms / 4,
        })
    }

    /// Milliseconds per epoch.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// The epoch that contains `now_ms`.
    pub fn epoch_at(&self, now_ms: u64) -> u64 {
        now_ms / self.interval_ms
    }

    /// When `epoch` starts.
    pub fn start(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.interval_ms)
    }

    /// When the PSK of `epoch` stops being valid: two intervals and the margin after its start.
    pub fn expiry(&self, epoch: u64) -> u64 {
        self.start(epoch)
            .saturating_add(self.interval_ms.saturating_mul(2))
            .saturating_add(self.margin_ms)
    }

    /// Whether a peer may propose `epoch` at `now_ms`: the current epoch or a neighbour (the two
    /// clocks may disagree by up to one interval).
    pub fn acceptable(&self, epoch: u64, now_ms: u64) -> bool {
        let current = self.epoch_at(now_ms);
        epoch.saturating_add(1) >= current && epoch <= current.saturating_add(1)
    }

    /// How long the initiator waits for `Installed` before counting a timeout: half an interval,
    /// at least 1 s and at most 30 s.
    pub fn answer_timeout_ms(&self) -> u64 {
        (self.interval_ms / 2).clamp(1_000, 30_000)
    }

    /// How long the initiator waits after a failed rotation before trying again: an eighth of an
    /// interval, at least 250 ms and at most 10 s.
    pub fn retry_ms(&self) -> u64 {
        (self.interval_ms / 8).clamp(250, 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_and_expiry_at_the_default_interval() {
        let s = Schedule::new(120_000).unwrap();
        assert_eq!(s.epoch_at(0), 0);
        assert_eq!(s.epoch_at(119_999), 0);
        assert_eq!(s.epoch_at(120_000), 1);
        assert_eq!(s.start(3), 360_000);
        // Two intervals plus a quarter: 270 s after the epoch starts.
        assert_eq!(s.expiry(1), 120_000 + 270_000);
        assert_eq!(s.answer_timeout_ms(), 30_000);
        assert_eq!(s.retry_ms(), 10_000);
    }

    #[test]
    fn neighbouring_epochs_are_acceptable_others_not() {
        let s = Schedule::new(1_000).unwrap();
        let now = 10_500; // epoch 10
        assert!(s.acceptable(9, now));
        assert!(s.acceptable(10, now));
        assert!(s.acceptable(11, now));
        assert!(!s.acceptable(8, now));
        assert!(!s.acceptable(12, now));
        assert!(!s.acceptable(u64::MAX, now));
        assert!(s.acceptable(0, 0));
    }

    #[test]
    fn out_of_range_intervals_are_refused() {
        assert_eq!(Schedule::new(0), Err(ScheduleError::Interval(0)));
        assert!(Schedule::new(MIN_INTERVAL_MS - 1).is_err());
        assert!(Schedule::new(MAX_INTERVAL_MS + 1).is_err());
        assert!(Schedule::new(MIN_INTERVAL_MS).is_ok());
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let s = Schedule::new(MAX_INTERVAL_MS).unwrap();
        assert_eq!(s.start(u64::MAX), u64::MAX);
        assert_eq!(s.expiry(u64::MAX), u64::MAX);
        assert_eq!(s.epoch_at(u64::MAX), u64::MAX / MAX_INTERVAL_MS);
    }
}
