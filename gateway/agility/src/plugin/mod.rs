//! Algorithm plugins. Compile-time plugins implement [`Plugin`]; run-time plugins are shared
//! libraries speaking the C ABI in `include/pqgate_plugin.h`, turned by [`loader`] into the same
//! [`PluginDecl`]. Either way every algorithm passes its own known-answer vectors before the
//! registry enables it, and a bad declaration disables the plugin's algorithms, never the process.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub mod loader;
pub mod signature;
pub mod tls;

/// Why a plugin or one of its algorithms is unusable; the plugin (or its file) is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The library could not be opened.
    #[error("cannot load {path}: {reason}")]
    Load {
        /// The file.
        path: String,
        /// The dynamic loader's message.
        reason: String,
    },
    /// The entry symbol is missing.
    #[error("{path}: missing symbol {symbol}")]
    MissingSymbol {
        /// The file.
        path: String,
        /// The symbol.
        symbol: &'static str,
    },
    /// The plugin was built for another ABI version.
    #[error("{plugin}: ABI version {found}, this pqgate speaks version {expected}")]
    AbiVersion {
        /// Plugin name or file.
        plugin: String,
        /// Declared version.
        found: u32,
        /// Our version.
        expected: u32,
    },
    /// A declared value breaks the ABI's contract (sizes, counts, names, null pointers).
    #[error("{plugin}: invalid declaration: {what}")]
    Declaration {
        /// Plugin name or file.
        plugin: String,
        /// What is wrong.
        what: String,
    },
    /// A call reported failure or broke the buffer contract.
    #[error("{algorithm}: {what}")]
    Call {
        /// The algorithm.
        algorithm: String,
        /// What went wrong.
        what: String,
    },
    /// A known-answer vector did not reproduce.
    #[error("{algorithm}: known-answer vector {index} failed: {what}")]
    KnownAnswer {
        /// The algorithm.
        algorithm: String,
        /// Which vector (0-based).
        index: usize,
        /// What differed.
        what: &'static str,
    },
    /// The plugin's detached signature is missing or does not verify.
    #[error("{path}: {what}")]
    Signature {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The operation is not offered by this algorithm.
    #[error("{0}: not supported")]
    Unsupported(String),
}

impl PluginError {
    /// A failed call of `algorithm`.
    pub fn call(algorithm: &str, what: impl Into<String>) -> Self {
        Self::Call {
            algorithm: algorithm.to_owned(),
            what: what.into(),
        }
    }
}

/// One AEAD known-answer vector: `seal(key, nonce, aad, plaintext) == ciphertext` (tag appended).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AeadKat {
    /// Key.
    pub key: Vec<u8>,
    /// Nonce.
    pub nonce: Vec<u8>,
    /// Associated data.
    pub aad: Vec<u8>,
    /// Plaintext.
    pub plaintext: Vec<u8>,
    /// Ciphertext with the tag appended.
    pub ciphertext: Vec<u8>,
}

/// One hash known-answer vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashKat {
    /// Message.
    pub message: Vec<u8>,
    /// Expected digest.
    pub digest: Vec<u8>,
}

/// An expanded AEAD key; safe to use from several threads.
pub trait AeadKey: Send + Sync {
    /// Appends `ciphertext || tag` of `plaintext` to `out`.
    fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError>;
    /// Verifies `sealed` (`ciphertext || tag`) and appends the plaintext to `out`.
    fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError>;
}

/// Grows `out` by `len` bytes, the first of them a copy of `prefix` (the rest zeroed), and lets
/// `fill` rewrite them, keeping the first `kept` bytes it reports (at most `len`); on failure
/// `out` is left as it was. The one place the [`AeadKey`] contract "append to `out`, unchanged
/// on failure" is kept for every implementation. `prefix` lets an in-place AEAD take its input
/// with one copy and no zeroing of it (the built-ins seal and open in place, per packet).
pub(crate) fn append_with(
    out: &mut Vec<u8>,
    prefix: &[u8],
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<usize, PluginError>,
) -> Result<(), PluginError> {
    let start = out.len();
    out.extend_from_slice(prefix);
    out.resize(start + len, 0);
    match fill(&mut out[start..]) {
        Ok(kept) => {
            out.truncate(start + kept.min(len));
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// An AEAD algorithm.
pub trait AeadAlgorithm: Send + Sync + fmt::Debug {
    /// Registry name, e.g. `SM4-GCM`.
    fn name(&self) -> &str;
    /// Key length in bytes.
    fn key_len(&self) -> usize;
    /// Nonce length in bytes (12 for TLS 1.3 and QUIC).
    fn nonce_len(&self) -> usize;
    /// Tag length in bytes.
    fn tag_len(&self) -> usize;
    /// Expands a key of [`AeadAlgorithm::key_len`] bytes.
    fn new_key(&self, key: &[u8]) -> Result<Box<dyn AeadKey>, PluginError>;
    /// Block length of the header-protection cipher; 0 when there is none.
    fn block_len(&self) -> usize {
        0
    }
    /// Encrypts one block under a raw key (QUIC header protection).
    fn encrypt_block(&self, key: &[u8], block: &[u8], out: &mut [u8]) -> Result<(), PluginError> {
        let _ = (key, block, out);
        Err(PluginError::Unsupported(self.name().to_owned()))
    }
    /// The algorithm's own known-answer vectors.
    fn kats(&self) -> &[AeadKat];
}

/// A hash algorithm.
pub trait HashAlgorithm: Send + Sync + fmt::Debug {
    /// Registry name, e.g. `SM3`.
    fn name(&self) -> &str;
    /// Digest length in bytes.
    fn output_len(&self) -> usize;
    /// Compression-function block length in bytes (for HMAC).
    fn block_len(&self) -> usize;
    /// One-shot digest.
    fn digest(&self, message: &[u8]) -> Result<Vec<u8>, PluginError>;
    /// The algorithm's own known-answer vectors.
    fn kats(&self) -> &[HashKat];
}

/// A TLS 1.3 cipher suite a plugin offers, built from its AEAD and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteDecl {
    /// IANA-style name, e.g. `TLS_SM4_GCM_SM3`.
    pub name: String,
    /// Code point, e.g. 0x00C6.
    pub code_point: u16,
    /// Name of the plugin's AEAD.
    pub aead: String,
    /// Name of the plugin's hash.
    pub hash: String,
    /// Records (or QUIC packets) one key may protect before re-keying.
    pub max_records_per_key: u64,
    /// Forged packets tolerated per key (QUIC integrity limit).
    pub max_forgeries: u64,
    /// Claimed security level in bits.
    pub security_bits: u16,
}

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into this binary behind a cargo feature.
    CompiledIn,
    /// Loaded from a shared library.
    SharedLibrary(PathBuf),
}

/// Everything a plugin declares, in owned Rust form.
#[derive(Clone, Debug)]
pub struct PluginDecl {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Where it came from.
    pub origin: Origin,
    /// Its AEADs.
    pub aeads: Vec<Arc<dyn AeadAlgorithm>>,
    /// Its hashes.
    pub hashes: Vec<Arc<dyn HashAlgorithm>>,
    /// Its TLS 1.3 suites.
    pub suites: Vec<SuiteDecl>,
}

/// The compile-time plugins enabled by cargo features (`plugin-sm4`).
pub fn compiled_in() -> Vec<PluginDecl> {
    vec![
        #[cfg(feature = "plugin-sm4")]
        builtin_sm4::Sm4Plugin.declare(),
    ]
}

/// Implemented by compile-time plugins.
pub trait Plugin {
    /// Declares the plugin's algorithms.
    fn declare(&self) -> PluginDecl;
}

/// Runs an AEAD's known-answer vectors (seal must reproduce, open must invert, a flipped tag
/// bit must be refused) and checks the buffer contract on the way.
pub fn check_aead(aead: &dyn AeadAlgorithm) -> Result<(), PluginError> {
    let name = aead.name().to_owned();
    if aead.kats().is_empty() {
        return Err(PluginError::Declaration {
            plugin: name,
            what: "an AEAD must declare at least one known-answer vector".into(),
        });
    }
    for (index, kat) in aead.kats().iter().enumerate() {
        let fail = |what| PluginError::KnownAnswer {
            algorithm: name.clone(),
            index,
            what,
        };
        if kat.key.len() != aead.key_len() || kat.nonce.len() != aead.nonce_len() {
            return Err(fail("key or nonce length differs from the declared one"));
        }
        let key = aead.new_key(&kat.key)?;
        let mut sealed = Vec::new();
        key.seal(&kat.nonce, &kat.aad, &kat.plaintext, &mut sealed)?;
        if sealed != kat.ciphertext {
            return Err(fail("seal did not produce the expected ciphertext"));
        }
        let mut opened = Vec::new();
        key.open(&kat.nonce, &kat.aad, &sealed, &mut opened)?;
        if opened != kat.plaintext {
            return Err(fail("open did not return the plaintext"));
        }
        if let Some(last) = sealed.last_mut() {
            *last ^= 0x01;
        }
        if key
            .open(&kat.nonce, &kat.aad, &sealed, &mut Vec::new())
            .is_ok()
        {
            return Err(fail("open accepted a forged tag"));
        }
    }
    Ok(())
}

/// Runs a hash's known-answer vectors.
pub fn check_hash(hash: &dyn HashAlgorithm) -> Result<(), PluginError> {
    let name = hash.name().to_owned();
    if hash.kats().is_empty() {
        return Err(PluginError::Declaration {
            plugin: name,
            what: "a hash must declare at least one known-answer vector".into(),
        });
    }
    for (index, kat) in hash.kats().iter().enumerate() {
        if hash.digest(&kat.message)? != kat.digest {
            return Err(PluginError::KnownAnswer {
                algorithm: name,
                index,
                what: "digest differs",
            });
        }
    }
    Ok(())
}

#[cfg(feature = "plugin-sm4")]
pub mod builtin_sm4;
