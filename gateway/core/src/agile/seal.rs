//! The sending half of an agile session: one key per epoch and key generation, counters from 0,
//! padding to the MTU. At the soft limit it updates its key (the next generation, counters from 0
//! again) without any message; only when the epoch's generations run out does it report
//! `needs_rekey` and refuse at the hard limit. It switches epochs only when told (`install`),
//! never reuses a key it already holds, and burns a counter before each AEAD call so no nonce is
//! used twice even when a call fails.

use std::sync::Arc;

use pqgate_agility::plugin::{AeadAlgorithm, PluginError};

use super::epoch_key::EpochKey;
use super::keys::{DirectionKeys, KeyError};
use super::limits::Limits;
use super::wire::{HEADER_LEN, Header, padded_len};

/// Largest inner packet (an IP packet's own length field is 16 bits).
pub const MAX_MTU: usize = 65_535;

/// Why a key cannot be installed: the caller (or the key schedule) is to blame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// Key or IV lengths differ from the AEAD's, or the AEAD's sizes are unusable.
    #[error("key material does not fit {aead}")]
    Lengths {
        /// The AEAD.
        aead: String,
        /// What is wrong.
        #[source]
        source: KeyError,
    },
    /// An epoch older than the one installed.
    #[error("epoch {epoch} is older than the installed epoch {current}")]
    StaleEpoch {
        /// Offered epoch.
        epoch: u64,
        /// Installed epoch.
        current: u64,
    },
    /// The very key already installed (its counters would start again at 0: nonce reuse).
    #[error("key already installed for epoch {0}")]
    SameKey(u64),
    /// The receiver index is the one the current or previous key already uses.
    #[error("receiver index {0} already in use")]
    IndexInUse(u32),
    /// The MTU is 0 or above [`MAX_MTU`].
    #[error("MTU {0} outside 1..={MAX_MTU}")]
    Mtu(usize),
    /// The AEAD refused the key.
    #[error("AEAD refused the key")]
    Aead(#[source] PluginError),
}

/// Why a packet was not sealed: local state is to blame, not a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// No epoch installed yet.
    #[error("no key installed")]
    NoKey,
    /// The key sealed as many packets as its AEAD allows and the epoch has no key generation
    /// left: a new epoch is needed.
    #[error("key usage limit of {0} packets reached")]
    LimitReached(u64),
    /// The next key generation could not be made (the AEAD refused its key); nothing was sent
    /// and the counter was not burned.
    #[error("key update failed")]
    KeyUpdate(#[source] InstallError),
    /// The inner packet is longer than the MTU.
    #[error("packet of {len} bytes exceeds the MTU of {mtu}")]
    TooLarge {
        /// Packet length.
        len: usize,
        /// MTU.
        mtu: usize,
    },
    /// The AEAD failed (a plugin error); the counter was burned.
    #[error("AEAD seal failed")]
    Aead(#[source] PluginError),
}

/// What a successful seal reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The counter the packet carries.
    pub counter: u64,
    /// The key generation that sealed it (0 = the epoch's exporter key).
    pub generation: u64,
    /// This packet is the first under a new key generation.
    pub key_updated: bool,
    /// The epoch's last key generation reached its soft limit: ask the channel for a new epoch.
    pub needs_rekey: bool,
}

/// The current sending key and its receiver index at the peer.
struct SendKey {
    key: EpochKey,
    receiver: u32,
    counter: u64,
}

/// Seals this side's packets to one peer.
pub struct Sealer {
    aead: Arc<dyn AeadAlgorithm>,
    limits: Limits,
    mtu: usize,
    current: Option<SendKey>,
    scratch: Vec<u8>,
}

impl Sealer {
    /// A sealer over `aead` (from `Registry::aead`) with per-key `limits`, padding inner packets
    /// up to `mtu` bytes and refusing longer ones. No key until [`Sealer::install`].
    pub fn new(
        aead: Arc<dyn AeadAlgorithm>,
        limits: Limits,
        mtu: usize,
    ) -> Result<Self, InstallError> {
        if !(1..=MAX_MTU).contains(&mtu) {
            return Err(InstallError::Mtu(mtu));
        }
        Ok(Self {
            aead,
            limits,
            mtu,
            current: None,
            scratch: Vec::with_capacity(mtu),
        })
    }

    /// Switches to `epoch`'s key; `receiver` is the index the peer announced for it. Counters
    /// restart at 0, so the same key is refused.
    pub fn install(
        &mut self,
        epoch: u64,
        receiver: u32,
        keys: &DirectionKeys,
    ) -> Result<(), InstallError> {
        let key = EpochKey::new(self.aead.as_ref(), epoch, keys)?;
        if let Some(current) = &self.current {
            current.key.may_follow(&key)?;
        }
        self.current = Some(SendKey {
            key,
            receiver,
            counter: 0,
        });
        Ok(())
    }

    /// The per-key limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// New per-key limits, from the next packet on (a lower soft limit updates the current key
    /// at once; the counter is never reset, so no nonce repeats).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The installed epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.key.epoch)
    }

    /// The current key generation within the epoch (0 with no key).
    pub fn generation(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.key.generation)
    }

    /// The next counter to be sent (0 with no key).
    pub fn counter(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.counter)
    }

    /// Whether a new epoch should be requested: no key, or the epoch's last key generation at
    /// its soft limit (earlier generations update themselves).
    pub fn needs_rekey(&self) -> bool {
        self.current.as_ref().is_none_or(|c| {
            c.key.generation >= self.limits.last_generation() && c.counter >= self.limits.soft()
        })
    }

    /// Bytes a sealed packet of `inner` bytes takes on the wire.
    pub fn sealed_len(&self, inner: usize) -> usize {
        HEADER_LEN + padded_len(inner, self.mtu) + self.aead.tag_len()
    }

    /// Appends the sealed datagram for `packet` (an IP packet, or empty for a keepalive) to
    /// `out`: header, then the AEAD output of the zero-padded packet with the header as AAD.
    pub fn seal(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<Sealed, SealError> {
        let current = self.current.as_mut().ok_or(SealError::NoKey)?;
        if packet.len() > self.mtu {
            return Err(SealError::TooLarge {
                len: packet.len(),
                mtu: self.mtu,
            });
        }
        let mut key_updated = false;
        if current.counter >= self.limits.soft()
            && let Some(next) = current
                .key
                .next(self.aead.as_ref(), self.limits.last_generation())
        {
            current.key = next.map_err(SealError::KeyUpdate)?;
            current.counter = 0;
            key_updated = true;
        }
        let counter = current.counter;
        if counter >= self.limits.hard() {
            return Err(SealError::LimitReached(self.limits.hard()));
        }
        current.counter = counter + 1;
        let generation = current.key.generation;
        let header = Header {
            receiver: current.receiver,
            phase: current.key.phase(),
            counter,
        }
        .encode();
        self.scratch.clear();
        self.scratch.extend_from_slice(packet);
        self.scratch.resize(padded_len(packet.len(), self.mtu), 0);
        let (nonce, nonce_len) = current.key.nonce(counter);
        let start = out.len();
        out.extend_from_slice(&header);
        let sealed = current
            .key
            .key
            .seal(&nonce[..nonce_len], &header, &self.scratch, out);
        self.scratch.clear();
        if let Err(e) = sealed {
            out.truncate(start);
            return Err(SealError::Aead(e));
        }
        Ok(Sealed {
            counter,
            generation,
            key_updated,
            needs_rekey: generation >= self.limits.last_generation()
                && counter + 1 >= self.limits.soft(),
        })
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("aead", &self.aead.name())
            .field("limits", &self.limits)
            .field("mtu", &self.mtu)
            .field("epoch", &self.epoch())
            .field("generation", &self.generation())
            .field("counter", &self.counter())
            .finish_non_exhaustive()
    }
}
