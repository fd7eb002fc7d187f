//! SM4-GCM and SM3 (RFC 8998, TLS_SM4_GCM_SM3 = 0x00C6) compiled in (cargo feature
//! `plugin-sm4`): the `pqgate-plugin-sm4` crate's Rust API behind the [`Plugin`] traits, so the
//! same cipher code runs compiled in and as that crate's run-time plugin
//! (`libpqgate_plugin_sm4.so`), with the same published known-answer vectors.

use std::sync::Arc;

use pqgate_plugin_sm4 as sm4;

use super::{
    AeadAlgorithm, AeadKat, AeadKey, HashAlgorithm, HashKat, Origin, Plugin, PluginDecl,
    PluginError, SuiteDecl, append_with,
};

/// The compiled-in SM plugin: declares SM4-GCM, SM3 and TLS_SM4_GCM_SM3.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sm4Plugin;

impl Plugin for Sm4Plugin {
    fn declare(&self) -> PluginDecl {
        PluginDecl {
            name: sm4::PLUGIN_NAME.to_owned(),
            version: sm4::PLUGIN_VERSION.to_owned(),
            origin: Origin::CompiledIn,
            aeads: vec![Arc::new(Sm4Gcm::new())],
            hashes: vec![Arc::new(Sm3::new())],
            suites: vec![SuiteDecl {
                name: sm4::SUITE_NAME.to_owned(),
                code_point: sm4::SUITE_CODE_POINT,
                aead: sm4::AEAD_NAME.to_owned(),
                hash: sm4::HASH_NAME.to_owned(),
                max_records_per_key: sm4::MAX_RECORDS_PER_KEY,
                max_forgeries: sm4::MAX_FORGERIES,
                security_bits: SECURITY_BITS,
            }],
        }
    }
}

/// [`sm4::SECURITY_BITS`] (a `u32` in the C ABI) as the registry's `u16`.
const SECURITY_BITS: u16 = {
    assert!(sm4::SECURITY_BITS <= u16::MAX as u32);
    sm4::SECURITY_BITS as u16
};

/// SM4-GCM (16-byte key, 12-byte nonce, 16-byte tag) with raw SM4 for QUIC header protection.
#[derive(Debug)]
pub struct Sm4Gcm {
    kats: Vec<AeadKat>,
}

impl Sm4Gcm {
    /// The algorithm with its RFC 8998 Appendix A.1 vector.
    pub fn new() -> Self {
        let kats = sm4::kat::SM4_GCM_KATS
            .iter()
            .map(|v| AeadKat {
                key: v.key.to_vec(),
                nonce: v.nonce.to_vec(),
                aad: v.aad.to_vec(),
                plaintext: v.plaintext.to_vec(),
                ciphertext: v.ciphertext.to_vec(),
            })
            .collect();
        Self { kats }
    }
}

impl Default for Sm4Gcm {
    fn default() -> Self {
        Self::new()
    }
}

fn call_error(e: sm4::Error) -> PluginError {
    PluginError::call(sm4::AEAD_NAME, e.to_string())
}

impl AeadAlgorithm for Sm4Gcm {
    fn name(&self) -> &str {
        sm4::AEAD_NAME
    }
    fn key_len(&self) -> usize {
        sm4::KEY_LEN
    }
    fn nonce_len(&self) -> usize {
        sm4::NONCE_LEN
    }
    fn tag_len(&self) -> usize {
        sm4::TAG_LEN
    }
    fn new_key(&self, key: &[u8]) -> Result<Box<dyn AeadKey>, PluginError> {
        let key = sm4::Sm4GcmKey::new(key).map_err(call_error)?;
        Ok(Box::new(Sm4GcmKey(key)))
    }
    fn block_len(&self) -> usize {
        sm4::BLOCK_LEN
    }
    fn encrypt_block(&self, key: &[u8], block: &[u8], out: &mut [u8]) -> Result<(), PluginError> {
        sm4::sm4_encrypt_block(key, block, out).map_err(call_error)
    }
    fn kats(&self) -> &[AeadKat] {
        &self.kats
    }
}

struct Sm4GcmKey(sm4::Sm4GcmKey);

impl AeadKey for Sm4GcmKey {
    fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let len = plaintext
            .len()
            .checked_add(sm4::TAG_LEN)
            .ok_or_else(|| call_error(sm4::Error::InputTooLong))?;
        append_with(out, &[], len, |buf| {
            self.0
                .seal_into(nonce, aad, plaintext, buf)
                .map_err(call_error)
        })
    }

    fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let len = sealed
            .len()
            .checked_sub(sm4::TAG_LEN)
            .ok_or_else(|| call_error(sm4::Error::InputTooShort))?;
        append_with(out, &[], len, |buf| {
            self.0
                .open_into(nonce, aad, sealed, buf)
                .map_err(call_error)
        })
    }
}

/// SM3 (32-byte digest, 64-byte block).
#[derive(Debug)]
pub struct Sm3 {
    kats: Vec<HashKat>,
}

impl Sm3 {
    /// The algorithm with the SM3 specification's two example vectors.
    pub fn new() -> Self {
        let kats = sm4::kat::SM3_KATS
            .iter()
            .map(|v| HashKat {
                message: v.message.to_vec(),
                digest: v.digest.to_vec(),
            })
            .collect();
        Self { kats }
    }
}

impl Default for Sm3 {
    fn default() -> Self {
        Self::new()
    }
}

impl HashAlgorithm for Sm3 {
    fn name(&self) -> &str {
        sm4::HASH_NAME
    }
    fn output_len(&self) -> usize {
        sm4::SM3_OUTPUT_LEN
    }
    fn block_len(&self) -> usize {
        sm4::SM3_BLOCK_LEN
    }
    fn digest(&self, message: &[u8]) -> Result<Vec<u8>, PluginError> {
        Ok(sm4::sm3(message).to_vec())
    }
    fn kats(&self) -> &[HashKat] {
        &self.kats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{check_aead, check_hash};

    #[test]
    fn compiled_in_declaration_passes_its_known_answers() {
        let decl = Sm4Plugin.declare();
        assert_eq!(decl.origin, Origin::CompiledIn);
        assert_eq!(decl.name, "pqgate-plugin-sm4");
        assert_eq!(decl.aeads.len(), 1);
        assert_eq!(decl.hashes.len(), 1);
        for aead in &decl.aeads {
            check_aead(aead.as_ref()).unwrap();
        }
        for hash in &decl.hashes {
            check_hash(hash.as_ref()).unwrap();
        }
    }

    #[test]
    fn suite_is_rfc_8998_tls_sm4_gcm_sm3() {
        let decl = Sm4Plugin.declare();
        let suite = &decl.suites[..];
        assert_eq!(
            suite,
            [SuiteDecl {
                name: "TLS_SM4_GCM_SM3".into(),
                code_point: 0x00C6,
                aead: "SM4-GCM".into(),
                hash: "SM3".into(),
                max_records_per_key: 1 << 23,
                max_forgeries: 1 << 52,
                security_bits: 128,
            }]
        );
        let aead = &decl.aeads[0];
        assert_eq!(
            (aead.key_len(), aead.nonce_len(), aead.tag_len()),
            (16, 12, 16)
        );
        assert_eq!(
            (decl.hashes[0].output_len(), decl.hashes[0].block_len()),
            (32, 64)
        );
    }

    #[test]
    fn header_protection_block_and_appending_outputs() {
        let aead = Sm4Gcm::new();
        // GB/T 32907-2016 Appendix A.1.
        let v = sm4::kat::SM4_BLOCK_KATS[0];
        let mut out = [0u8; 16];
        aead.encrypt_block(v.key, v.plaintext, &mut out).unwrap();
        assert_eq!(out, v.ciphertext);

        // seal/open append to what is already in `out`, and leave it alone on failure.
        let kat = &aead.kats()[0];
        let key = aead.new_key(&kat.key).unwrap();
        let mut sealed = b"hdr".to_vec();
        key.seal(&kat.nonce, &kat.aad, &kat.plaintext, &mut sealed)
            .unwrap();
        assert_eq!(&sealed[..3], b"hdr");
        assert_eq!(&sealed[3..], kat.ciphertext);
        let mut opened = b"x".to_vec();
        key.open(&kat.nonce, &kat.aad, &sealed[3..], &mut opened)
            .unwrap();
        assert_eq!(&opened[1..], kat.plaintext);
        sealed[5] ^= 1;
        let mut untouched = b"y".to_vec();
        assert!(
            key.open(&kat.nonce, &kat.aad, &sealed[3..], &mut untouched)
                .is_err()
        );
        assert_eq!(untouched, b"y");
        assert!(aead.new_key(&[0; 15]).is_err());
    }
}
