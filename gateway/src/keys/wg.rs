//! `wg genkey` / `wg pubkey` over the one WireGuard key type, [`PrivateKey`] (zeroized on drop,
//! redacted in `Debug`): a new clamped X25519 private key, a key read from text, and its public
//! [`Key32`].

use aws_lc_rs::agreement::{self, X25519};
use pqgate_core::wg::key::KEY_LEN;
use pqgate_core::wg::{Key32, KeyError, PrivateKey};
use zeroize::Zeroizing;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WgKeyError {
    /// The system RNG or X25519 failed (not the caller's fault).
    #[error("X25519 failed in aws-lc-rs")]
    Crypto,
    /// The input is not one base64 WireGuard key (the operator's input).
    #[error("not a WireGuard key: expected 44 base64 characters encoding 32 bytes")]
    Malformed {
        /// What is wrong with it (never the text: it may be a secret).
        #[source]
        source: KeyError,
    },
}

/// A new random key, clamped as curve25519 requires (what `wg genkey` prints).
pub(crate) fn generate() -> Result<PrivateKey, WgKeyError> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| WgKeyError::Crypto)?;
    bytes[0] &= 248;
    bytes[31] = (bytes[31] & 127) | 64;
    Ok(PrivateKey::from_bytes(*bytes))
}

/// Parses a base64 private key, surrounding whitespace allowed (a file or `wg genkey` output).
pub(crate) fn parse(text: &str) -> Result<PrivateKey, WgKeyError> {
    PrivateKey::from_base64(text.trim()).map_err(|source| WgKeyError::Malformed { source })
}

/// The public key (`wg pubkey`). X25519 clamps the scalar itself, so an unclamped key gives the
/// same public key as its clamped form, as with `wg`.
pub(crate) fn public_key(private: &PrivateKey) -> Result<Key32, WgKeyError> {
    let private = agreement::PrivateKey::from_private_key(&X25519, private.expose())
        .map_err(|_| WgKeyError::Crypto)?;
    let public = private
        .compute_public_key()
        .map_err(|_| WgKeyError::Crypto)?;
    let bytes = <[u8; KEY_LEN]>::try_from(public.as_ref()).map_err(|_| WgKeyError::Crypto)?;
    Ok(Key32::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn rfc7748_vector_gives_the_published_public_key() {
        // RFC 7748 section 6.1, Alice's private and public keys.
        let private = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
        let public = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        let bytes: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&private[i..i + 2], 16).unwrap())
            .collect();
        let key = parse(&STANDARD.encode(&bytes)).unwrap();
        let got = public_key(&key).unwrap();
        let hex: String = got.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, public);
    }

    #[test]
    fn generated_keys_are_clamped_distinct_and_round_trip() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose()[0] & 7, 0);
        assert_eq!(a.expose()[31] & 0xc0, 0x40);
        let text = Zeroizing::new(format!("{}\n", a.expose_base64()));
        assert_eq!(text.trim().len(), 44);
        let back = parse(&text).unwrap();
        assert_eq!(public_key(&back).unwrap(), public_key(&a).unwrap());
        assert_eq!(format!("{a:?}"), "PrivateKey(<redacted>)");
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in [
            "",
            "abc",
            &STANDARD.encode([1u8; 31]),
            &STANDARD.encode([1u8; 33]),
            "!!!!",
        ] {
            assert!(matches!(parse(bad), Err(WgKeyError::Malformed { .. })));
        }
    }
}
