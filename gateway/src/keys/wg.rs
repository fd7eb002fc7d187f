//! WireGuard keys as `wg genkey` / `wg pubkey` make them: a clamped X25519 private key and its
//! public key, each 32 bytes in standard base64 (44 characters). Private bytes are wiped on drop.

use aws_lc_rs::agreement::{PrivateKey, X25519};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Length of a WireGuard key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WgKeyError {
    /// The system RNG or X25519 failed (not the caller's fault).
    #[error("X25519 failed in aws-lc-rs")]
    Crypto,
    /// The input is not one base64 WireGuard key (the operator's input).
    #[error("not a WireGuard key: expected 44 base64 characters encoding 32 bytes")]
    Malformed,
}

/// A WireGuard private key; the bytes are wiped when it is dropped.
pub struct PrivateWgKey(Zeroizing<[u8; KEY_LEN]>);

impl PrivateWgKey {
    /// A new random key, clamped as curve25519 requires (what `wg genkey` prints).
    pub fn generate() -> Result<Self, WgKeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| WgKeyError::Crypto)?;
        bytes[0] &= 248;
        bytes[31] = (bytes[31] & 127) | 64;
        Ok(Self(bytes))
    }

    /// Parses a base64 key, surrounding whitespace allowed (a file or `wg genkey` output).
    pub fn from_base64(text: &str) -> Result<Self, WgKeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| WgKeyError::Malformed)?,
        );
        if decoded.len() != KEY_LEN {
            return Err(WgKeyError::Malformed);
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self(bytes))
    }

    /// The key in base64, as written to a key file (wiped on drop).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// The public key in base64 (`wg pubkey`). X25519 clamps the scalar itself, so an
    /// unclamped key gives the same public key as its clamped form, as with `wg`.
    pub fn public_base64(&self) -> Result<String, WgKeyError> {
        let private = PrivateKey::from_private_key(&X25519, self.0.as_ref())
            .map_err(|_| WgKeyError::Crypto)?;
        let public = private
            .compute_public_key()
            .map_err(|_| WgKeyError::Crypto)?;
        Ok(STANDARD.encode(public.as_ref()))
    }
}

impl std::fmt::Debug for PrivateWgKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateWgKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
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
        let key = PrivateWgKey::from_base64(&STANDARD.encode(&bytes)).unwrap();
        let got = STANDARD.decode(key.public_base64().unwrap()).unwrap();
        let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, public);
    }

    #[test]
    fn generated_keys_are_clamped_distinct_and_round_trip() {
        let a = PrivateWgKey::generate().unwrap();
        let b = PrivateWgKey::generate().unwrap();
        assert_ne!(a.to_base64(), b.to_base64());
        assert_eq!(a.0[0] & 7, 0);
        assert_eq!(a.0[31] & 0xc0, 0x40);
        let text = format!("{}\n", a.to_base64().as_str());
        assert_eq!(text.trim().len(), 44);
        let back = PrivateWgKey::from_base64(&text).unwrap();
        assert_eq!(back.public_base64().unwrap(), a.public_base64().unwrap());
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
            assert!(matches!(
                PrivateWgKey::from_base64(bad),
                Err(WgKeyError::Malformed)
            ));
        }
    }
}
