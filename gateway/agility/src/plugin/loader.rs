//! Loads run-time plugins: opens the shared library, calls `pqgate_plugin_v1_entry`, checks and
//! copies every declared value into owned Rust data, and wraps the function pointers in the
//! plugin traits. The only module of this crate with `unsafe`: a plugin is native code, so a
//! plugin that lies about its pointers can still crash the process; everything it declares by
//! value (version, counts, sizes, names, vectors, null pointers) is checked before use.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;
use std::sync::Arc;

use libloading::Library;

use super::{AeadAlgorithm, AeadKat, AeadKey, HashAlgorithm, HashKat, Origin, PluginDecl};
use super::{PluginError, SuiteDecl, append_with};

/// The ABI version this pqgate speaks (`PQGATE_PLUGIN_ABI_VERSION`).
pub const ABI_VERSION: u32 = 1;
/// The entry symbol.
pub const ENTRY_SYMBOL: &str = "pqgate_plugin_v1_entry";
const MAX_KEY_LEN: u32 = 64;
const MAX_TAG_LEN: u32 = 32;
const MAX_BLOCK_LEN: u32 = 32;
const MAX_HASH_LEN: u32 = 64;
const MAX_ITEMS: usize = 16;
const MAX_KATS: usize = 64;
/// Largest byte string a vector may declare.
const MAX_VECTOR_BYTES: usize = 1 << 20;
/// Longest name, NUL excluded.
const MAX_NAME_LEN: usize = 63;

#[repr(C)]
struct AeadKatV1 {
    key: *const u8,
    key_len: usize,
    nonce: *const u8,
    nonce_len: usize,
    aad: *const u8,
    aad_len: usize,
    plaintext: *const u8,
    plaintext_len: usize,
    ciphertext: *const u8,
    ciphertext_len: usize,
}

type KeyNewFn = unsafe extern "C" fn(*const u8, usize) -> *mut c_void;
type KeyFreeFn = unsafe extern "C" fn(*mut c_void);
type CryptFn = unsafe extern "C" fn(
    *const c_void,
    *const u8,
    usize,
    *const u8,
    usize,
    *const u8,
    usize,
    *mut u8,
    usize,
    *mut usize,
) -> c_int;
type BlockFn = unsafe extern "C" fn(*const u8, usize, *const u8, *mut u8) -> c_int;
type DigestFn = unsafe extern "C" fn(*const u8, usize, *mut u8, usize, *mut usize) -> c_int;

#[repr(C)]
struct AeadV1 {
    name: *const c_char,
    key_len: u32,
    nonce_len: u32,
    tag_len: u32,
    key_new: Option<KeyNewFn>,
    key_free: Option<KeyFreeFn>,
    seal: Option<CryptFn>,
    open: Option<CryptFn>,
    block_len: u32,
    encrypt_block: Option<BlockFn>,
    kats: *const AeadKatV1,
    kat_count: usize,
}

#[repr(C)]
struct HashKatV1 {
    message: *const u8,
    message_len: usize,
    digest: *const u8,
    digest_len: usize,
}

#[repr(C)]
struct HashV1 {
    name: *const c_char,
    output_len: u32,
    block_len: u32,
    digest: Option<DigestFn>,
    kats: *const HashKatV1,
    kat_count: usize,
}

#[repr(C)]
struct SuiteV1 {
    name: *const c_char,
    code_point: u16,
    aead: *const c_char,
    hash: *const c_char,
    max_records_per_key: u64,
    max_forgeries: u64,
    security_bits: u32,
}

#[repr(C)]
struct PluginV1 {
    abi_version: u32,
    name: *const c_char,
    version: *const c_char,
    aeads: *const AeadV1,
    aead_count: usize,
    hashes: *const HashV1,
    hash_count: usize,
    suites: *const SuiteV1,
    suite_count: usize,
}

type EntryFn = unsafe extern "C" fn() -> *const PluginV1;

/// Loads the plugin at `path`. The library stays mapped for the life of the process.
pub fn load(path: &Path) -> Result<PluginDecl, PluginError> {
    let shown = path.display().to_string();
    // SAFETY: opening a library runs its initialisers; loading a plugin the operator named in
    // the config (and, when required, whose signature verified) is the point of this module.
    let library = unsafe { Library::new(path) }.map_err(|e| PluginError::Load {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let library = Arc::new(library);
    // SAFETY: the symbol's type is fixed by the ABI header (`const pqgate_plugin_v1 *(void)`).
    let entry: EntryFn = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|_| PluginError::MissingSymbol {
            path: shown.clone(),
            symbol: "pqgate_plugin_v1_entry",
        })?;
    // SAFETY: the entry function takes no arguments and returns a pointer to static data.
    let descriptor = unsafe { entry() };
    if descriptor.is_null() {
        return Err(declaration(&shown, "the entry function returned NULL"));
    }
    // SAFETY: the first field of every version of the descriptor is the u32 ABI version; it is
    // read alone before anything that depends on the layout.
    let version = unsafe { descriptor.cast::<u32>().read() };
    if version != ABI_VERSION {
        return Err(PluginError::AbiVersion {
            plugin: shown,
            found: version,
            expected: ABI_VERSION,
        });
    }
    // SAFETY: the version matched, so the pointer designates a static `pqgate_plugin_v1`.
    let d = unsafe { &*descriptor };
    let name = c_name(d.name, &shown, "plugin name")?;
    let plugin_version = c_name(d.version, &name, "plugin version")?;
    let mut decl = PluginDecl {
        name: name.clone(),
        version: plugin_version,
        origin: Origin::SharedLibrary(path.to_owned()),
        aeads: Vec::new(),
        hashes: Vec::new(),
        suites: Vec::new(),
    };
    for a in items(d.aeads, d.aead_count, &name, "aeads")? {
        decl.aeads.push(Arc::new(runtime_aead(a, &name, &library)?));
    }
    for h in items(d.hashes, d.hash_count, &name, "hashes")? {
        decl.hashes
            .push(Arc::new(runtime_hash(h, &name, &library)?));
    }
    for s in items(d.suites, d.suite_count, &name, "suites")? {
        decl.suites.push(suite(s, &name)?);
    }
    Ok(decl)
}

fn declaration(plugin: &str, what: impl Into<String>) -> PluginError {
    PluginError::Declaration {
        plugin: plugin.to_owned(),
        what: what.into(),
    }
}

/// A declared array as a slice, refusing NULL with a count and oversized counts.
fn items<'a, T>(
    ptr: *const T,
    count: usize,
    plugin: &str,
    what: &str,
) -> Result<&'a [T], PluginError> {
    if count == 0 {
        return Ok(&[]);
    }
    if count > MAX_ITEMS || ptr.is_null() {
        return Err(declaration(
            plugin,
            format!("{what}: {count} items at {ptr:p} (at most {MAX_ITEMS}, not NULL)"),
        ));
    }
    // SAFETY: non-null, count bounded; the ABI requires `count` valid static elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// Copies a declared byte string, refusing NULL with a length and oversized lengths.
fn bytes(ptr: *const u8, len: usize, plugin: &str, what: &str) -> Result<Vec<u8>, PluginError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if len > MAX_VECTOR_BYTES || ptr.is_null() {
        return Err(declaration(
            plugin,
            format!("{what}: {len} bytes at {ptr:p}"),
        ));
    }
    // SAFETY: non-null, length bounded; the ABI requires `len` valid static bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec())
}

/// Copies a declared array of known-answer vectors, refusing more than [`MAX_KATS`] and NULL
/// with a count.
fn vectors<K, T>(
    ptr: *const K,
    count: usize,
    at: &str,
    copy: impl Fn(&K) -> Result<T, PluginError>,
) -> Result<Vec<T>, PluginError> {
    if count > MAX_KATS {
        return Err(declaration(
            at,
            format!("{count} vectors (at most {MAX_KATS})"),
        ));
    }
    match count {
        0 => Ok(Vec::new()),
        n if ptr.is_null() => Err(declaration(at, format!("{n} vectors at NULL"))),
        // SAFETY: non-null, count bounded; the ABI requires `kat_count` valid static vectors.
        n => unsafe { std::slice::from_raw_parts(ptr, n) }
            .iter()
            .map(copy)
            .collect(),
    }
}

/// Reads a NUL-terminated ASCII name of at most [`MAX_NAME_LEN`] bytes.
fn c_name(ptr: *const c_char, plugin: &str, what: &str) -> Result<String, PluginError> {
    if ptr.is_null() {
        return Err(declaration(plugin, format!("{what} is NULL")));
    }
    let mut name = Vec::new();
    for i in 0..=MAX_NAME_LEN {
        // SAFETY: reads stop at the first NUL, which the ABI requires within 64 bytes.
        let c = unsafe { ptr.add(i).cast::<u8>().read() };
        if c == 0 {
            let ok = !name.is_empty() && name.iter().all(|b: &u8| b.is_ascii_graphic());
            return match ok {
                true => Ok(String::from_utf8_lossy(&name).into_owned()),
                false => Err(declaration(
                    plugin,
                    format!("{what} must be printable ASCII"),
                )),
            };
        }
        name.push(c);
    }
    Err(declaration(
        plugin,
        format!("{what} is longer than {MAX_NAME_LEN} bytes"),
    ))
}

fn runtime_aead(
    a: &AeadV1,
    plugin: &str,
    library: &Arc<Library>,
) -> Result<RuntimeAead, PluginError> {
    let name = c_name(a.name, plugin, "AEAD name")?;
    let at = format!("{plugin}/{name}");
    let sizes_ok = (1..=MAX_KEY_LEN).contains(&a.key_len)
        && (8..=32).contains(&a.nonce_len)
        && (12..=MAX_TAG_LEN).contains(&a.tag_len)
        && a.block_len <= MAX_BLOCK_LEN
        && (a.block_len == 0 || a.block_len >= 16);
    if !sizes_ok {
        return Err(declaration(
            &at,
            format!(
                "sizes out of range: key {} (1-{MAX_KEY_LEN}), nonce {} (8-32), tag {} (12-{MAX_TAG_LEN}), block {} (0 or 16-{MAX_BLOCK_LEN})",
                a.key_len, a.nonce_len, a.tag_len, a.block_len
            ),
        ));
    }
    let (Some(key_new), Some(key_free), Some(seal), Some(open)) =
        (a.key_new, a.key_free, a.seal, a.open)
    else {
        return Err(declaration(
            &at,
            "key_new, key_free, seal and open must not be NULL",
        ));
    };
    if a.block_len > 0 && a.encrypt_block.is_none() {
        return Err(declaration(
            &at,
            "block_len is set but encrypt_block is NULL",
        ));
    }
    let kats = vectors(a.kats, a.kat_count, &at, |k| {
        Ok(AeadKat {
            key: bytes(k.key, k.key_len, &at, "vector key")?,
            nonce: bytes(k.nonce, k.nonce_len, &at, "vector nonce")?,
            aad: bytes(k.aad, k.aad_len, &at, "vector aad")?,
            plaintext: bytes(k.plaintext, k.plaintext_len, &at, "vector plaintext")?,
            ciphertext: bytes(k.ciphertext, k.ciphertext_len, &at, "vector ciphertext")?,
        })
    })?;
    Ok(RuntimeAead {
        name,
        key_len: a.key_len as usize,
        nonce_len: a.nonce_len as usize,
        tag_len: a.tag_len as usize,
        block_len: a.block_len as usize,
        key_new,
        key_free,
        seal,
        open,
        encrypt_block: a.encrypt_block,
        kats,
        _library: library.clone(),
    })
}

fn runtime_hash(
    h: &HashV1,
    plugin: &str,
    library: &Arc<Library>,
) -> Result<RuntimeHash, PluginError> {
    let name = c_name(h.name, plugin, "hash name")?;
    let at = format!("{plugin}/{name}");
    if !(16..=MAX_HASH_LEN).contains(&h.output_len) || !(16..=256).contains(&h.block_len) {
        return Err(declaration(
            &at,
            format!(
                "sizes out of range: output {} (16-{MAX_HASH_LEN}), block {} (16-256)",
                h.output_len, h.block_len
            ),
        ));
    }
    let Some(digest) = h.digest else {
        return Err(declaration(&at, "digest must not be NULL"));
    };
    let kats = vectors(h.kats, h.kat_count, &at, |k| {
        Ok(HashKat {
            message: bytes(k.message, k.message_len, &at, "vector message")?,
            digest: bytes(k.digest, k.digest_len, &at, "vector digest")?,
        })
    })?;
    Ok(RuntimeHash {
        name,
        output_len: h.output_len as usize,
        block_len: h.block_len as usize,
        digest,
        kats,
        _library: library.clone(),
    })
}

fn suite(s: &SuiteV1, plugin: &str) -> Result<SuiteDecl, PluginError> {
    let name = c_name(s.name, plugin, "suite name")?;
    let at = format!("{plugin}/{name}");
    if s.max_records_per_key == 0 || !(112..=512).contains(&s.security_bits) {
        return Err(declaration(
            &at,
            "max_records_per_key must be > 0 and security_bits 112-512",
        ));
    }
    Ok(SuiteDecl {
        aead: c_name(s.aead, &at, "suite AEAD")?,
        hash: c_name(s.hash, &at, "suite hash")?,
        name,
        code_point: s.code_point,
        max_records_per_key: s.max_records_per_key,
        max_forgeries: s.max_forgeries,
        security_bits: u16::try_from(s.security_bits).unwrap_or(u16::MAX),
    })
}

/// An AEAD implemented by a loaded library.
pub struct RuntimeAead {
    name: String,
    key_len: usize,
    nonce_len: usize,
    tag_len: usize,
    block_len: usize,
    key_new: KeyNewFn,
    key_free: KeyFreeFn,
    seal: CryptFn,
    open: CryptFn,
    encrypt_block: Option<BlockFn>,
    kats: Vec<AeadKat>,
    _library: Arc<Library>,
}

impl std::fmt::Debug for RuntimeAead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeAead")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An expanded key owned by the plugin, freed through its `key_free`.
struct RuntimeKey {
    name: String,
    key: *mut c_void,
    tag_len: usize,
    nonce_len: usize,
    seal: CryptFn,
    open: CryptFn,
    key_free: KeyFreeFn,
    _library: Arc<Library>,
}

// SAFETY: the ABI requires key objects to be usable from several threads at once (read-only
// after key_new), and the pointer is only passed back to the plugin.
unsafe impl Send for RuntimeKey {}
// SAFETY: as for Send.
unsafe impl Sync for RuntimeKey {}

impl Drop for RuntimeKey {
    fn drop(&mut self) {
        // SAFETY: `key` came from this plugin's key_new and is freed exactly once.
        unsafe { (self.key_free)(self.key) }
    }
}

impl RuntimeKey {
    /// Calls seal or open with an output buffer of exactly `expected` bytes and checks the
    /// buffer contract on return.
    fn crypt(
        &self,
        f: CryptFn,
        nonce: &[u8],
        aad: &[u8],
        input: &[u8],
        expected: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if nonce.len() != self.nonce_len {
            return Err(PluginError::call(&self.name, "wrong nonce length"));
        }
        append_with(out, &[], expected, |buf| {
            let mut written = 0usize;
            // SAFETY: every pointer/length pair designates a live Rust buffer of that length;
            // the output has exactly `expected` writable bytes and the plugin must not write
            // more.
            let rc = unsafe {
                f(
                    self.key,
                    nonce.as_ptr(),
                    nonce.len(),
                    aad.as_ptr(),
                    aad.len(),
                    input.as_ptr(),
                    input.len(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut written,
                )
            };
            if rc != 0 {
                return Err(PluginError::call(&self.name, format!("returned {rc}")));
            }
            if written != expected {
                return Err(PluginError::call(
                    &self.name,
                    format!("buffer contract violated: wrote {written} bytes, {expected} expected"),
                ));
            }
            Ok(expected)
        })
    }
}

impl AeadKey for RuntimeKey {
    fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        self.crypt(
            self.seal,
            nonce,
            aad,
            plaintext,
            plaintext.len() + self.tag_len,
            out,
        )
    }

    fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let Some(plain_len) = sealed.len().checked_sub(self.tag_len) else {
            return Err(PluginError::call(&self.name, "input shorter than the tag"));
        };
        self.crypt(self.open, nonce, aad, sealed, plain_len, out)
    }
}

impl AeadAlgorithm for RuntimeAead {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn nonce_len(&self) -> usize {
        self.nonce_len
    }
    fn tag_len(&self) -> usize {
        self.tag_len
    }
    fn new_key(&self, key: &[u8]) -> Result<Box<dyn AeadKey>, PluginError> {
        if key.len() != self.key_len {
            return Err(PluginError::call(&self.name, "wrong key length"));
        }
        // SAFETY: key points to key_len readable bytes; the plugin copies what it needs.
        let handle = unsafe { (self.key_new)(key.as_ptr(), key.len()) };
        if handle.is_null() {
            return Err(PluginError::call(&self.name, "key_new returned NULL"));
        }
        Ok(Box::new(RuntimeKey {
            name: self.name.clone(),
            key: handle,
            tag_len: self.tag_len,
            nonce_len: self.nonce_len,
            seal: self.seal,
            open: self.open,
            key_free: self.key_free,
            _library: self._library.clone(),
        }))
    }
    fn block_len(&self) -> usize {
        self.block_len
    }
    fn encrypt_block(&self, key: &[u8], block: &[u8], out: &mut [u8]) -> Result<(), PluginError> {
        let Some(f) = self.encrypt_block else {
            return Err(PluginError::Unsupported(self.name.clone()));
        };
        if block.len() != self.block_len || out.len() != self.block_len || key.len() != self.key_len
        {
            return Err(PluginError::call(&self.name, "wrong block or key length"));
        }
        // SAFETY: key, block and out are live buffers of the declared lengths.
        let rc = unsafe { f(key.as_ptr(), key.len(), block.as_ptr(), out.as_mut_ptr()) };
        match rc {
            0 => Ok(()),
            rc => Err(PluginError::call(
                &self.name,
                format!("encrypt_block returned {rc}"),
            )),
        }
    }
    fn kats(&self) -> &[AeadKat] {
        &self.kats
    }
}

/// A hash implemented by a loaded library.
pub struct RuntimeHash {
    name: String,
    output_len: usize,
    block_len: usize,
    digest: DigestFn,
    kats: Vec<HashKat>,
    _library: Arc<Library>,
}

impl std::fmt::Debug for RuntimeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHash")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HashAlgorithm for RuntimeHash {
    fn name(&self) -> &str {
        &self.name
    }
    fn output_len(&self) -> usize {
        self.output_len
    }
    fn block_len(&self) -> usize {
        self.block_len
    }
    fn digest(&self, message: &[u8]) -> Result<Vec<u8>, PluginError> {
        let mut out = vec![0u8; self.output_len];
        let mut written = 0usize;
        // SAFETY: message and out are live buffers of the given lengths.
        let rc = unsafe {
            (self.digest)(
                message.as_ptr(),
                message.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut written,
            )
        };
        if rc != 0 {
            return Err(PluginError::call(
                &self.name,
                format!("digest returned {rc}"),
            ));
        }
        if written != self.output_len {
            return Err(PluginError::call(
                &self.name,
                format!(
                    "buffer contract violated: wrote {written} bytes, {} expected",
                    self.output_len
                ),
            ));
        }
        Ok(out)
    }
    fn kats(&self) -> &[HashKat] {
        &self.kats
    }
}
