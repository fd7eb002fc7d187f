//! The [`PskSink`] of one interface: PQ PSKs and agile tunnel keys into its engine, and the
//! policy on expiry (pq-required: a PSK nobody holds, sessions reset, agile keys dropped;
//! pq-preferred: the peer's static PSK or none for the next handshake, agile keys dropped).
//! Secrets are wiped after use and never logged.

use std::collections::BTreeMap;
use std::sync::Arc;

use pqgate_agility::Registry;
use pqgate_agility::plugin::AeadAlgorithm;
use pqgate_core::agile;
use pqgate_core::pqpsk::{Psk, Role, WgKey};
use pqgate_core::wg::{Key32, PresharedKey, WireguardConfig};
use zeroize::Zeroize;

use super::{PqError, blocking_psk, required};
use crate::net::tun::Tun;
use crate::pqpsk::{Exporter, PqPskError, PskSink};
use crate::wg::engine::{AgileInstall, Engine, KernelUdp, PeerChange, TunQueue, UdpTransport};

/// Hands derived PSKs (and agile tunnel keys) to one interface's engine (over the kernel's
/// TUN and UDP, or the in-memory transports in tests).
pub(super) struct EngineSink<T = Tun, U = KernelUdp> {
    pub(super) engine: Arc<Engine<T, U>>,
    /// This interface's public key.
    pub(super) local: WgKey,
    /// Peers whose data goes through the agile tunnel, with their AEAD (replaced on reload).
    pub(super) agile: std::sync::Mutex<AgileMap>,
    /// The static PSKs of pq-preferred peers, for their fall-back (replaced on reload).
    pub(super) statics: std::sync::Mutex<StaticMap>,
    pub(super) registry: Arc<Registry>,
}

/// Peer -> its agile tunnel's settings.
pub(super) type AgileMap = BTreeMap<WgKey, AgileChoice>;

/// One peer's agile tunnel settings, from its `[wireguard.peer.pq]` and the interface's epoch.
#[derive(Clone)]
pub(super) struct AgileChoice {
    /// The registry AEAD (self-tested).
    pub(super) aead: Arc<dyn AeadAlgorithm>,
    /// `agile_key_packets`: the operator's lower cap on packets per key.
    pub(super) key_packets: Option<u64>,
    /// The responder's switch deadline for this interface's epoch length.
    pub(super) switch_after_ms: u64,
}

#[cfg(test)]
impl AgileChoice {
    /// `aead` with no cap and the default switch deadline.
    pub(super) fn new(aead: Arc<dyn AeadAlgorithm>) -> Self {
        Self {
            aead,
            key_packets: None,
            switch_after_ms: crate::wg::engine::SWITCH_AFTER_MS,
        }
    }
}

/// Peer -> its configured static PSK (`None`: it has none). Only pq-preferred peers are in it;
/// `PresharedKey` wipes its bytes on drop.
pub(super) type StaticMap = BTreeMap<WgKey, Option<PresharedKey>>;

/// The static PSKs of interface `i`'s (`w`) pq-preferred peers, inline or from their key file.
/// A file that cannot be read (it was read when the config was loaded) leaves its peer out, with
/// a warning: that peer's fall-back then blocks it instead (fail closed).
pub(super) fn static_map(i: usize, w: &WireguardConfig, warnings: &mut Vec<String>) -> StaticMap {
    let mut map = BTreeMap::new();
    for (j, p) in w.peers.iter().enumerate() {
        if p.pq.is_none() || required(w, p) {
            continue;
        }
        let psk = match (&p.preshared_key, &p.preshared_key_file) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(path)) => match crate::wg::keyfile::preshared_key(path) {
                Ok(k) => Some(k),
                Err(e) => {
                    warnings.push(format!(
                        "wireguard[{i}].peer[{j}].preshared_key_file: {e} (a pq-preferred \
                         fall-back will block the peer instead)"
                    ));
                    continue;
                }
            },
            (None, None) => None,
        };
        map.insert(*p.public_key.as_bytes(), psk);
    }
    map
}

/// The agile AEADs interface `i` (`w`) asks for, each looked up in the registry.
pub(super) fn agile_map(
    registry: &Registry,
    i: usize,
    w: &WireguardConfig,
) -> Result<AgileMap, PqError> {
    let mut map = BTreeMap::new();
    let interval_ms =
        w.pq.as_ref()
            .map_or(0, |pq| pq.rotation_interval_secs.saturating_mul(1000));
    for (j, p) in w.peers.iter().enumerate() {
        let Some(q) = p.pq.as_ref() else { continue };
        let Some(name) = q.agile.as_deref() else {
            continue;
        };
        let aead = registry.aead(name).ok_or_else(|| PqError::Start {
            iface: w.name.clone(),
            source: PqPskError::Config {
                key: format!("wireguard[{i}].peer[{j}].pq.agile"),
                message: format!("{name:?} is not an enabled AEAD (pqgate crypto list)"),
            },
        })?;
        let choice = AgileChoice {
            aead,
            key_packets: q.agile_key_packets,
            switch_after_ms: crate::wg::engine::switch_after_ms(interval_ms),
        };
        map.insert(*p.public_key.as_bytes(), choice);
    }
    Ok(map)
}

impl<T: TunQueue, U: UdpTransport> EngineSink<T, U> {
    /// A reload's agile settings: a peer whose AEAD changed or went away drops its keys now
    /// (back to WireGuard until the next epoch installs the new AEAD's keys).
    pub(super) fn replace_agile(&self, map: AgileMap) {
        let mut current = self.agile.lock().unwrap_or_else(|e| e.into_inner());
        for (peer, old) in current.iter() {
            if map
                .get(peer)
                .is_none_or(|new| new.aead.name() != old.aead.name())
            {
                self.engine.remove_agile(peer);
            }
        }
        *current = map;
    }

    /// A reload's static PSKs (the old ones are wiped as they drop).
    pub(super) fn replace_statics(&self, map: StaticMap) {
        *self.statics.lock().unwrap_or_else(|e| e.into_inner()) = map;
    }
}

impl<T: TunQueue, U: UdpTransport> EngineSink<T, U> {
    /// Sets the peer's PSK for its next handshake (`None`: no PSK).
    fn set_psk(&self, peer: WgKey, psk: Option<&[u8; 32]>) {
        let mut change = PeerChange {
            public_key: peer,
            update_only: true,
            preshared_key: Some(psk.copied()),
            ..PeerChange::default()
        };
        // Serialised with `wg set` on the UAPI socket and reloads.
        let guard = crate::wg::uapi::config_lock();
        self.engine.apply(false, std::slice::from_ref(&change));
        drop(guard);
        if let Some(Some(k)) = change.preshared_key.as_mut() {
            k.zeroize();
        }
    }
}

/// Builds an epoch's agile keys from the exporter (context and length fixed first).
type AgileBuilder<'a> = Box<dyn FnOnce(&Exporter<'_>) -> Option<AgileInstall> + 'a>;

impl<T: TunQueue, U: UdpTransport> EngineSink<T, U> {
    /// Exporter output: both directions' keys and IVs, then 4 bytes of the initiator's and 4
    /// of the responder's receiver index (so no message carries them).
    pub(super) fn agile_keys<'a>(
        &'a self,
        peer: WgKey,
        epoch: u64,
        initiator: bool,
        choice: &'a AgileChoice,
    ) -> Result<AgileBuilder<'a>, String> {
        let aead = &choice.aead;
        let (i_key, r_key) = if initiator {
            (self.local, peer)
        } else {
            (peer, self.local)
        };
        let context = agile::exporter_context(epoch, aead.name(), &i_key, &r_key)
            .map_err(|e| e.to_string())?;
        let (key_len, nonce_len) = (aead.key_len(), aead.nonce_len());
        let keys_len = agile::exporter_len(key_len, nonce_len);
        let declared = self.registry.aead_confidentiality_limit(aead.name());
        let send_limits = agile::Limits::for_aead(aead.as_ref(), declared, self.engine.mtu())
            .capped(choice.key_packets);
        let recv_limits = agile::Limits::for_receiving(aead.as_ref(), declared);
        let role = if initiator {
            Role::Initiator
        } else {
            Role::Responder
        };
        Ok(Box::new(move |export| {
            let mut out = zeroize::Zeroizing::new(vec![0u8; keys_len + 8]);
            if !export(agile::EXPORTER_LABEL, &context, &mut out[..]) {
                return None;
            }
            let keys =
                agile::derive_direction_keys(&out[..keys_len], key_len, nonce_len, role).ok()?;
            let index = |at: usize| {
                out.get(keys_len + at..keys_len + at + 4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, u32::from_le_bytes)
            };
            let (i_index, r_index) = (index(0), index(4));
            let (local_index, remote_index) = if initiator {
                (i_index, r_index)
            } else {
                (r_index, i_index)
            };
            Some(AgileInstall {
                epoch,
                aead: Arc::clone(aead),
                send_limits,
                recv_limits,
                keys,
                local_index,
                remote_index,
                send_now: initiator,
                switch_after_ms: choice.switch_after_ms,
            })
        }))
    }
}

impl<T: TunQueue + 'static, U: UdpTransport + 'static> PskSink for EngineSink<T, U> {
    fn install(&self, peer: WgKey, psk: Psk, _epoch: u64) {
        self.set_psk(peer, Some(psk.expose()));
    }

    fn force_handshake(&self, peer: WgKey) {
        self.engine.force_handshake(&peer);
    }

    fn install_agile(&self, peer: WgKey, epoch: u64, initiator: bool, export: &Exporter<'_>) {
        // Held to the end, so a reload's `replace_agile` cannot slip in between reading the
        // settings and installing keys (it would leave keys of a removed or changed AEAD).
        let agile = self.agile.lock().unwrap_or_else(|e| e.into_inner());
        let Some(choice) = agile.get(&peer).cloned() else {
            if self.engine.agile_status(&peer).is_some() {
                self.engine.remove_agile(&peer);
            }
            return;
        };
        let aead = &choice.aead;
        // On any failure the peer keeps its previous epoch's keys (within their limits) or, with
        // none, stays on WireGuard under its PQ PSK; it never gets weaker keys.
        let install = match self.agile_keys(peer, epoch, initiator, &choice) {
            Ok(build) => build(export),
            Err(e) => return tracing::warn!(epoch, "agile tunnel keys: {e}"),
        };
        let Some(install) = install else {
            return tracing::warn!(epoch, "agile tunnel keys: the channel's exporter failed");
        };
        match self.engine.install_agile(&peer, install) {
            Ok(()) => tracing::info!(epoch, aead = aead.name(), "agile tunnel keys installed"),
            Err(e) => tracing::warn!(epoch, "agile tunnel keys refused: {e}"),
        }
    }

    fn expire(&self, peer: WgKey) {
        // Nobody knows this key: no handshake succeeds, so no data flows until the next PQ PSK.
        let mut random = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut random).is_err() {
            // Not reached in practice (AWS-LC aborts when the OS RNG fails); the sessions are
            // reset below either way.
            tracing::error!("the system RNG failed: expired PSK replaced by the start-up one");
            random = *blocking_psk().expose();
        }
        self.set_psk(peer, Some(&random));
        random.zeroize();
        self.engine.reset_sessions(&peer);
        // The agile tunnel's keys come from the channel too: without them no data is carried
        // until a new epoch installs new ones.
        self.engine.remove_agile(&peer);
    }

    fn fall_back(&self, peer: WgKey) {
        let who = Key32::from_bytes(peer);
        let psk = self
            .statics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned();
        let Some(psk) = psk else {
            tracing::warn!(peer = %who, "no static PSK known for the fall-back: peer blocked");
            return self.expire(peer);
        };
        // The running session keeps its keys; the next handshake (WireGuard's own rekey) uses
        // the static PSK, which the other side, degrading at the same epoch, holds too.
        self.set_psk(peer, psk.as_ref().map(PresharedKey::expose));
        self.engine.remove_agile(&peer);
        let next_psk = if psk.is_some() { "static" } else { "none" };
        tracing::info!(peer = %who, next_psk, "pq-preferred fall-back, agile keys dropped");
    }
}
