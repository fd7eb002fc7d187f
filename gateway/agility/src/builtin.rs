//! The aws-lc-rs primitives behind the plugin traits, so built-in and plugin algorithms are
//! tested (self-tests, Wycheproof) through one interface.

use std::sync::Arc;

use aws_lc_rs::{aead, agreement};

use crate::plugin::{AeadAlgorithm, AeadKat, AeadKey, PluginError, append_with};

/// An aws-lc-rs AEAD.
#[derive(Debug)]
pub struct BuiltinAead {
    name: &'static str,
    alg: &'static aead::Algorithm,
}

struct BuiltinKey {
    name: &'static str,
    key: aead::LessSafeKey,
}

impl AeadAlgorithm for BuiltinAead {
    fn name(&self) -> &str {
        self.name
    }
    fn key_len(&self) -> usize {
        self.alg.key_len()
    }
    fn nonce_len(&self) -> usize {
        self.alg.nonce_len()
    }
    fn tag_len(&self) -> usize {
        self.alg.tag_len()
    }
    fn new_key(&self, key: &[u8]) -> Result<Box<dyn AeadKey>, PluginError> {
        let unbound = aead::UnboundKey::new(self.alg, key)
            .map_err(|_| PluginError::call(self.name, "key rejected"))?;
        Ok(Box::new(BuiltinKey {
            name: self.name,
            key: aead::LessSafeKey::new(unbound),
        }))
    }
    fn kats(&self) -> &[AeadKat] {
        &[]
    }
}

impl BuiltinKey {
    fn nonce(&self, nonce: &[u8]) -> Result<aead::Nonce, PluginError> {
        aead::Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| PluginError::call(self.name, "bad nonce length"))
    }
}

impl AeadKey for BuiltinKey {
    /// One copy of the plaintext into `out`, sealed there in place, the tag appended.
    fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let nonce = self.nonce(nonce)?;
        let len = plaintext.len() + self.key.algorithm().tag_len();
        append_with(out, plaintext, len, |buf| {
            let (body, tag_out) = buf.split_at_mut(plaintext.len());
            let tag = self
                .key
                .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), body)
                .map_err(|_| PluginError::call(self.name, "seal failed"))?;
            tag_out.copy_from_slice(tag.as_ref());
            Ok(len)
        })
    }

    /// One copy of `sealed` into `out`, opened there in place; `out` unchanged on failure.
    fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let nonce = self.nonce(nonce)?;
        append_with(out, sealed, sealed.len(), |buf| {
            self.key
                .open_in_place(nonce, aead::Aad::from(aad), buf)
                .map(|plain| plain.len())
                .map_err(|_| PluginError::call(self.name, "authentication failed"))
        })
    }
}

/// The built-in AEADs: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305.
pub fn aeads() -> Vec<Arc<dyn AeadAlgorithm>> {
    use crate::selftest::names;
    vec![
        Arc::new(BuiltinAead {
            name: names::AES_128_GCM,
            alg: &aead::AES_128_GCM,
        }),
        Arc::new(BuiltinAead {
            name: names::AES_256_GCM,
            alg: &aead::AES_256_GCM,
        }),
        Arc::new(BuiltinAead {
            name: names::CHACHA20_POLY1305,
            alg: &aead::CHACHA20_POLY1305,
        }),
    ]
}

/// A Diffie-Hellman function with caller-supplied private keys (for known-answer tests).
pub trait KeyAgreement: Send + Sync {
    /// Registry name.
    fn name(&self) -> &str;
    /// The shared secret of `private` and `peer_public`; an error for an invalid peer key
    /// (including one that yields an all-zero X25519 secret).
    fn agree(&self, private: &[u8], peer_public: &[u8]) -> Result<Vec<u8>, PluginError>;
}

/// X25519 (RFC 7748) from aws-lc-rs.
#[derive(Debug)]
pub struct X25519;

impl KeyAgreement for X25519 {
    fn name(&self) -> &str {
        crate::selftest::names::X25519
    }

    fn agree(&self, private: &[u8], peer_public: &[u8]) -> Result<Vec<u8>, PluginError> {
        let key = agreement::PrivateKey::from_private_key(&agreement::X25519, private)
            .map_err(|_| PluginError::call("X25519", "private key rejected"))?;
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public);
        agreement::agree(
            &key,
            peer,
            PluginError::call("X25519", "peer key rejected"),
            |s| Ok(s.to_vec()),
        )
    }
}
