//! The receiving half of an agile session: the current key and, for a grace period the caller
//! sets, the previous one (of the previous epoch or key generation), found by receiver index and
//! key phase; the current key's next generation is derived when a packet names it and becomes
//! current once one authenticates under it. A packet is checked against the counter limit and the
//! replay window, then authenticated, and only then marks the window; forgeries are counted
//! against the AEAD's integrity limit. Nothing a peer sends panics.

use std::sync::Arc;

use pqgate_agility::plugin::AeadAlgorithm;

use super::epoch_key::EpochKey;
use super::keys::DirectionKeys;
use super::limits::Limits;
use super::replay::{Refusal, ReplayWindow};
use super::seal::InstallError;
use super::wire::{HEADER_LEN, Header, HeaderError, inner_len};

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
    /// The key phase names neither the current key generation, its next one, nor the previous
    /// one still in its grace period.
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
    /// Its counter.
    pub counter: u64,
    /// Inner packet length (padding removed); 0 for a keepalive.
    pub len: usize,
}

/// One receiving key with its index, window and forgery count.
struct RecvKey {
    key: EpochKey,
    index: u32,
    window: ReplayWindow,
    forgeries: u64,
}

impl RecvKey {
    fn new(key: EpochKey, index: u32) -> Self {
        Self {
            key,
            index,
            window: ReplayWindow::new(),
            forgeries: 0,
        }
    }
}

/// Which held key a header names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Next,
    Previous,
}

/// Opens one peer's packets.
pub struct Opener {
    aead: Arc<dyn AeadAlgorithm>,
    limits: Limits,
    grace_ms: u64,
    current: Option<RecvKey>,
    /// The current key's next generation, once a packet named it.
    next: Option<RecvKey>,
    /// The previous key and when (unix ms) it stops being accepted.
    previous: Option<(RecvKey, u64)>,
}

impl Opener {
    /// An opener over `aead` with per-key `limits`; a replaced key stays usable for `grace_ms`
    /// after the replacement (packets in flight at rotation).
    pub fn new(aead: Arc<dyn AeadAlgorithm>, limits: Limits, grace_ms: u64) -> Self {
        Self {
            aead,
            limits,
            grace_ms,
            current: None,
            next: None,
            previous: None,
        }
    }

    /// Installs `epoch`'s receiving key under `index` (the index this side announces to the
    /// peer); the current key becomes the previous one until `now_ms + grace_ms`. Install before
    /// announcing the index, so the peer never sends to a key not yet here.
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
            current.key.may_follow(&key)?;
            if current.index == index {
                return Err(InstallError::IndexInUse(index));
            }
        }
        let until = now_ms.saturating_add(self.grace_ms);
        self.next = None;
        self.previous = self
            .current
            .replace(RecvKey::new(key, index))
            .map(|old| (old, until));
        Ok(())
    }

    /// Drops the previous key once its grace period is over.
    pub fn expire(&mut self, now_ms: u64) {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now_ms >= *until)
        {
            self.previous = None;
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.key.epoch)
    }

    /// The current key generation within the epoch (0 with no key).
    pub fn generation(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.key.generation)
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
        let slot = self.find(header.receiver, header.phase)?;
        if slot == Slot::Next {
            self.prepare_next(header.phase)?;
        }
        let limits = self.limits;
        let key = match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Next => self.next.as_mut(),
            Slot::Previous => self.previous.as_mut().map(|(k, _)| k),
        }
        .ok_or(OpenError::UnknownIndex(header.receiver))?;
        let (epoch, generation) = (key.key.epoch, key.key.generation);
        let len = open_with(key, limits, header.counter, datagram, out)?;
        if slot == Slot::Next {
            self.promote(now_ms);
        }
        Ok(Opened {
            epoch,
            generation,
            key_updated: slot == Slot::Next,
            counter: header.counter,
            len,
        })
    }

    /// The held key that `index` and `phase` name: the current generation, its next one, or the
    /// previous key (of this epoch or the last) while in grace.
    fn find(&self, index: u32, phase: u8) -> Result<Slot, OpenError> {
        let mut known = false;
        if let Some(c) = self.current.as_ref().filter(|c| c.index == index) {
            if c.key.phase() == phase {
                return Ok(Slot::Current);
            }
            if c.key.phase().wrapping_add(1) == phase {
                return Ok(Slot::Next);
            }
            known = true;
        }
        match &self.previous {
            Some((p, _)) if p.index == index && p.key.phase() == phase => Ok(Slot::Previous),
            Some((p, _)) if p.index == index => Err(OpenError::Phase(phase)),
            _ if known => Err(OpenError::Phase(phase)),
            _ => Err(OpenError::UnknownIndex(index)),
        }
    }

    /// Derives the current key's next generation unless already held.
    fn prepare_next(&mut self, phase: u8) -> Result<(), OpenError> {
        if self.next.is_some() {
            return Ok(());
        }
        let current = self.current.as_ref().ok_or(OpenError::Phase(phase))?;
        let key = current
            .key
            .next(self.aead.as_ref(), self.limits.last_generation())
            .ok_or(OpenError::Phase(phase))?
            .map_err(|_| OpenError::KeyUpdate)?;
        self.next = Some(RecvKey::new(key, current.index));
        Ok(())
    }

    /// The next generation authenticated a packet: it becomes current, and the current one the
    /// previous (for packets still in flight) until the grace period ends.
    fn promote(&mut self, now_ms: u64) {
        if let Some(next) = self.next.take() {
            let until = now_ms.saturating_add(self.grace_ms);
            self.previous = self.current.replace(next).map(|old| (old, until));
        }
    }
}

/// Steps 3 to 6 of docs/agile-tunnel.md section 6 under one key: limits, replay check, AEAD open
/// (a failure counts a forgery), window update, padding trimmed. Returns the inner length.
fn open_with(
    slot: &mut RecvKey,
    limits: Limits,
    counter: u64,
    datagram: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, OpenError> {
    if counter >= limits.hard() || slot.forgeries >= limits.integrity() {
        return Err(OpenError::LimitReached);
    }
    slot.window
        .check(counter)
        .map_err(|r| refusal(r, counter))?;
    let (nonce, nonce_len) = slot.key.nonce(counter);
    let (aad, sealed) = datagram.split_at(HEADER_LEN);
    let start = out.len();
    if slot
        .key
        .key
        .open(&nonce[..nonce_len], aad, sealed, out)
        .is_err()
    {
        out.truncate(start);
        slot.forgeries = slot.forgeries.saturating_add(1);
        return Err(OpenError::Auth);
    }
    slot.window
        .accept(counter)
        .map_err(|r| refusal(r, counter))?;
    let Some(len) = out.get(start..).and_then(inner_len) else {
        out.truncate(start);
        return Err(OpenError::Inner);
    };
    out.truncate(start + len);
    Ok(len)
}

fn refusal(r: Refusal, counter: u64) -> OpenError {
    match r {
        Refusal::Replay => OpenError::Replay(counter),
        Refusal::TooOld => OpenError::TooOld(counter),
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("aead", &self.aead.name())
            .field("limits", &self.limits)
            .field("grace_ms", &self.grace_ms)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}
