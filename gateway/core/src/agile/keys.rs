//! The agile tunnel's key schedule (docs/design/agile-tunnel.md): the TLS exporter label and context
//! for one (epoch, AEAD) and the split of the exporter output into a key and an IV per
//! direction, and the keys of each later key generation inside an epoch, derived from the
//! epoch's own (generation 0) keys. The channel calls the exporter; this module only builds its
//! input and cuts its output. Every secret lives in a `Zeroizing` buffer.

use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use super::wire::{MAX_NONCE_LEN, MIN_NONCE_LEN};
use crate::pqpsk::{Role, WgKey};

/// The RFC 8446 section 7.5 exporter label (distinct from the PSK's, so the two never share
/// output).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-pqgate-agile-v1";

/// HKDF salt of a key generation's derivation (the info is the generation, u64 big-endian).
pub const KEY_UPDATE_LABEL: &[u8] = b"pqgate agile key update v1";

/// Longest AEAD name accepted in the context (its length is one byte).
pub const MAX_NAME_LEN: usize = 255;

/// Why keys or a context cannot be made: the caller (or the chosen AEAD) is to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The AEAD name is empty or longer than [`MAX_NAME_LEN`].
    #[error("AEAD name of {0} bytes does not fit the exporter context")]
    Name(usize),
    /// The AEAD's nonce is shorter than the counter or longer than the ABI allows.
    #[error("nonce length {0} is outside {MIN_NONCE_LEN}..={MAX_NONCE_LEN}")]
    NonceLen(usize),
    /// The AEAD's key length is zero.
    #[error("key length 0")]
    KeyLen,
    /// A key update cannot produce `key_len + nonce_len` bytes (HKDF-SHA-384's output is at most
    /// 255 * 48 bytes).
    #[error("a key update cannot produce {0} bytes")]
    Update(usize),
    /// The exporter output is not `2 * (key_len + nonce_len)` bytes.
    #[error("exporter output of {got} bytes, expected {expected}")]
    ExporterLen {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        expected: usize,
    },
}

/// One direction's secrets: the AEAD key and the IV the counter is xored into.
pub struct DirectionKeys {
    key: Zeroizing<Vec<u8>>,
    iv: Zeroizing<Vec<u8>>,
}

impl DirectionKeys {
    /// From raw bytes (checked lengths are the caller's: see [`derive_direction_keys`]).
    pub fn new(key: &[u8], iv: &[u8]) -> Result<Self, KeyError> {
        check_lengths(key.len(), iv.len())?;
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
            iv: Zeroizing::new(iv.to_vec()),
        })
    }

    /// The AEAD key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The IV.
    pub fn iv(&self) -> &[u8] {
        &self.iv
    }
}

impl std::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectionKeys(redacted)")
    }
}

/// This side's keys for one epoch: `send` seals, `recv` opens.
#[derive(Debug)]
pub struct SessionKeys {
    /// Keys for packets this side sends.
    pub send: DirectionKeys,
    /// Keys for packets this side receives.
    pub recv: DirectionKeys,
}

fn check_lengths(key_len: usize, nonce_len: usize) -> Result<(), KeyError> {
    if key_len == 0 {
        return Err(KeyError::KeyLen);
    }
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce_len) {
        return Err(KeyError::NonceLen(nonce_len));
    }
    Ok(())
}

/// Bytes to ask the exporter for: `2 * (key_len + nonce_len)`.
pub fn exporter_len(key_len: usize, nonce_len: usize) -> usize {
    key_len.saturating_add(nonce_len).saturating_mul(2)
}

/// The exporter context: `epoch` (u64 big-endian) || u8 length of `aead` || `aead` (the registry
/// name, e.g. `SM4-GCM`) || initiator WireGuard key || responder WireGuard key.
pub fn exporter_context(
    epoch: u64,
    aead: &str,
    initiator: &WgKey,
    responder: &WgKey,
) -> Result<Vec<u8>, KeyError> {
    let name_len = u8::try_from(aead.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or(KeyError::Name(aead.len()))?;
    let mut ctx = Vec::with_capacity(8 + 1 + aead.len() + 64);
    ctx.extend_from_slice(&epoch.to_be_bytes());
    ctx.push(name_len);
    ctx.extend_from_slice(aead.as_bytes());
    ctx.extend_from_slice(initiator);
    ctx.extend_from_slice(responder);
    Ok(ctx)
}

/// Cuts the exporter output into initiator->responder key, its IV, responder->initiator key, its
/// IV (in that order) and hands `role` its sending and receiving halves.
pub fn derive_direction_keys(
    exporter_output: &[u8],
    key_len: usize,
    nonce_len: usize,
    role: Role,
) -> Result<SessionKeys, KeyError> {
    check_lengths(key_len, nonce_len)?;
    let expected = exporter_len(key_len, nonce_len);
    if exporter_output.len() != expected {
        return Err(KeyError::ExporterLen {
            got: exporter_output.len(),
            expected,
        });
    }
    let (i2r, r2i) = exporter_output.split_at(key_len + nonce_len);
    let (i2r_key, i2r_iv) = i2r.split_at(key_len);
    let (r2i_key, r2i_iv) = r2i.split_at(key_len);
    let i2r = DirectionKeys::new(i2r_key, i2r_iv)?;
    let r2i = DirectionKeys::new(r2i_key, r2i_iv)?;
    Ok(match role {
        Role::Initiator => SessionKeys {
            send: i2r,
            recv: r2i,
        },
        Role::Responder => SessionKeys {
            send: r2i,
            recv: i2r,
        },
    })
}

/// HKDF output length (key + IV bytes).
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// The keys of key generation `generation` (>= 1) of the epoch whose exporter keys (generation
/// 0) for this direction are `base`: HKDF (RFC 5869) with SHA-384, salt [`KEY_UPDATE_LABEL`],
/// input keying material `base` key || IV, info `u64be(generation)`, cut into a key and an IV of
/// the same lengths. Each generation comes straight from `base`, so a receiver that missed
/// whole generations derives the one it needs at once. Generation 0 is `base` itself.
pub fn generation_keys(base: &DirectionKeys, generation: u64) -> Result<DirectionKeys, KeyError> {
    let (key_len, nonce_len) = (base.key.len(), base.iv.len());
    check_lengths(key_len, nonce_len)?;
    if generation == 0 {
        return DirectionKeys::new(&base.key, &base.iv);
    }
    let total = key_len + nonce_len;
    let mut ikm = Zeroizing::new(Vec::with_capacity(total));
    ikm.extend_from_slice(&base.key);
    ikm.extend_from_slice(&base.iv);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA384, KEY_UPDATE_LABEL).extract(&ikm);
    let generation = generation.to_be_bytes();
    let info = [&generation[..]];
    let mut out = Zeroizing::new(vec![0u8; total]);
    prk.expand(&info, OutputLen(total))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| KeyError::Update(total))?;
    let (key, iv) = out.split_at(key_len);
    DirectionKeys::new(key, iv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<u8> {
        (0..n).map(|i| i as u8).collect()
    }

    #[test]
    fn context_layout() {
        let ctx = exporter_context(
            0x0102_0304_0506_0708,
            "AES-256-GCM",
            &[0x11; 32],
            &[0x22; 32],
        )
        .unwrap();
        assert_eq!(&ctx[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(ctx[8], 11);
        assert_eq!(&ctx[9..20], b"AES-256-GCM");
        assert!(ctx[20..52].iter().all(|&b| b == 0x11));
        assert!(ctx[52..].iter().all(|&b| b == 0x22));
        assert_eq!(ctx.len(), 84);
    }

    #[test]
    fn context_refuses_bad_names() {
        let k = [0u8; 32];
        assert_eq!(exporter_context(1, "", &k, &k), Err(KeyError::Name(0)));
        let long = "x".repeat(256);
        assert_eq!(exporter_context(1, &long, &k, &k), Err(KeyError::Name(256)));
        assert!(exporter_context(1, &"x".repeat(255), &k, &k).is_ok());
    }

    #[test]
    fn split_order_and_roles_mirror() {
        let out = ramp(exporter_len(32, 12));
        let i = derive_direction_keys(&out, 32, 12, Role::Initiator).unwrap();
        let r = derive_direction_keys(&out, 32, 12, Role::Responder).unwrap();
        assert_eq!(i.send.key(), &out[..32]);
        assert_eq!(i.send.iv(), &out[32..44]);
        assert_eq!(i.recv.key(), &out[44..76]);
        assert_eq!(i.recv.iv(), &out[76..88]);
        assert_eq!(i.send.key(), r.recv.key());
        assert_eq!(i.send.iv(), r.recv.iv());
        assert_eq!(i.recv.key(), r.send.key());
        assert_ne!(i.send.key(), i.recv.key());
    }

    #[test]
    fn bad_lengths_are_errors() {
        let out = ramp(88);
        assert_eq!(
            derive_direction_keys(&out[..87], 32, 12, Role::Initiator).unwrap_err(),
            KeyError::ExporterLen {
                got: 87,
                expected: 88
            }
        );
        assert_eq!(
            derive_direction_keys(&out, 0, 12, Role::Initiator).unwrap_err(),
            KeyError::KeyLen
        );
        assert_eq!(
            derive_direction_keys(&out, 32, 7, Role::Initiator).unwrap_err(),
            KeyError::NonceLen(7)
        );
        assert_eq!(
            derive_direction_keys(&out, 32, 33, Role::Initiator).unwrap_err(),
            KeyError::NonceLen(33)
        );
    }

    #[test]
    fn debug_redacts() {
        let k = DirectionKeys::new(&[0xab; 16], &[0xcd; 12]).unwrap();
        let shown = format!("{k:?}");
        assert!(shown.contains("redacted") && !shown.contains("171"));
    }
}
