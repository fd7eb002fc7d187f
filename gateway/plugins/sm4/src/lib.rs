//! SM4-GCM and SM3 (RFC 8998, TLS_SM4_GCM_SM3 = 0x00C6) for pqgate, two ways from one code:
//! a run-time plugin speaking the C ABI v1 of `gateway/agility/include/pqgate_plugin.h`
//! (module [`abi`], exported as `pqgate_plugin_v1_entry` from the cdylib), and the plain Rust
//! API below for the compile-time path. Every function checks its lengths and reports errors;
//! none panics on caller input.
//!
//! SM4-GCM is NIST SP 800-38D GCM over the SM4 block cipher (RFC 8998 section 3: 16-byte key,
//! 12-byte nonce, 16-byte tag), built from RustCrypto's generic `AesGcm<Sm4, U12>`. SM3 is the
//! GB/T 32905-2016 hash (32-byte digest, 64-byte block).
//!
//! This crate depends on no pqgate crate on purpose: it is the worked example of a vendor plugin
//! written against the header alone.
#![deny(unsafe_code)]
#![warn(missing_docs)]

use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use sm3::Digest;
use sm4::Sm4;
use sm4::cipher::BlockCipherEncrypt;

#[allow(unsafe_code)]
pub mod abi;
pub mod kat;

/// Plugin name, as declared in the descriptor.
pub const PLUGIN_NAME: &str = "pqgate-plugin-sm4";
/// Plugin version (the crate version).
pub const PLUGIN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Registry name of the AEAD.
pub const AEAD_NAME: &str = "SM4-GCM";
/// Registry name of the hash.
pub const HASH_NAME: &str = "SM3";
/// TLS 1.3 cipher suite name (RFC 8998 section 2).
pub const SUITE_NAME: &str = "TLS_SM4_GCM_SM3";
/// TLS 1.3 cipher suite code point {0x00, 0xC6} (RFC 8998 section 2, IANA registry).
pub const SUITE_CODE_POINT: u16 = 0x00C6;

/// SM4-GCM key length in bytes (SM4 has a 128-bit key).
pub const KEY_LEN: usize = 16;
/// SM4-GCM nonce length in bytes (RFC 8998 section 3.1: 12-octet IV, as TLS 1.3 requires).
pub const NONCE_LEN: usize = 12;
/// SM4-GCM tag length in bytes (RFC 8998 section 3.1: 16 octets).
pub const TAG_LEN: usize = 16;
/// SM4 block length in bytes, for QUIC header protection (RFC 9001 section 5.4.3 encrypts one
/// 16-byte sample).
pub const BLOCK_LEN: usize = 16;
/// SM3 digest length in bytes (256 bits).
pub const SM3_OUTPUT_LEN: usize = 32;
/// SM3 compression-function block length in bytes (512 bits), for HMAC.
pub const SM3_BLOCK_LEN: usize = 64;

/// Records (TLS) or packets (QUIC) one SM4-GCM key may protect: 2^23.
///
/// RFC 9001 section 6.6 sets the confidentiality limit of AEAD_AES_128_GCM at 2^23 encrypted
/// packets (analysis in its Appendix B.1, packets up to 2^16 bytes, attacker advantage below
/// 2^-57). That bound depends only on GCM over a 128-bit block cipher assumed to be a good PRP,
/// so it carries over to SM4-GCM. It is also below RFC 8446 section 5.5's 2^24.5 full-size TLS
/// records for AES-GCM, so one number is conservative for TLS and QUIC alike.
pub const MAX_RECORDS_PER_KEY: u64 = 1 << 23;
/// Forged packets tolerated per connection (QUIC integrity limit): 2^52, RFC 9001 section 6.6's
/// integrity limit for AEAD_AES_128_GCM, by the same argument as [`MAX_RECORDS_PER_KEY`].
pub const MAX_FORGERIES: u64 = 1 << 52;
/// Claimed security level in bits (128-bit key; no better attack on SM4 is known).
pub const SECURITY_BITS: u32 = 128;

/// Why an SM4-GCM, SM4 or SM3 call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The key is not [`KEY_LEN`] bytes.
    KeyLength,
    /// The nonce is not [`NONCE_LEN`] bytes.
    NonceLength,
    /// The block is not [`BLOCK_LEN`] bytes.
    BlockLength,
    /// The sealed input is shorter than the tag.
    InputTooShort,
    /// The input is longer than GCM allows (2^36 - 32 bytes of plaintext, 2^61 - 1 of AAD).
    InputTooLong,
    /// The output buffer is too small; nothing was written.
    BufferTooSmall,
    /// The tag did not verify; nothing was written.
    Authentication,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::KeyLength => "key must be 16 bytes",
            Self::NonceLength => "nonce must be 12 bytes",
            Self::BlockLength => "block must be 16 bytes",
            Self::InputTooShort => "sealed input is shorter than the 16-byte tag",
            Self::InputTooLong => "input exceeds the GCM length limits",
            Self::BufferTooSmall => "output buffer too small",
            Self::Authentication => "authentication failed",
        })
    }
}

impl std::error::Error for Error {}

type Gcm = AesGcm<Sm4, U12>;

/// An expanded SM4-GCM key; read-only after creation, so one key may serve many threads.
/// The SM4 round keys and the GHASH key are wiped on drop.
#[derive(Clone)]
pub struct Sm4GcmKey {
    gcm: Gcm,
}

impl core::fmt::Debug for Sm4GcmKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Sm4GcmKey(..)")
    }
}

fn nonce(nonce: &[u8]) -> Result<&Array<u8, U12>, Error> {
    nonce.try_into().map_err(|_| Error::NonceLength)
}

impl Sm4GcmKey {
    /// Expands a [`KEY_LEN`]-byte key.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        Gcm::new_from_slice(key)
            .map(|gcm| Self { gcm })
            .map_err(|_| Error::KeyLength)
    }

    /// Writes `ciphertext || tag` of `plaintext` to the front of `out`; returns the length
    /// written (`plaintext.len() + TAG_LEN`). Writes nothing on error.
    pub fn seal_into(
        &self,
        nonce_bytes: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let nonce = nonce(nonce_bytes)?;
        let total = plaintext
            .len()
            .checked_add(TAG_LEN)
            .ok_or(Error::InputTooLong)?;
        let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        let (body, tag_out) = out.split_at_mut(plaintext.len());
        let buf = InOutBuf::new(plaintext, body).map_err(|_| Error::BufferTooSmall)?;
        let tag = self
            .gcm
            .encrypt_inout_detached(nonce, aad, buf)
            .map_err(|_| Error::InputTooLong)?;
        tag_out.copy_from_slice(&tag);
        Ok(total)
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal_in_place_detached(
        &self,
        nonce_bytes: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let nonce = nonce(nonce_bytes)?;
        let tag = self
            .gcm
            .encrypt_inout_detached(nonce, aad, InOutBuf::from(buf))
            .map_err(|_| Error::InputTooLong)?;
        Ok(tag.into())
    }

    /// Verifies `sealed` (`ciphertext || tag`) and writes the plaintext to the front of `out`;
    /// returns its length (`sealed.len() - TAG_LEN`). Writes nothing on error.
    pub fn open_into(
        &self,
        nonce_bytes: &[u8],
        aad: &[u8],
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let nonce = nonce(nonce_bytes)?;
        let len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(Error::InputTooShort)?;
        let (ciphertext, tag) = sealed.split_at(len);
        let out = out.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let buf = InOutBuf::new(ciphertext, out).map_err(|_| Error::BufferTooSmall)?;
        let tag = tag.try_into().map_err(|_| Error::InputTooShort)?;
        self.gcm
            .decrypt_inout_detached(nonce, aad, buf, tag)
            .map_err(|_| Error::Authentication)?;
        Ok(len)
    }

    /// Verifies `tag` over the ciphertext in `buf` and decrypts it in place; `buf` is left
    /// unchanged when the tag does not verify.
    pub fn open_in_place_detached(
        &self,
        nonce_bytes: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        let nonce = nonce(nonce_bytes)?;
        let tag = tag.try_into().map_err(|_| Error::InputTooShort)?;
        self.gcm
            .decrypt_inout_detached(nonce, aad, InOutBuf::from(buf), tag)
            .map_err(|_| Error::Authentication)
    }

    /// Returns `ciphertext || tag`.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let len = plaintext
            .len()
            .checked_add(TAG_LEN)
            .ok_or(Error::InputTooLong)?;
        let mut out = vec![0; len];
        self.seal_into(nonce, aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Verifies `sealed` (`ciphertext || tag`) and returns the plaintext.
    pub fn open(&self, nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![0; sealed.len().saturating_sub(TAG_LEN)];
        self.open_into(nonce, aad, sealed, &mut out)?;
        Ok(out)
    }
}

/// One-shot SM4-GCM seal: `ciphertext || tag`.
pub fn sm4_gcm_seal(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    Sm4GcmKey::new(key)?.seal(nonce, aad, plaintext)
}

/// One-shot SM4-GCM open of `ciphertext || tag`.
pub fn sm4_gcm_open(key: &[u8], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    Sm4GcmKey::new(key)?.open(nonce, aad, sealed)
}

/// Raw SM4 encryption of one [`BLOCK_LEN`]-byte block under a [`KEY_LEN`]-byte key into the
/// first 16 bytes of `out` (QUIC header protection: the mask is the first 5 bytes).
pub fn sm4_encrypt_block(key: &[u8], block: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let cipher = Sm4::new_from_slice(key).map_err(|_| Error::KeyLength)?;
    let block: &Array<u8, _> = block.try_into().map_err(|_| Error::BlockLength)?;
    let out: &mut Array<u8, _> = out
        .get_mut(..BLOCK_LEN)
        .ok_or(Error::BufferTooSmall)?
        .try_into()
        .map_err(|_| Error::BufferTooSmall)?;
    cipher.encrypt_block_b2b(block, out);
    Ok(())
}

/// SM3 digest of `message`.
pub fn sm3(message: &[u8]) -> [u8; SM3_OUTPUT_LEN] {
    sm3::Sm3::digest(message).into()
}

#[cfg(test)]
mod tests;
