//! The timer thread: handshake retries, rekeys and keepalives for every peer, the per-second
//! reset of the handshake rate limiter, and pruning of the receiver-index map. Work per tick is
//! proportional to the active peers plus a twentieth of the idle ones, not to the whole set.
//!
//! gotatun's `update_timers` reads the clock itself, so no due time can be computed from
//! outside; instead each peer is classed from what `Tunn` shows. A peer is *hot* (ticked every
//! [`TICK`]) while it has a session, has a persistent keepalive, or its byte counts moved in
//! the last [`QUIET_AFTER`]. Otherwise it is *cold* and ticked once every [`COLD_TICKS`] ticks:
//! with no session and no keepalive, the only timer that fires within seconds is the
//! handshake retry, and a handshake in flight re-sends (and so counts bytes) every
//! REKEY_TIMEOUT + jitter (at most 5.333 s), which keeps its peer hot. A cold peer the data path
//! touches (a handshake started, a packet received) is seen within `COLD_TICKS * TICK` = 2 s,
//! before its first retry is due; what a cold peer can see up to 2 s late are expiries (cookie
//! after 120 s, keys zeroed after 540 s). Peers added or changed, and forced
//! handshakes, are woken at once.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gotatun::noise::Tunn;
use gotatun::packet::WgKind;

use super::{Engine, PeerRef, TICK, Table, TunQueue, UdpTransport, lock};

/// A cold peer is ticked once every this many ticks: 2 s at 100 ms, below REKEY_TIMEOUT (5 s)
/// with room for a late tick, so a handshake a cold peer starts is found hot before its first
/// retry is due. Measured with 10,000 idle peers (debug build, whole process): 8-11% of a core
/// when every peer is ticked every tick (the old scheme), 1.5% with 1 s, 1.0% with 2 s.
const COLD_TICKS: usize = 20;
/// How long a peer without session or keepalive stays hot after its byte counts last moved:
/// more than the longest handshake retry interval (REKEY_TIMEOUT + jitter = 5.333 s) plus one
/// tick, so a peer with a handshake in flight never goes cold between retries.
const QUIET_AFTER: Duration = Duration::from_secs(7);
/// How often receiver indices of ended sessions are dropped from the index map.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// What the timer thread last saw of a peer (under the peer's lock).
#[derive(Clone, Copy, Debug)]
pub(super) struct Watch {
    tx: usize,
    rx: usize,
    moved: Instant,
}

impl Watch {
    /// A new peer, counted as active from `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            tx: 0,
            rx: 0,
            moved: now,
        }
    }

    /// Notes the peer's byte counts; returns whether it must be ticked at the fine rate.
    fn observe(&mut self, tunn: &Tunn, now: Instant) -> bool {
        let (session, tx, rx, _, _) = tunn.stats();
        if (tx, rx) != (self.tx, self.rx) {
            (self.tx, self.rx, self.moved) = (tx, rx, now);
        }
        session.is_some()
            || tunn.persistent_keepalive().is_some()
            || now.saturating_duration_since(self.moved) < QUIET_AFTER
    }
}

/// Which peers the next tick visits.
#[derive(Debug, Default)]
struct Schedule {
    /// Peers ticked every tick (slot indices).
    hot: Vec<usize>,
    /// Next slot of the cold sweep.
    cursor: usize,
}

impl Table {
    /// Has the timer thread tick peer `i` at the fine rate from its next tick.
    pub(super) fn wake(&self, i: usize) {
        self.wake.lock().unwrap_or_else(|e| e.into_inner()).push(i);
    }

    /// The hot and woken peers and the next slice of the cold sweep, each once, in slot order.
    fn due(&self, s: &mut Schedule) -> Vec<(usize, PeerRef)> {
        let mut due = std::mem::take(&mut s.hot);
        due.append(&mut self.wake.lock().unwrap_or_else(|e| e.into_inner()));
        let slice = sweep(s.cursor, self.peers.len());
        s.cursor = slice.end;
        due.extend(slice);
        due.sort_unstable();
        due.dedup();
        due.into_iter()
            .filter_map(|i| Some((i, self.peers.get(i)?.clone()?)))
            .collect()
    }
}

/// The slots of a table of `n` the cold sweep visits next, from `cursor`: `1 / COLD_TICKS`
/// (rounded up) of the table per tick, so every slot once in [`COLD_TICKS`] ticks.
fn sweep(cursor: usize, n: usize) -> Range<usize> {
    let start = if cursor < n { cursor } else { 0 };
    start..n.min(start + n.div_ceil(COLD_TICKS))
}

impl<T: TunQueue, U: UdpTransport> Engine<T, U> {
    /// Timers (handshake retries, rekeys, keepalives), until `stop`.
    pub(crate) fn run_timers(&self) -> io::Result<()> {
        let mut schedule = Schedule::default();
        let mut last_prune = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            // Per-source handshake counts of both limiters start again every second whatever
            // the peers do (`try_reset_count` acts at most once a second).
            let keys = self.keys();
            keys.rate_limiter.try_reset_count();
            keys.under_load.try_reset_count();
            drop(keys);
            let due = self.table().due(&mut schedule);
            let now = Instant::now();
            for (i, peer) in due {
                if self.tick(i, &peer, now) {
                    schedule.hot.push(i);
                }
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = Instant::now();
                self.index_map()
                    .retain(|idx, _| self.index_table.in_use(*idx));
            }
        }
        Ok(())
    }

    /// Runs one peer's timers and sends what they produce; returns whether the peer is hot.
    fn tick(&self, i: usize, peer: &PeerRef, now: Instant) -> bool {
        let (out, hot) = visit(peer, now);
        if let Some((packet, to)) = out {
            self.send(i, packet, to);
        }
        hot
    }
}

/// Runs one peer's timers; returns what to send where, and whether the peer is hot.
fn visit(peer: &PeerRef, now: Instant) -> (Option<(WgKind, SocketAddr)>, bool) {
    let mut guard = lock(peer);
    let p = &mut *guard;
    let out = p.tunn.update_timers();
    let hot = p.watch.observe(&p.tunn, now);
    match (out, p.endpoint) {
        (Ok(Some(packet)), Some(to)) => (Some((packet, to)), hot),
        _ => (None, hot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::engine::PeerChange;

    #[test]
    fn the_cold_sweep_visits_every_slot_in_any_cold_ticks_window() {
        for n in [0, 1, 9, 10, 11, 95, 1_000, 10_001] {
            let mut cursor = 0;
            for window in 0..25 {
                let mut seen = vec![0u32; n];
                for _ in 0..COLD_TICKS {
                    let r = sweep(cursor, n);
                    assert!(r.len() <= n.div_ceil(COLD_TICKS), "n = {n}: {r:?}");
                    cursor = r.end;
                    for slot in r {
                        seen[slot] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c >= 1), "n = {n}, window {window}");
                // Shift the next window by one tick, so windows start mid-sweep too.
                cursor = sweep(cursor, n).end;
            }
        }
    }

    fn tunn(key: [u8; 32]) -> Tunn {
        Tunn::new(
            gotatun::x25519::StaticSecret::from([1; 32]),
            gotatun::x25519::PublicKey::from(key),
            None,
            None,
            gotatun::noise::index_table::IndexTable::from_os_rng(),
            std::sync::Arc::new(gotatun::noise::rate_limiter::RateLimiter::new(
                &gotatun::x25519::PublicKey::from([3; 32]),
                10,
            )),
        )
    }

    #[test]
    fn a_peer_without_session_or_keepalive_goes_cold_once_quiet() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        let mut tunn = tunn([2; 32]);
        assert!(w.observe(&tunn, t0), "new peers start hot");
        assert!(w.observe(&tunn, t0 + QUIET_AFTER - TICK));
        assert!(!w.observe(&tunn, t0 + QUIET_AFTER), "quiet: cold");
        // A handshake starts (as when the data path sends to the peer): bytes move, hot again.
        assert!(tunn.format_handshake_initiation(false).is_some());
        let t1 = t0 + QUIET_AFTER * 2;
        assert!(w.observe(&tunn, t1));
        assert!(w.observe(&tunn, t1 + QUIET_AFTER - TICK));
        tunn.set_persistent_keepalive(Some(25));
        assert!(
            w.observe(&tunn, t1 + QUIET_AFTER * 3),
            "keepalive: always hot"
        );
    }

    /// Runs one timer tick over the table at the simulated time `now`.
    fn tick(t: &Table, s: &mut Schedule, now: Instant) {
        for (i, p) in t.due(s) {
            if visit(&p, now).1 {
                s.hot.push(i);
            }
        }
    }

    #[test]
    fn a_cold_peer_that_starts_a_handshake_is_hot_within_cold_ticks() {
        let mut t = Table::default();
        let changes: Vec<PeerChange> = (0..50u8)
            .map(|k| PeerChange {
                public_key: [k; 32],
                ..PeerChange::default()
            })
            .collect();
        t.apply(false, &changes, tunn);
        let mut s = Schedule::default();
        let start = Instant::now();
        tick(&t, &mut s, start);
        assert_eq!(s.hot.len(), 50, "added peers are woken and hot");
        let quiet = start + QUIET_AFTER;
        tick(&t, &mut s, quiet);
        assert!(s.hot.is_empty(), "quiet peers go cold: {:?}", s.hot);
        // The data path sends to peer 37: its handshake starts outside the timer thread.
        let p = t.by_key_ref(&[37; 32]).expect("peer 37").1;
        assert!(lock(&p).tunn.format_handshake_initiation(false).is_some());
        for n in 1..=COLD_TICKS as u32 {
            tick(&t, &mut s, quiet + TICK * n);
        }
        assert_eq!(
            s.hot,
            [37],
            "found by the cold sweep within COLD_TICKS ticks"
        );
        // A woken peer is ticked at the next tick.
        t.wake(3);
        let due: Vec<usize> = t.due(&mut s).into_iter().map(|(i, _)| i).collect();
        assert!(due.contains(&3) && due.contains(&37), "{due:?}");
    }
}
