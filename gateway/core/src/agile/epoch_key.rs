//! One epoch's expanded AEAD key and IV, shared by the sealer and the opener: built only from
//! key material whose lengths fit the AEAD, it refuses to be replaced by an older epoch or by the
//! same key bytes (whose counters would restart and repeat nonces), and makes each nonce.

use pqgate_agility::plugin::{AeadAlgorithm, AeadKey};
use zeroize::Zeroizing;

use super::keys::{DirectionKeys, KeyError};
use super::seal::InstallError;
use super::wire::{MAX_NONCE_LEN, nonce_into};

/// The AEAD state of one epoch.
pub(crate) struct EpochKey {
    pub(crate) epoch: u64,
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
            key: aead.new_key(keys.key()).map_err(InstallError::Aead)?,
            iv: Zeroizing::new(keys.iv().to_vec()),
            raw: Zeroizing::new(keys.key().to_vec()),
        })
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
