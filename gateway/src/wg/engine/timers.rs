//! The timer thread: handshake retries, rekeys and keepalives for every peer, and pruning of
//! the receiver-index map.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Engine, PeerRef, TICK, lock};

impl Engine {
    /// Timers (handshake retries, rekeys, keepalives), until `stop`.
    pub fn run_timers(&self) -> io::Result<()> {
        let mut last_prune = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            let list: Vec<(usize, PeerRef)> = self
                .table()
                .peers
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((i, p.clone()?)))
                .collect();
            for (i, peer) in list {
                let mut peer = lock(&peer);
                let out = peer.tunn.update_timers();
                let endpoint = peer.endpoint;
                drop(peer);
                if let (Ok(Some(p)), Some(to)) = (out, endpoint) {
                    self.send(i, p, to);
                }
            }
            if last_prune.elapsed() >= Duration::from_secs(5) {
                last_prune = Instant::now();
                self.index_map()
                    .retain(|idx, _| self.index_table.in_use(*idx));
            }
        }
        Ok(())
    }
}
