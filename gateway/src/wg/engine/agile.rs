//! The agile tunnel on the WireGuard data path (docs/design/agile-tunnel.md): per peer, a `Sealer` and
//! an `Opener` from `pqgate_core::agile`, keyed per epoch by the PQ channel through
//! [`Engine::install_agile`]. A peer with an agile key sends every data packet agile-sealed
//! (message type 0x11) under the registry AEAD it was given; one without stays on WireGuard.
//! Inbound type-0x11 messages are found by their receiver index, opened (anti-replay window,
//! usage limits, key updates inside the epoch), source-checked like WireGuard data and delivered
//! to the TUN. The initiator of the channel announces a new epoch with an agile keepalive; the
//! responder switches on it, or [`SWITCH_AFTER_MS`] after its own install (one-way traffic).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use pqgate_agility::plugin::AeadAlgorithm;
use pqgate_core::agile::{
    DirectionKeys, HEADER_LEN, InstallError, Limits, OpenError, Opener, SealError, Sealer,
    SessionKeys,
};

use super::{Engine, Peer, TunQueue, UdpTransport, bump, lock};
use pqgate_core::ip;

/// How long the previous epoch's receiving key stays usable after a new one is installed, so
/// packets in flight at rotation are not lost.
pub(super) const GRACE_MS: u64 = 5_000;

/// The longest a responder waits after its install before it sends under a new epoch without
/// a packet of that epoch from the initiator (whose keepalive may be lost, or whose traffic is
/// one-way): the initiator installs about a round trip after the responder and opens the
/// previous epoch for [`GRACE_MS`] after its own install, so nothing sent either side of the
/// switch is lost. Shorter epochs use [`switch_after_ms`].
pub(crate) const SWITCH_AFTER_MS: u64 = GRACE_MS / 2;

/// The responder's switch deadline for epochs of `interval_ms`: a quarter of the epoch, at least
/// 500 ms (a round trip and the initiator's install), at most [`SWITCH_AFTER_MS`].
pub(crate) fn switch_after_ms(interval_ms: u64) -> u64 {
    (interval_ms / 4).clamp(500, SWITCH_AFTER_MS)
}

/// One epoch's keys for one peer, from the PQ channel.
pub(crate) struct AgileInstall {
    /// Epoch number (strictly increasing per peer).
    pub epoch: u64,
    /// The AEAD from the registry (self-tested), e.g. SM4-GCM from a plugin.
    pub aead: Arc<dyn AeadAlgorithm>,
    /// Its usage limits when sealing (`Limits::for_aead` at the MTU, with any operator cap).
    pub send_limits: Limits,
    /// Its usage limits when opening (`Limits::for_receiving`: what any conforming sender may
    /// send, so peers need not agree on MTU or caps).
    pub recv_limits: Limits,
    /// Send and receive keys of this side.
    pub keys: SessionKeys,
    /// The index the peer puts in packets to us (we chose it).
    pub local_index: u32,
    /// The index we put in packets to the peer (it chose it).
    pub remote_index: u32,
    /// Send under the new key at once (the channel's initiator: the peer installed first);
    /// otherwise only after the first packet under it arrives, so nothing is sent that the peer
    /// cannot open yet, or after `switch_after_ms`.
    pub send_now: bool,
    /// The responder's deadline for the switch ([`switch_after_ms`] of the epoch length).
    pub switch_after_ms: u64,
}

/// Why agile keys could not be installed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgileError {
    /// No such peer.
    #[error("unknown peer")]
    UnknownPeer,
    /// The keys do not fit the AEAD, the epoch does not advance, or the MTU is out of range.
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// A peer's agile state.
pub(super) struct AgileSession {
    sealer: Sealer,
    opener: Opener,
    aead_name: String,
    /// A send key waiting for the peer's first packet of its epoch (or its deadline).
    pending: Option<PendingSend>,
}

/// The responder's send key of a new epoch, not used yet.
struct PendingSend {
    epoch: u64,
    index: u32,
    keys: DirectionKeys,
    /// Engine milliseconds from which it is used anyway ([`SWITCH_AFTER_MS`]).
    switch_at: u64,
}

/// A peer's agile tunnel as `wg show`-style status and metrics see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgileStatus {
    /// The registry AEAD.
    pub aead: String,
    /// The epoch this side sends under (`None` before the first is confirmed).
    pub send_epoch: Option<u64>,
    /// The key generation it sends under within that epoch.
    pub send_generation: u64,
    /// The newest epoch this side opens.
    pub recv_epoch: Option<u64>,
    /// The key generation it opens within that epoch.
    pub recv_generation: u64,
    /// Key updates inside epochs so far, both directions.
    pub key_updates: u64,
    /// Data packets sealed and opened by the agile tunnel so far.
    pub tx_packets: u64,
    /// See `tx_packets`.
    pub rx_packets: u64,
}

/// Makes peer `i` the owner of exactly the receiver indices `held` (its opener's current and
/// previous epoch) in `map`. Indices come from each epoch's exporter, so two peers can draw the
/// same one (about live indices / 2^32 per install: ~0.3 a day for a node with 1,000 peers at
/// 120 s); both are kept and an inbound packet is tried against each (a wrong owner's failed
/// open counts as a forgery against its key: harmless, the limit is 2^36 or more per key and
/// each epoch starts afresh), so a collision costs nothing but a second AEAD check.
fn set_owner(map: &mut HashMap<u32, Vec<usize>>, i: usize, held: &[u32]) {
    map.retain(|index, owners| {
        if !held.contains(index) {
            owners.retain(|&o| o != i);
        }
        !owners.is_empty()
    });
    for &index in held {
        let owners = map.entry(index).or_default();
        if !owners.contains(&i) {
            owners.push(i);
        }
    }
}

/// A peer's agile tunnel status, `None` without agile keys.
pub(super) fn status_of(p: &Peer) -> Option<AgileStatus> {
    let s = p.agile.as_ref()?;
    Some(AgileStatus {
        aead: s.aead_name.clone(),
        send_epoch: s.sealer.epoch(),
        send_generation: s.sealer.generation(),
        recv_epoch: s.opener.epoch(),
        recv_generation: s.opener.generation(),
        key_updates: p.stats.agile_key_updates,
        tx_packets: p.stats.agile_tx_packets,
        rx_packets: p.stats.agile_rx_packets,
    })
}

impl AgileSession {
    /// A session for `install`'s AEAD and limits, with no keys yet.
    fn new(install: &AgileInstall, mtu: u16) -> Result<Self, InstallError> {
        let aead = &install.aead;
        Ok(Self {
            sealer: Sealer::new(Arc::clone(aead), install.send_limits, usize::from(mtu))?,
            opener: Opener::new(Arc::clone(aead), install.recv_limits, GRACE_MS),
            aead_name: aead.name().to_owned(),
            pending: None,
        })
    }

    /// Uses the pending send key when the peer confirmed it (`confirmed`: a packet just opened
    /// under the newest installed epoch, which is the pending key's) or its deadline passed.
    /// Returns false when the sealer refused it.
    fn maybe_switch(&mut self, now: u64, confirmed: bool) -> bool {
        let due = self
            .pending
            .as_ref()
            .is_some_and(|p| confirmed || now >= p.switch_at);
        match self.pending.take() {
            Some(p) if due => self.sealer.install(p.epoch, p.index, &p.keys).is_ok(),
            other => {
                self.pending = other;
                true
            }
        }
    }
}

impl<T: TunQueue, U: UdpTransport> Engine<T, U> {
    /// Installs (or rotates to) agile keys for a peer: from now on its data packets are
    /// agile-sealed; packets under the previous epoch are still accepted for [`GRACE_MS`].
    pub(crate) fn install_agile(
        &self,
        public_key: &[u8; 32],
        install: AgileInstall,
    ) -> Result<(), AgileError> {
        let (i, peer) = self
            .peer_by_key(public_key)
            .ok_or(AgileError::UnknownPeer)?;
        let now = self.millis();
        let mut map = self.agile_index();
        let mut p = lock(&peer);
        let mut session = match p.agile.take() {
            Some(mut s) if s.aead_name == install.aead.name() => {
                // A reload may have changed the limits (e.g. `agile_key_packets`).
                s.sealer.set_limits(install.send_limits);
                s.opener.set_limits(install.recv_limits);
                s
            }
            _ => AgileSession::new(&install, self.mtu)?,
        };
        let AgileInstall {
            epoch,
            keys,
            local_index,
            remote_index,
            send_now,
            switch_after_ms,
            ..
        } = install;
        let installed = session.opener.install(now, epoch, local_index, &keys.recv);
        let installed = installed.and_then(|()| {
            if send_now {
                session.pending = None;
                return session.sealer.install(epoch, remote_index, &keys.send);
            }
            // A previous epoch's send key still pending (its switch never came): the initiator
            // has long installed it, use it before queueing this one.
            if !session.maybe_switch(u64::MAX, false) {
                p.stats.agile_switch_failures += 1;
            }
            session.pending = Some(PendingSend {
                epoch,
                index: remote_index,
                keys: keys.send,
                switch_at: now.saturating_add(switch_after_ms),
            });
            Ok(())
        });
        let held: Vec<u32> = session.opener.indices().collect();
        p.agile = Some(session);
        set_owner(&mut map, i, &held);
        drop(map);
        installed?;
        // Tell the responder at once that this side sends under the new epoch.
        let keepalive = send_now
            .then(|| Self::agile_seal(&mut p, || now, &[]))
            .flatten()
            .and_then(Result::ok)
            .zip(p.endpoint);
        drop(p);
        if let Some((packet, to)) = keepalive {
            self.send_raw(&packet, to);
        }
        Ok(())
    }

    /// The agile tunnel of a peer, for status and metrics.
    pub(crate) fn agile_status(&self, public_key: &[u8; 32]) -> Option<AgileStatus> {
        let (_, peer) = self.peer_by_key(public_key)?;
        status_of(&lock(&peer))
    }

    /// Drops a peer's agile keys: it goes back to WireGuard for its data.
    pub(crate) fn remove_agile(&self, public_key: &[u8; 32]) -> bool {
        let Some((i, peer)) = self.peer_by_key(public_key) else {
            return false;
        };
        lock(&peer).agile = None;
        set_owner(&mut self.agile_index(), i, &[]);
        true
    }

    /// Seals `ip` (empty: a keepalive) for a peer with an agile send key; `None` when it has
    /// none yet (before the first epoch is confirmed): WireGuard carries it. `now` gives engine
    /// milliseconds, asked only while a switch is pending (its deadline), not per packet.
    /// Counts packets, bytes and key updates.
    pub(super) fn agile_seal(
        peer: &mut Peer,
        now: impl FnOnce() -> u64,
        ip: &[u8],
    ) -> Option<Result<BytesMut, SealError>> {
        let session = peer.agile.as_mut()?;
        if session.pending.is_some() && !session.maybe_switch(now(), false) {
            peer.stats.agile_switch_failures += 1;
        }
        let session = peer.agile.as_mut().filter(|s| s.sealer.epoch().is_some())?;
        let mut out = Vec::with_capacity(session.sealer.sealed_len(ip.len()));
        let sealed = match session.sealer.seal(ip, &mut out) {
            Ok(sealed) => sealed,
            Err(e) => return Some(Err(e)),
        };
        let stats = &mut peer.stats;
        stats.agile_key_updates += u64::from(sealed.key_updated);
        // Counted as sent only when it can be (the data path drops it without an endpoint).
        if peer.endpoint.is_some() {
            stats.agile_tx_bytes += out.len() as u64;
            stats.agile_tx_packets += u64::from(!ip.is_empty());
        }
        // `Bytes::from(Vec)` then `BytesMut::from` take the buffer over: no second copy.
        Some(Ok(BytesMut::from(bytes::Bytes::from(out))))
    }

    /// An inbound type-0x11 message.
    pub(super) fn agile_data(&self, d: BytesMut, src: SocketAddr, deliver: &mut dyn FnMut(&[u8])) {
        let Some(index) = d
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .filter(|_| d.len() >= HEADER_LEN)
        else {
            return bump(&self.counters.garbage);
        };
        // Almost always one owner; two peers may have drawn the same index (see `set_owner`).
        // The rest is copied only on a collision: no allocation per packet otherwise.
        let (first, rest) = match self.agile_index().get(&index).map(Vec::as_slice) {
            Some([one]) => (Some(*one), Vec::new()),
            Some([one, more @ ..]) => (Some(*one), more.to_vec()),
            _ => (None, Vec::new()),
        };
        let owners = first.into_iter().chain(rest);
        let now = self.millis();
        let mut inner = Vec::new();
        let mut error = OpenError::UnknownIndex(index);
        for i in owners {
            let Some(peer) = self.peer(i) else { continue };
            let mut p = lock(&peer);
            let Some(session) = p.agile.as_mut() else {
                continue;
            };
            let opened = match session.opener.open(now, &d, &mut inner) {
                Ok(o) => o,
                Err(e) => {
                    error = e;
                    continue;
                }
            };
            // The peer sends under the newest epoch: this side may follow now.
            if !session.maybe_switch(now, opened.latest) {
                p.stats.agile_switch_failures += 1;
                bump(&self.counters.protocol);
            }
            p.stats.agile_key_updates += u64::from(opened.key_updated);
            p.endpoint = Some(src);
            if opened.len == 0 {
                p.stats.agile_rx_bytes += d.len() as u64;
                return; // keepalive
            }
            drop(p);
            let packet = inner.get(..opened.len).unwrap_or_default();
            return self.agile_deliver(i, &peer, d.len(), packet, deliver);
        }
        self.count_agile_error(&error);
    }

    /// An opened agile packet of peer `i`: source-checked like WireGuard data, counted, handed to
    /// the TUN.
    fn agile_deliver(
        &self,
        i: usize,
        peer: &super::PeerRef,
        wire_len: usize,
        packet: &[u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let allowed = ip::source(packet).is_some_and(|s| self.table().routes.allows(s, i));
        if !allowed {
            return bump(&self.counters.bad_source);
        }
        let mut p = lock(peer);
        p.stats.rx_packets += 1;
        p.stats.agile_rx_packets += 1;
        p.stats.agile_rx_bytes += wire_len as u64;
        drop(p);
        bump(&self.counters.agile_rx);
        deliver(packet);
    }

    fn count_agile_error(&self, e: &OpenError) {
        let c = &self.counters;
        match e {
            OpenError::Replay(_) | OpenError::TooOld(_) => bump(&c.replay),
            OpenError::Auth => bump(&c.decrypt),
            OpenError::UnknownIndex(_) | OpenError::Phase(_) => bump(&c.unknown_peer),
            _ => bump(&c.protocol),
        }
    }
}

#[cfg(test)]
mod tests {
    use pqgate_agility::Registry;
    use pqgate_core::agile::derive_direction_keys;
    use pqgate_core::pqpsk::Role;

    use super::*;

    /// A responder's session for `aead` with epoch 1 sending and epoch 2 pending until
    /// `switch_at`.
    fn responder(switch_at: u64) -> AgileSession {
        let registry = Registry::power_on();
        let aead = registry.aead("AES-256-GCM").expect("AES-256-GCM");
        let limits = Limits::for_aead(aead.as_ref(), None, 1420);
        let keys = |seed: u8| {
            let out: Vec<u8> = (0..88u8).map(|i| i.wrapping_mul(7) ^ seed).collect();
            derive_direction_keys(&out, 32, 12, Role::Responder).expect("keys")
        };
        let mut sealer = Sealer::new(Arc::clone(&aead), limits, 1420).expect("sealer");
        sealer.install(1, 10, &keys(1).send).expect("epoch 1");
        AgileSession {
            sealer,
            opener: Opener::new(Arc::clone(&aead), limits, GRACE_MS),
            aead_name: aead.name().to_owned(),
            pending: Some(PendingSend {
                epoch: 2,
                index: 20,
                keys: keys(2).send,
                switch_at,
            }),
        }
    }

    #[test]
    fn the_responder_switches_on_the_new_epoch_or_its_deadline_only() {
        let mut s = responder(1_000);
        assert!(s.maybe_switch(999, false));
        assert!(s.maybe_switch(999, false), "a packet of the previous epoch");
        assert_eq!(s.sealer.epoch(), Some(1));
        assert!(
            s.maybe_switch(10, true),
            "the initiator's first packet under the newest epoch"
        );
        assert_eq!(s.sealer.epoch(), Some(2));
        assert!(s.pending.is_none());

        let mut s = responder(1_000);
        assert!(
            s.maybe_switch(1_000, false),
            "the deadline (one-way traffic)"
        );
        assert_eq!(s.sealer.epoch(), Some(2));
    }

    #[test]
    fn a_refused_pending_key_is_reported_and_dropped() {
        let mut s = responder(0);
        if let Some(p) = s.pending.as_mut() {
            p.epoch = 0; // older than the installed epoch 1
        }
        assert!(!s.maybe_switch(5, false));
        assert_eq!(s.sealer.epoch(), Some(1));
        assert!(s.pending.is_none());
    }

    #[test]
    fn switch_deadline_follows_short_epochs() {
        assert_eq!(switch_after_ms(120_000), SWITCH_AFTER_MS);
        assert_eq!(switch_after_ms(4_000), 1_000);
        assert_eq!(switch_after_ms(1_000), 500);
    }

    #[test]
    fn colliding_receiver_indices_keep_both_owners() {
        let mut map = HashMap::new();
        set_owner(&mut map, 1, &[10, 11]);
        set_owner(&mut map, 2, &[11, 12]);
        assert_eq!(
            map.get(&11),
            Some(&vec![1, 2]),
            "a collision keeps both peers"
        );
        // Peer 1 rotates: 10 goes, 11 stays its previous epoch, 13 is new.
        set_owner(&mut map, 1, &[13, 11]);
        assert_eq!(map.get(&10), None);
        assert_eq!(map.get(&11), Some(&vec![1, 2]));
        assert_eq!(map.get(&13), Some(&vec![1]));
        set_owner(&mut map, 2, &[]);
        assert_eq!(map.get(&11), Some(&vec![1]));
        assert_eq!(map.get(&12), None);
        set_owner(&mut map, 1, &[]);
        assert!(map.is_empty());
    }
}
