//! One epoch's receiving keys under one receiver index: its current key generation, the one
//! before it for a grace period, and later generations (the next one, or up to [`MAX_SKIP`]
//! ahead after a loss longer than a key) derived when a packet's key phase names them; a later
//! generation becomes current once a packet authenticates under it. Derivations of skipped
//! generations are rate-limited so forged phases cannot buy CPU. Each key keeps its own replay
//! window and forgery count.

use pqgate_agility::plugin::AeadAlgorithm;

use super::epoch_key::EpochKey;
use super::limits::Limits;
use super::open::{OpenError, Opened};
use super::replay::{Refusal, ReplayWindow};
use super::seal::InstallError;
use super::wire::{HEADER_LEN, Header, inner_len};

/// Key generations a receiver may skip ahead at once (a phase up to this far past the current
/// one): covers a loss of 63 whole keys, and leaves phases behind the current one unambiguous.
pub const MAX_SKIP: u8 = 64;

/// At most one derivation of a skipped-ahead generation (not held already) per this many
/// milliseconds: forged phases cost a derivation each otherwise.
pub const SKIP_INTERVAL_MS: u64 = 100;

/// What an open needs from the opener.
pub(crate) struct Context<'a> {
    pub(crate) aead: &'a dyn AeadAlgorithm,
    pub(crate) limits: Limits,
    pub(crate) grace_ms: u64,
    pub(crate) now_ms: u64,
}

/// One receiving key generation with its window and forgery count.
struct RecvKey {
    key: EpochKey,
    window: ReplayWindow,
    forgeries: u64,
}

impl RecvKey {
    fn new(key: EpochKey) -> Self {
        Self {
            key,
            window: ReplayWindow::new(),
            forgeries: 0,
        }
    }
}

/// Which key generation a header names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Next,
    /// More than one generation ahead: (generation).
    Ahead(u64),
    Previous,
}

/// One epoch's receiving state.
pub(crate) struct EpochRecv {
    /// The receiver index of this epoch (chosen by this side).
    pub(crate) index: u32,
    current: RecvKey,
    /// The current generation's next one, once a packet named it.
    next: Option<RecvKey>,
    /// A generation further ahead, once a packet named it.
    ahead: Option<RecvKey>,
    /// No new `ahead` derivation before this time (unix ms).
    skip_at: u64,
    /// The generation before the current one and when (unix ms) it stops being accepted.
    previous: Option<(RecvKey, u64)>,
}

impl EpochRecv {
    /// Generation 0 of an epoch under `index`.
    pub(crate) fn new(key: EpochKey, index: u32) -> Self {
        Self {
            index,
            current: RecvKey::new(key),
            next: None,
            ahead: None,
            skip_at: 0,
            previous: None,
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.current.key.epoch
    }

    pub(crate) fn generation(&self) -> u64 {
        self.current.key.generation
    }

    /// Whether `key` (a new epoch's generation 0) may replace this epoch.
    pub(crate) fn may_follow(&self, key: &EpochKey) -> Result<(), InstallError> {
        self.current.key.may_follow(key)
    }

    /// Drops the previous generation once its grace period is over.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        if self.previous.as_ref().is_some_and(|(_, t)| now_ms >= *t) {
            self.previous = None;
        }
    }

    /// Steps 2 (phase) to 6 of docs/design/agile-tunnel.md section 6 for a datagram under this epoch's
    /// index.
    pub(crate) fn open(
        &mut self,
        cx: &Context<'_>,
        header: &Header,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Opened, OpenError> {
        let slot = self.find(header.phase)?;
        self.prepare(cx, slot, header.phase)?;
        let key = match slot {
            Slot::Current => Some(&mut self.current),
            Slot::Next => self.next.as_mut(),
            Slot::Ahead(_) => self.ahead.as_mut(),
            Slot::Previous => self.previous.as_mut().map(|(k, _)| k),
        }
        .ok_or(OpenError::Phase(header.phase))?;
        let (epoch, generation) = (key.key.epoch, key.key.generation);
        let len = open_with(key, cx.limits, header.counter, datagram, out)?;
        let key_updated = matches!(slot, Slot::Next | Slot::Ahead(_));
        if key_updated {
            self.promote(cx, slot);
        }
        Ok(Opened {
            epoch,
            generation,
            key_updated,
            latest: true,
            counter: header.counter,
            len,
        })
    }

    /// The generation `phase` names: the current one, one up to [`MAX_SKIP`] ahead, or the
    /// previous one while in grace.
    fn find(&self, phase: u8) -> Result<Slot, OpenError> {
        match phase.wrapping_sub(self.current.key.phase()) {
            0 => Ok(Slot::Current),
            1 => Ok(Slot::Next),
            skip @ 2..=MAX_SKIP => {
                let g = self.current.key.generation.saturating_add(u64::from(skip));
                Ok(Slot::Ahead(g))
            }
            _ if self
                .previous
                .as_ref()
                .is_some_and(|(p, _)| p.key.phase() == phase) =>
            {
                Ok(Slot::Previous)
            }
            _ => Err(OpenError::Phase(phase)),
        }
    }

    /// Derives the generation `slot` names unless already held: the next one always (once per
    /// generation), one further ahead at most once per [`SKIP_INTERVAL_MS`].
    fn prepare(&mut self, cx: &Context<'_>, slot: Slot, phase: u8) -> Result<(), OpenError> {
        let wanted = match slot {
            Slot::Current | Slot::Previous => return Ok(()),
            Slot::Next if self.next.is_some() => return Ok(()),
            Slot::Ahead(g) if self.ahead.as_ref().is_some_and(|a| a.key.generation == g) => {
                return Ok(());
            }
            Slot::Ahead(_) if cx.now_ms < self.skip_at => return Err(OpenError::Phase(phase)),
            Slot::Next => self.current.key.generation.saturating_add(1),
            Slot::Ahead(g) => g,
        };
        let key = self
            .current
            .key
            .at(cx.aead, wanted, cx.limits.last_generation())
            .ok_or(OpenError::Phase(phase))?
            .map_err(|_| OpenError::KeyUpdate)?;
        let fresh = Some(RecvKey::new(key));
        if slot == Slot::Next {
            self.next = fresh;
        } else {
            self.ahead = fresh;
            self.skip_at = cx.now_ms.saturating_add(SKIP_INTERVAL_MS);
        }
        Ok(())
    }

    /// A later generation authenticated a packet: it becomes current, and the current one the
    /// previous (for packets still in flight) until the grace period ends.
    fn promote(&mut self, cx: &Context<'_>, slot: Slot) {
        let later = match slot {
            Slot::Next => self.next.take(),
            Slot::Ahead(_) => self.ahead.take(),
            _ => None,
        };
        if let Some(later) = later {
            let old = std::mem::replace(&mut self.current, later);
            self.previous = Some((old, cx.now_ms.saturating_add(cx.grace_ms)));
            self.next = None;
            self.ahead = None;
        }
    }
}

/// Steps 3 to 6 of docs/design/agile-tunnel.md section 6 under one key: limits, replay check, AEAD open
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
