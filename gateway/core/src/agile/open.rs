//! The receiving half of an agile session: the current epoch's keys and, for a grace period the
//! caller sets, the previous epoch's, each found by its receiver index; within an epoch the key
//! phase picks the key generation (`epoch_recv`). A packet is checked against the counter limit
//! and the replay window, then authenticated, and only then marks the window; forgeries are
//! counted against the AEAD's integrity limit. Nothing a peer sends panics.

use std::sync::Arc;

use pqgate_agility::plugin::AeadAlgorithm;

use super::epoch_key::EpochKey;
use super::epoch_recv::{self, EpochRecv};
use super::keys::DirectionKeys;
use super::limits::Limits;
use super::seal::InstallError;
use super::wire::{Header, HeaderError};

/// Why a datagram was dropped. Every variant but `Inner` is the sender's or the path's doing
/// before authentication; none changes the opener's state except counting a failed `Auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than header + tag.
    #[error("truncated packet ({0} bytes)")]
    Truncated(usize),
    /// Not an agile packet, or reserved bytes set.
    #[error("malformed header")]
    Header(#[source] HeaderError),
    /// No current or in-grace key has this receiver index.
    #[error("unknown receiver index {0}")]
    UnknownIndex(u32),
    /// The key phase names neither the epoch's current key generation, one up to `MAX_SKIP`
    /// ahead of it, nor the previous one still in its grace period.
    #[error("unexpected key phase {0}")]
    Phase(u8),
    /// The next key generation could not be made (the AEAD refused its key): local.
    #[error("key update failed")]
    KeyUpdate,
    /// The counter was already accepted.
    #[error("replayed counter {0}")]
    Replay(u64),
    /// The counter is older than the replay window.
    #[error("counter {0} is older than the replay window")]
    TooOld(u64),
    /// The AEAD refused the packet (forged, corrupted, or another key).
    #[error("authentication failed")]
    Auth,
    /// The counter is at or past the key's usage limit, or the key saw too many forgeries.
    #[error("key usage limit reached")]
    LimitReached,
    /// Authentic, but the inner packet is not IPv4/IPv6 or its length field overruns it.
    #[error("authentic packet with an invalid inner IP header")]
    Inner,
}

/// What a successful open reports; the inner packet was appended to the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The epoch whose key opened it.
    pub epoch: u64,
    /// The key generation within the epoch.
    pub generation: u64,
    /// The packet was the first authentic one under a new key generation (now current).
    pub key_updated: bool,
    /// It was opened by the newest installed epoch's keys (not the previous epoch's in grace):
    /// the peer sends under them, so this side may switch its send key too.
    pub latest: bool,
    /// Its counter.
    pub counter: u64,
    /// Inner packet length (padding removed); 0 for a keepalive.
    pub len: usize,
}

/// Opens one peer's packets.
pub struct Opener {
    aead: Arc<dyn AeadAlgorithm>,
    limits: Limits,
    grace_ms: u64,
    current: Option<EpochRecv>,
    /// The previous epoch and when (unix ms) it stops being accepted.
    previous: Option<(EpochRecv, u64)>,
}

impl Opener {
    /// An opener over `aead` with per-key `limits`; a replaced key (epoch or generation) stays
    /// usable for `grace_ms` after the replacement (packets in flight at rotation).
    pub fn new(aead: Arc<dyn AeadAlgorithm>, limits: Limits, grace_ms: u64) -> Self {
        Self {
            aead,
            limits,
            grace_ms,
            current: None,
            previous: None,
        }
    }

    /// Installs `epoch`'s receiving key under `index` (the index this side announces to the
    /// peer); the current epoch becomes the previous one until `now_ms + grace_ms`. Install
    /// before announcing the index, so the peer never sends to a key not yet here.
    pub fn install(
        &mut self,
        now_ms: u64,
        epoch: u64,
        index: u32,
        keys: &DirectionKeys,
    ) -> Result<(), InstallError> {
        self.expire(now_ms);
        let key = EpochKey::new(self.aead.as_ref(), epoch, keys)?;
        if let Some(current) = &self.current {
            current.may_follow(&key)?;
            if current.index == index {
                return Err(InstallError::IndexInUse(index));
            }
        }
        let until = now_ms.saturating_add(self.grace_ms);
        self.previous = self
            .current
            .replace(EpochRecv::new(key, index))
            .map(|old| (old, until));
        Ok(())
    }

    /// Drops the previous epoch (and any epoch's previous generation) once its grace period is
    /// over.
    pub fn expire(&mut self, now_ms: u64) {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now_ms >= *until)
        {
            self.previous = None;
        }
        if let Some(c) = self.current.as_mut() {
            c.expire(now_ms);
        }
        if let Some((p, _)) = self.previous.as_mut() {
            p.expire(now_ms);
        }
    }

    /// The per-key limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// New per-key limits, from the next packet on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The current epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.current.as_ref().map(EpochRecv::epoch)
    }

    /// The current epoch's key generation (0 with no key).
    pub fn generation(&self) -> u64 {
        self.current.as_ref().map_or(0, EpochRecv::generation)
    }

    /// The receiver indices accepted as of the last `install`, `open` or `expire` (current
    /// first).
    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        let previous = self.previous.as_ref().map(|(k, _)| k.index);
        self.current
            .as_ref()
            .map(|k| k.index)
            .into_iter()
            .chain(previous)
    }

    /// Verifies `datagram` and appends its inner packet (padding removed) to `out`; on any error
    /// `out` is left as it was.
    pub fn open(
        &mut self,
        now_ms: u64,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Opened, OpenError> {
        self.expire(now_ms);
        let header = Header::parse(datagram, self.aead.tag_len()).map_err(|e| match e {
            HeaderError::Truncated(n) => OpenError::Truncated(n),
            other => OpenError::Header(other),
        })?;
        let index = header.receiver;
        let latest = self.current.as_ref().is_some_and(|c| c.index == index);
        let epoch = match self.current.as_mut().filter(|_| latest) {
            Some(c) => c,
            None => self
                .previous
                .as_mut()
                .map(|(p, _)| p)
                .filter(|p| p.index == index)
                .ok_or(OpenError::UnknownIndex(index))?,
        };
        let context = epoch_recv::Context {
            aead: self.aead.as_ref(),
            limits: self.limits,
            grace_ms: self.grace_ms,
            now_ms,
        };
        let opened = epoch.open(&context, &header, datagram, out)?;
        Ok(Opened { latest, ..opened })
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("aead", &self.aead.name())
            .field("limits", &self.limits)
            .field("grace_ms", &self.grace_ms)
            .field("epoch", &self.epoch())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}
