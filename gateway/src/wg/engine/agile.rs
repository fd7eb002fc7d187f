//! The agile tunnel on the WireGuard data path (docs/agile-tunnel.md): per peer, a `Sealer` and
//! an `Opener` from `pqgate_core::agile`, keyed per epoch by the PQ channel through
//! [`Engine::install_agile`]. A peer with an agile key sends every data packet agile-sealed
//! (message type 0x11) under the registry AEAD it was given; one without stays on WireGuard.
//! Inbound type-0x11 messages are found by their receiver index, opened (anti-replay window,
//! usage limits), source-checked like WireGuard data and delivered to the TUN.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use pqgate_agility::plugin::AeadAlgorithm;
use pqgate_core::agile::{
    DirectionKeys, HEADER_LEN, InstallError, Limits, OpenError, Opener, SealError, Sealer,
    SessionKeys,
};

use super::{Engine, Peer, bump, lock};
use crate::wg::route;

/// How long the previous epoch's receiving key stays usable after a new one is installed, so
/// packets in flight at rotation are not lost.
pub const GRACE_MS: u64 = 5_000;

/// One epoch's keys for one peer, from the PQ channel.
pub struct AgileInstall {
    /// Epoch number (strictly increasing per peer).
    pub epoch: u64,
    /// The AEAD from the registry (self-tested), e.g. SM4-GCM from a plugin.
    pub aead: Arc<dyn AeadAlgorithm>,
    /// Its usage limits (`Limits::for_aead`).
    pub limits: Limits,
    /// Send and receive keys of this side.
    pub keys: SessionKeys,
    /// The index the peer puts in packets to us (we chose it).
    pub local_index: u32,
    /// The index we put in packets to the peer (it chose it).
    pub remote_index: u32,
    /// Send under the new key at once (the channel's initiator: the peer installed first);
    /// otherwise only after the first packet under it arrives, so nothing is sent that the peer
    /// cannot open yet.
    pub send_now: bool,
}

/// Why agile keys could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum AgileError {
    /// No such peer.
    #[error("unknown peer")]
    UnknownPeer,
    /// The local index is held by another peer.
    #[error("receiver index {0:#x} is in use")]
    IndexInUse(u32),
    /// The keys do not fit the AEAD, the epoch does not advance, or the MTU is out of range.
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// A peer's agile state.
pub(super) struct AgileSession {
    sealer: Sealer,
    opener: Opener,
    aead_name: String,
    /// A send key waiting for the peer's first packet of its epoch: (epoch, index, keys).
    pending: Option<(u64, u32, DirectionKeys)>,
}

impl Engine {
    /// Installs (or rotates to) agile keys for a peer: from now on its data packets are
    /// agile-sealed; packets under the previous epoch are still accepted for [`GRACE_MS`].
    pub fn install_agile(
        &self,
        public_key: &[u8; 32],
        install: AgileInstall,
    ) -> Result<(), AgileError> {
        let (i, peer) = self
            .peer_by_key(public_key)
            .ok_or(AgileError::UnknownPeer)?;
        let now = self.millis();
        let mut map = self.agile_index();
        if map
            .get(&install.local_index)
            .is_some_and(|&owner| owner != i)
        {
            return Err(AgileError::IndexInUse(install.local_index));
        }
        let mut p = lock(&peer);
        let name = install.aead.name().to_owned();
        let session = match p.agile.take() {
            Some(s) if s.aead_name == name => s,
            _ => AgileSession {
                sealer: Sealer::new(
                    Arc::clone(&install.aead),
                    install.limits,
                    usize::from(self.mtu),
                )?,
                opener: Opener::new(Arc::clone(&install.aead), install.limits, GRACE_MS),
                aead_name: name,
                pending: None,
            },
        };
        let mut session = session;
        let AgileInstall {
            epoch,
            keys,
            local_index,
            remote_index,
            send_now,
            ..
        } = install;
        let installed = session
            .opener
            .install(now, epoch, local_index, &keys.recv)
            .and_then(|()| {
                if send_now {
                    session.pending = None;
                    session.sealer.install(epoch, remote_index, &keys.send)
                } else {
                    session.pending = Some((epoch, remote_index, keys.send));
                    Ok(())
                }
            });
        let still_used: Vec<u32> = session.opener.indices().collect();
        p.agile = Some(session);
        installed?;
        map.retain(|idx, owner| *owner != i || still_used.contains(idx));
        map.insert(local_index, i);
        Ok(())
    }

    /// Drops a peer's agile keys: it goes back to WireGuard for its data.
    pub fn remove_agile(&self, public_key: &[u8; 32]) -> bool {
        let Some((i, peer)) = self.peer_by_key(public_key) else {
            return false;
        };
        lock(&peer).agile = None;
        self.agile_index().retain(|_, owner| *owner != i);
        true
    }

    /// Seals `ip` for a peer with an agile send key; `None` when it has none yet (before the
    /// first epoch is confirmed by the peer's first agile packet): WireGuard carries it.
    pub(super) fn agile_seal(peer: &mut Peer, ip: &[u8]) -> Option<Result<BytesMut, SealError>> {
        let session = peer.agile.as_mut().filter(|s| s.sealer.epoch().is_some())?;
        let mut out = Vec::with_capacity(session.sealer.sealed_len(ip.len()));
        // `Bytes::from(Vec)` then `BytesMut::from` take the buffer over: no second copy.
        Some(
            session
                .sealer
                .seal(ip, &mut out)
                .map(|_| BytesMut::from(bytes::Bytes::from(out))),
        )
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
        let found = self.agile_index().get(&index).copied();
        let Some((i, peer)) = found.and_then(|i| Some((i, self.peer(i)?))) else {
            return bump(&self.counters.unknown_peer);
        };
        let now = self.millis();
        let mut inner = Vec::new();
        let mut p = lock(&peer);
        let Some(session) = p.agile.as_mut() else {
            return bump(&self.counters.unknown_peer);
        };
        let opened = match session.opener.open(now, &d, &mut inner) {
            Ok(o) => o,
            Err(e) => return self.count_agile_error(&e),
        };
        // The peer sends under its newest epoch: ours may follow now.
        if session
            .pending
            .as_ref()
            .is_some_and(|(epoch, _, _)| *epoch == opened.epoch)
            && let Some((epoch, index, keys)) = session.pending.take()
            && session.sealer.install(epoch, index, &keys).is_err()
        {
            bump(&self.counters.protocol);
        }
        p.endpoint = Some(src);
        drop(p);
        if opened.len == 0 {
            return; // keepalive
        }
        let packet = inner.get(..opened.len).unwrap_or_default();
        let allowed = route::source(packet).is_some_and(|s| self.table().routes.allows(s, i));
        if !allowed {
            return bump(&self.counters.bad_source);
        }
        lock(&peer).stats.rx_packets += 1;
        bump(&self.counters.agile_rx);
        deliver(packet);
    }

    fn count_agile_error(&self, e: &OpenError) {
        let c = &self.counters;
        match e {
            OpenError::Replay(_) | OpenError::TooOld(_) => bump(&c.replay),
            OpenError::Auth => bump(&c.decrypt),
            OpenError::UnknownIndex(_) => bump(&c.unknown_peer),
            _ => bump(&c.protocol),
        }
    }
}
