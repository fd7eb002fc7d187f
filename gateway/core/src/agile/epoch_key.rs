//! One key generation of one epoch: the expanded AEAD key and IV, shared by the sealer and the
//! opener. Built only from key material whose lengths fit the AEAD, it refuses to be replaced by
//! an older epoch or by the same key bytes (whose counters would restart and repeat nonces),
//! derives the next generation (key update) and makes each nonce.

use pqgate_agility::plugin::{AeadAlgorithm, AeadKey};
use zeroize::Zeroizing;

use super::keys::{DirectionKeys, KeyError, next_generation};
use super::seal::InstallError;
use super::wire::{MAX_NONCE_LEN, nonce_into};

/// The AEAD state of one key generation of one epoch.
pub(crate) struct EpochKey {
    pub(crate) epoch: u64,
    /// 0 for the exporter's key, +1 per key update.
    pub(crate) generation: u64,
    pub(crate) key: Box<dyn AeadKey>,
    pub(crate) iv: Zeroizing<Vec<u8>>,
    /// Raw key bytes, kept only to refuse installing the same key twice.
    raw: Zeroizing<Vec<u8>>,
}

impl EpochKey {
    /// Expands `keys` for `aead` after checking their lengths.
    pub(crate) fn new(
        aead: &dyn AeadAlgorithm,
        epoch: u64,
        keys: &DirectionKeys,
    ) -> Result<Self, InstallError> {
        let lengths = |source| InstallError::Lengths {
            aead: aead.name().to_owned(),
            source,
        };
        DirectionKeys::new(keys.key(), keys.iv()).map_err(lengths)?;
        if keys.key().len() != aead.key_len() {
            return Err(lengths(KeyError::KeyLen));
        }
        if keys.iv().len() != aead.nonce_len() {
            return Err(lengths(KeyError::NonceLen(keys.iv().len())));
        }
        Ok(Self {
            epoch,
            generation: 0,
            key: aead.new_key(keys.key()).map_err(InstallError::Aead)?,
            iv: Zeroizing::new(keys.iv().to_vec()),
            raw: Zeroizing::new(keys.key().to_vec()),
        })
    }

    /// The next key generation of this epoch (`keys::next_generation`); `None` past `last`.
    pub(crate) fn next(
        &self,
        aead: &dyn AeadAlgorithm,
        last: u64,
    ) -> Option<Result<Self, InstallError>> {
        let generation = self.generation.checked_add(1).filter(|g| *g <= last)?;
        let next = DirectionKeys::new(&self.raw, &self.iv)
            .and_then(|current| next_generation(&current, generation))
            .map_err(|source| InstallError::Lengths {
                aead: aead.name().to_owned(),
                source,
            })
            .and_then(|keys| Self::new(aead, self.epoch, &keys));
        Some(next.map(|mut key| {
            key.generation = generation;
            key
        }))
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
        if *other.raw == *self.raw {
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
