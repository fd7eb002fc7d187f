//! The receiving half of an agile session: the current epoch's key and, for a grace period the
//! caller sets, the previous one, each found by its receiver index. A packet is checked against
//! the counter limit and the replay window, then authenticated, and only then marks the window;
//! forgeries are counted against the AEAD's integrity limit. Nothing a peer sends panics.

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

/// Opens one peer's packets.
pub struct Opener {
    aead: Arc<dyn AeadAlgorithm>,
    limits: Limits,
    grace_ms: u64,
    current: Option<RecvKey>,
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
        let fresh = RecvKey {
            key,
            index,
            window: ReplayWindow::new(),
            forgeries: 0,
        };
        let until = now_ms.saturating_add(self.grace_ms);
        self.previous = self.current.replace(fresh).map(|old| (old, until));
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
        let limits = self.limits;
        let slot = self.slot(header.receiver)?;
        let counter = header.counter;
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
        Ok(Opened {
            epoch: slot.key.epoch,
            counter,
            len,
        })
    }

    fn slot(&mut self, index: u32) -> Result<&mut RecvKey, OpenError> {
        if self.current.as_ref().is_some_and(|c| c.index == index) {
            return self.current.as_mut().ok_or(OpenError::UnknownIndex(index));
        }
        self.previous
            .as_mut()
            .map(|(k, _)| k)
            .filter(|k| k.index == index)
            .ok_or(OpenError::UnknownIndex(index))
    }
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
