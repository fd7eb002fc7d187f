//! The anti-replay window (RFC 6479 style): a ring of 64-bit words, [`WINDOW`] counters wide
//! below the highest counter accepted. `check` never changes state; `accept` is called only
//! after the packet authenticated, so a forgery cannot move the window.

/// Words in the ring (a power of two: positions are masked, not divided).
const WORDS: usize = 64;

/// Bits per word.
const WORD_BITS: u64 = 64;

/// Counters below the highest accepted one that are still tracked: one word fewer than the ring
/// (RFC 6479: the word being slid into is cleared whole), 4,032 packets, about 3 ms at 1.4 Mpps
/// of reordering.
pub const WINDOW: u64 = (WORDS as u64 - 1) * WORD_BITS;

// The spec promises at least 2,048 counters of reordering.
const _: () = assert!(WINDOW >= 2048);

/// A counter the window refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Seen before.
    Replay,
    /// Older than the window.
    TooOld,
}

/// Which counters were seen.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    ring: [u64; WORDS],
    /// The highest counter accepted; `None` before the first.
    top: Option<u64>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every counter is new.
    pub fn new() -> Self {
        Self {
            ring: [0; WORDS],
            top: None,
        }
    }

    /// Whether `counter` would be accepted (no state change).
    pub fn check(&self, counter: u64) -> Result<(), Refusal> {
        match self.top {
            None => return Ok(()),
            Some(top) if counter > top => return Ok(()),
            Some(top) if top - counter >= WINDOW => return Err(Refusal::TooOld),
            Some(_) => {}
        }
        let (word, bit) = position(counter);
        if self.ring[word] & bit != 0 {
            return Err(Refusal::Replay);
        }
        Ok(())
    }

    /// Marks `counter` seen (after authentication); refuses what `check` refuses.
    pub fn accept(&mut self, counter: u64) -> Result<(), Refusal> {
        self.check(counter)?;
        if self.top.is_none_or(|top| counter > top) {
            self.slide_to(counter);
            self.top = Some(counter);
        }
        let (word, bit) = position(counter);
        self.ring[word] |= bit;
        Ok(())
    }

    /// Clears the words between the current top word and `counter`'s word.
    fn slide_to(&mut self, counter: u64) {
        let new_word = counter / WORD_BITS;
        let steps = match self.top {
            None => WORDS as u64,
            Some(top) => (new_word - top / WORD_BITS).min(WORDS as u64),
        };
        for i in 1..=steps {
            let at = (new_word.wrapping_sub(steps).wrapping_add(i) as usize) & (WORDS - 1);
            self.ring[at] = 0;
        }
    }
}

fn position(counter: u64) -> (usize, u64) {
    let word = ((counter / WORD_BITS) as usize) & (WORDS - 1);
    (word, 1u64 << (counter % WORD_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_width() {
        assert_eq!(WINDOW, 4032);
    }

    #[test]
    fn in_order_and_duplicates() {
        let mut w = ReplayWindow::new();
        for c in 0..10_000u64 {
            assert_eq!(w.accept(c), Ok(()));
            assert_eq!(w.check(c), Err(Refusal::Replay));
        }
        assert_eq!(w.accept(9_999), Err(Refusal::Replay));
    }

    #[test]
    fn edges_just_inside_and_just_outside() {
        let mut w = ReplayWindow::new();
        let top = 100_000u64;
        w.accept(top).unwrap();
        // Just inside: the oldest tracked counter.
        assert_eq!(w.check(top + 1 - WINDOW), Ok(()));
        // Just outside.
        assert_eq!(w.check(top - WINDOW), Err(Refusal::TooOld));
        assert_eq!(w.accept(top - WINDOW), Err(Refusal::TooOld));
        assert_eq!(w.accept(top + 1 - WINDOW), Ok(()));
        assert_eq!(w.accept(top + 1 - WINDOW), Err(Refusal::Replay));
        // Every other counter in the window is still new.
        for c in (top + 2 - WINDOW)..top {
            assert_eq!(w.check(c), Ok(()), "counter {c}");
        }
        assert_eq!(w.check(0), Err(Refusal::TooOld));
    }

    #[test]
    fn reordering_within_the_window() {
        let mut w = ReplayWindow::new();
        let order = [5u64, 1, 0, 3, 2, 4, 70, 6, 69, 130, 7, 129];
        for c in order {
            assert_eq!(w.accept(c), Ok(()), "counter {c}");
        }
        for c in order {
            assert_eq!(w.accept(c), Err(Refusal::Replay), "counter {c}");
        }
        assert_eq!(w.check(8), Ok(()));
    }

    #[test]
    fn far_future_jump_clears_stale_bits() {
        let mut w = ReplayWindow::new();
        for c in 0..200 {
            w.accept(c).unwrap();
        }
        let far = 1u64 << 40;
        assert_eq!(w.accept(far), Ok(()));
        assert_eq!(w.check(199), Err(Refusal::TooOld));
        // Counters in the new window that alias old ring positions are new, not replays.
        for c in (far + 1 - WINDOW)..far {
            assert_eq!(w.check(c), Ok(()), "counter {c}");
        }
        // A jump of exactly one ring (aliasing every word) also clears.
        let mut w = ReplayWindow::new();
        w.accept(3).unwrap();
        let alias = 3 + (WORDS as u64) * WORD_BITS;
        w.accept(alias).unwrap();
        assert_eq!(w.check(alias - 64), Ok(()));
        assert_eq!(w.check(3), Err(Refusal::TooOld));
    }

    #[test]
    fn first_counter_may_be_anything_and_max_is_safe() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(u64::MAX - 1), Ok(()));
        assert_eq!(w.accept(u64::MAX - 1), Err(Refusal::Replay));
        assert_eq!(w.accept(u64::MAX), Ok(()));
        assert_eq!(w.accept(u64::MAX), Err(Refusal::Replay));
        assert_eq!(w.accept(0), Err(Refusal::TooOld));
    }

    /// A plain set of seen counters as the reference: the ring must agree with it everywhere
    /// inside the window, over a pseudo-random walk (fixed seed).
    #[test]
    fn agrees_with_a_reference_model() {
        let mut w = ReplayWindow::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut top: Option<u64> = None;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let base = top.unwrap_or(0);
            let c = match state % 10 {
                0 => base + (state >> 8) % 20_000,
                1..=3 => base + (state >> 8) % 70,
                _ => base.saturating_sub((state >> 8) % 4_200),
            };
            let expected = match top {
                Some(t) if c <= t && t - c >= WINDOW => Err(Refusal::TooOld),
                _ if seen.contains(&c) => Err(Refusal::Replay),
                _ => Ok(()),
            };
            assert_eq!(w.accept(c), expected, "counter {c}, top {top:?}");
            if expected.is_ok() {
                seen.insert(c);
                top = Some(top.map_or(c, |t| t.max(c)));
            }
        }
    }
}
