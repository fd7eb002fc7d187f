//! One key generation of one epoch: the expanded AEAD key and IV, shared by the sealer and the
//! opener, with the epoch's generation-0 keys it derives any other generation from. Built only
//! from key material whose lengths fit the AEAD, it refuses to be replaced by an older epoch or
//! by the same epoch keys (whose counters would restart and repeat nonces) and makes each nonce.

use std::sync::Arc;

use pqgate_agility::plugin::{AeadAlgorithm, AeadKey};
use zeroize::Zeroizing;

use super::keys::{DirectionKeys, KeyError, generation_keys};
use super::seal::InstallError;
use super::wire::{MAX_NONCE_LEN, nonce_into};

/// The AEAD state of one key generation of one epoch.
pub(crate) struct EpochKey {
    pub(crate) epoch: u64,
    /// 0 for the exporter's key, +1 per key update.
    pub(crate) generation: u64,
    pub(crate) key: Box<dyn AeadKey>,
    pub(crate) iv: Zeroizing<Vec<u8>>,
    /// The epoch's generation-0 keys (shared by its generations): the source of every other
    /// generation, and what tells two epochs' keys apart.
    base: Arc<DirectionKeys>,
}

impl EpochKey {
    /// Generation 0 of `epoch` from `keys` (the exporter's), after checking their lengths.
    pub(crate) fn new(
        aead: &dyn AeadAlgorithm,
        epoch: u64,
        keys: &DirectionKeys,
    ) -> Result<Self, InstallError> {
        let base = Arc::new(checked(aead, keys)?);
        Self::expand(aead, epoch, 0, &base, base.as_ref())
    }

    fn expand(
        aead: &dyn AeadAlgorithm,
        epoch: u64,
        generation: u64,
        base: &Arc<DirectionKeys>,
        keys: &DirectionKeys,
    ) -> Result<Self, InstallError> {
        Ok(Self {
            epoch,
            generation,
            key: aead.new_key(keys.key()).map_err(InstallError::Aead)?,
            iv: Zeroizing::new(keys.iv().to_vec()),
            base: Arc::clone(base),
        })
    }

    /// Generation `generation` of this key's epoch (`keys::generation_keys`); `None` past
    /// `last`.
    pub(crate) fn at(
        &self,
        aead: &dyn AeadAlgorithm,
        generation: u64,
        last: u64,
    ) -> Option<Result<Self, InstallError>> {
        if generation > last {
            return None;
        }
        let keys =
            generation_keys(&self.base, generation).map_err(|source| InstallError::Lengths {
                aead: aead.name().to_owned(),
                source,
            });
        Some(keys.and_then(|k| Self::expand(aead, self.epoch, generation, &self.base, &k)))
    }

    /// The next key generation of this epoch; `None` past `last`.
    pub(crate) fn next(
        &self,
        aead: &dyn AeadAlgorithm,
        last: u64,
    ) -> Option<Result<Self, InstallError>> {
        self.at(aead, self.generation.checked_add(1)?, last)
    }

    /// The header's key phase: the generation modulo 256.
    pub(crate) fn phase(&self) -> u8 {
        self.generation.to_le_bytes()[0]
    }

    /// Whether `other` may replace this key: not older, not the same bytes.
    pub(crate) fn may_follow(&self, other: &Self) -> Result<(), InstallError> {
        if other.epoch < self.epoch {
            return Err(InstallError::StaleEpoch {
                epoch: other.epoch,
                current: self.epoch,
            });
        }
        if other.base.key() == self.base.key() {
            return Err(InstallError::SameKey(other.epoch));
        }
        Ok(())
    }

    /// The nonce for `counter` in a stack buffer (`iv` is 8..=32 bytes, checked at `new`).
    pub(crate) fn nonce(&self, counter: u64) -> ([u8; MAX_NONCE_LEN], usize) {
        let mut buf = [0u8; MAX_NONCE_LEN];
        let len = self.iv.len().min(MAX_NONCE_LEN);
        nonce_into(&self.iv[..len], counter, &mut buf[..len]);
        (buf, len)
    }
}

/// `keys` with their lengths checked against `aead`.
fn checked(aead: &dyn AeadAlgorithm, keys: &DirectionKeys) -> Result<DirectionKeys, InstallError> {
    let lengths = |source| InstallError::Lengths {
        aead: aead.name().to_owned(),
        source,
    };
    let copy = DirectionKeys::new(keys.key(), keys.iv()).map_err(lengths)?;
    if keys.key().len() != aead.key_len() {
        return Err(lengths(KeyError::KeyLen));
    }
    if keys.iv().len() != aead.nonce_len() {
        return Err(lengths(KeyError::NonceLen(keys.iv().len())));
    }
    Ok(copy)
}
