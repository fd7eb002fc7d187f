//! The PSK derivation (docs/design/pqpsk.md has it byte by byte, with test vectors): the TLS exporter
//! of the channel, for a context that binds the epoch and both WireGuard keys, and the shared
//! secret of an optional second KEM, combined by HKDF with explicit domain separation, so the PSK
//! holds if either the channel's key exchange or the second KEM holds.

use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use super::{Psk, WgKey};

/// The RFC 8446 section 7.5 exporter label.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-pqgate-wg-psk-v1";

/// Bytes taken from the exporter.
pub const EXPORTER_LEN: usize = 32;

/// Bytes in an exporter context: epoch (8), initiator key (32), responder key (32).
pub const CONTEXT_LEN: usize = 72;

/// HKDF salt (extract step).
pub const SALT: &[u8] = b"pqgate wg psk v1";

/// Prefix of the HKDF info (expand step).
pub const INFO_PREFIX: &[u8] = b"pqgate wg psk";

/// Name of "no second KEM" in the info.
pub const NO_KEM: &str = "none";

/// The HKDF hash, from the channel's profile (SHA-384 for CNSA 2.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KdfHash {
    /// HKDF-SHA256.
    Sha256,
    /// HKDF-SHA384.
    Sha384,
}

impl KdfHash {
    fn algorithm(self) -> hkdf::Algorithm {
        match self {
            Self::Sha256 => hkdf::HKDF_SHA256,
            Self::Sha384 => hkdf::HKDF_SHA384,
        }
    }
}

/// Why a PSK could not be derived.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeriveError {
    /// A KEM secret or name too long for its length prefix.
    #[error("KEM input too long for the derivation")]
    TooLong,
    /// HKDF refused the output length (cannot happen for 32 bytes; kept as an error, not a panic).
    #[error("HKDF expand failed")]
    Hkdf,
}

/// The exporter context: `epoch` (u64 big-endian) || initiator key || responder key.
pub fn exporter_context(epoch: u64, initiator: &WgKey, responder: &WgKey) -> [u8; CONTEXT_LEN] {
    let mut ctx = [0u8; CONTEXT_LEN];
    ctx[..8].copy_from_slice(&epoch.to_be_bytes());
    ctx[8..40].copy_from_slice(initiator);
    ctx[40..].copy_from_slice(responder);
    ctx
}

/// Output length for aws-lc-rs's HKDF.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// Appends `bytes` with a big-endian u16 length prefix.
fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), DeriveError> {
    let len = u16::try_from(bytes.len()).map_err(|_| DeriveError::TooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Derives the PSK of `epoch` from the channel's `exporter` output and the optional second KEM
/// (`(name, shared secret)`). With no KEM the name is `"none"` and the secret empty, so the two
/// cases never collide.
///
/// `PRK = HKDF-Extract(salt = "pqgate wg psk v1", IKM = u16be(len e) || e || u16be(len s) || s)`,
/// `PSK = HKDF-Expand(PRK, "pqgate wg psk" || u64be(epoch) || initiator || responder ||
/// u8(len name) || name, 32)`.
pub fn derive_psk(
    hash: KdfHash,
    epoch: u64,
    initiator: &WgKey,
    responder: &WgKey,
    exporter: &[u8; EXPORTER_LEN],
    kem: Option<(&str, &[u8])>,
) -> Result<Psk, DeriveError> {
    let (name, secret) = kem.unwrap_or((NO_KEM, &[]));
    let mut ikm = Zeroizing::new(Vec::with_capacity(4 + EXPORTER_LEN + secret.len()));
    push_prefixed(&mut ikm, exporter)?;
    push_prefixed(&mut ikm, secret)?;
    let name_len = u8::try_from(name.len()).map_err(|_| DeriveError::TooLong)?;
    let epoch_be = epoch.to_be_bytes();
    let info: [&[u8]; 6] = [
        INFO_PREFIX,
        &epoch_be,
        initiator,
        responder,
        std::slice::from_ref(&name_len),
        name.as_bytes(),
    ];
    let prk = hkdf::Salt::new(hash.algorithm(), SALT).extract(&ikm);
    let okm = prk.expand(&info, Len32).map_err(|_| DeriveError::Hkdf)?;
    let mut out = Zeroizing::new([0u8; 32]);
    okm.fill(&mut out[..]).map_err(|_| DeriveError::Hkdf)?;
    Ok(Psk::from_bytes(*out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    /// The docs/design/pqpsk.md test-vector inputs.
    fn inputs() -> (u64, WgKey, WgKey, [u8; 32]) {
        let mut exporter = [0u8; 32];
        for (i, b) in exporter.iter_mut().enumerate() {
            *b = i as u8;
        }
        (0x0102_0304_0506_0708, [0x11; 32], [0x22; 32], exporter)
    }

    fn psk_hex(hash: KdfHash, kem: Option<(&str, &[u8])>) -> String {
        let (epoch, i, r, e) = inputs();
        hex::encode(derive_psk(hash, epoch, &i, &r, &e, kem).unwrap().expose())
    }

    #[test]
    fn context_layout() {
        let (epoch, i, r, _) = inputs();
        let ctx = exporter_context(epoch, &i, &r);
        assert_eq!(&ctx[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(ctx[8..40].iter().all(|&b| b == 0x11));
        assert!(ctx[40..].iter().all(|&b| b == 0x22));
    }

    // Expected values computed independently (Python's hmac/hashlib, see docs/design/pqpsk.md).
    #[test]
    fn test_vectors_from_docs() {
        assert_eq!(psk_hex(KdfHash::Sha256, None), VECTOR_SHA256_NONE);
        let ss = [0x33u8; 32];
        assert_eq!(
            psk_hex(KdfHash::Sha256, Some(("Classic-McEliece-460896", &ss))),
            VECTOR_SHA256_MCELIECE
        );
        assert_eq!(psk_hex(KdfHash::Sha384, None), VECTOR_SHA384_NONE);
    }

    #[test]
    fn every_input_changes_the_psk() {
        let (epoch, i, r, e) = inputs();
        let base = derive_psk(KdfHash::Sha256, epoch, &i, &r, &e, None).unwrap();
        let mut e2 = e;
        e2[31] ^= 1;
        let variants = [
            derive_psk(KdfHash::Sha384, epoch, &i, &r, &e, None),
            derive_psk(KdfHash::Sha256, epoch + 1, &i, &r, &e, None),
            derive_psk(KdfHash::Sha256, epoch, &r, &i, &e, None),
            derive_psk(KdfHash::Sha256, epoch, &i, &r, &e2, None),
            derive_psk(KdfHash::Sha256, epoch, &i, &r, &e, Some(("none", &[0]))),
            derive_psk(KdfHash::Sha256, epoch, &i, &r, &e, Some(("HQC-128", &[]))),
        ];
        for v in variants {
            assert_ne!(v.unwrap(), base);
        }
    }

    #[test]
    fn oversized_kem_inputs_are_errors() {
        let (epoch, i, r, e) = inputs();
        let big = vec![0u8; 70_000];
        let long_name = "x".repeat(300);
        assert_eq!(
            derive_psk(KdfHash::Sha256, epoch, &i, &r, &e, Some(("HQC-128", &big))),
            Err(DeriveError::TooLong)
        );
        assert_eq!(
            derive_psk(KdfHash::Sha256, epoch, &i, &r, &e, Some((&long_name, &[1]))),
            Err(DeriveError::TooLong)
        );
    }

    const VECTOR_SHA256_NONE: &str =
        "0589a776aac13771d9d2d76836afd718e1434a761b3c4b54c2a6dbd55109b281";
    const VECTOR_SHA256_MCELIECE: &str =
        "99fb7d47d491cb37d2f088be9329bf7f2d92c9c307b54707d9577ad6335441a4";
    const VECTOR_SHA384_NONE: &str =
        "812921df2aa633a155ac7d1376c6f84b797096f56176f2e162812fe757a5365d";
}
