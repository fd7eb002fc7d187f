//! The run-time plugin: `#[repr(C)]` mirrors of `pqgate_plugin.h` (ABI v1), the static
//! descriptor, and the `extern "C"` functions it points at. Contract, as the header states it:
//! return [`PQGATE_OK`] or nonzero, never write past `out_cap`, always set `*out_len` (0 on
//! failure), keys are read-only after `key_new` (safe to share between threads), no pointer to a
//! caller buffer is kept. No panic crosses the boundary: every entry point runs under
//! `catch_unwind` and turns a panic into [`ERR_INTERNAL`].
//!
//! Buffers: `in` and `out` may be the same pointer (in place); any other overlap between the
//! output and an input is refused with [`ERR_ARGUMENT`] (pqgate itself passes disjoint buffers).

use core::ffi::{CStr, c_char, c_int, c_void};
use core::{ptr, slice};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::kat::{AeadVector, HashVector, SM3_KATS, SM4_GCM_KATS};
use crate::{Error, Sm4GcmKey};

/// `PQGATE_PLUGIN_ABI_VERSION`.
pub const PQGATE_PLUGIN_ABI_VERSION: u32 = 1;
/// `PQGATE_OK`.
pub const PQGATE_OK: c_int = 0;
/// This plugin's failure code for a bad argument (NULL pointer, wrong length, overlap). The ABI
/// only promises "nonzero"; these codes are for logs.
pub const ERR_ARGUMENT: c_int = 1;
/// Failure code: `out_cap` is too small; nothing was written.
pub const ERR_BUFFER: c_int = 2;
/// Failure code: the tag did not verify; nothing was written.
pub const ERR_AUTHENTICATION: c_int = 3;
/// Failure code: an internal error (a caught panic).
pub const ERR_INTERNAL: c_int = 4;

/// `pqgate_aead_kat_v1`.
#[repr(C)]
#[derive(Debug)]
pub struct AeadKatV1 {
    /// Key.
    pub key: *const u8,
    /// Key length.
    pub key_len: usize,
    /// Nonce.
    pub nonce: *const u8,
    /// Nonce length.
    pub nonce_len: usize,
    /// Associated data.
    pub aad: *const u8,
    /// Associated data length.
    pub aad_len: usize,
    /// Plaintext.
    pub plaintext: *const u8,
    /// Plaintext length.
    pub plaintext_len: usize,
    /// Ciphertext || tag.
    pub ciphertext: *const u8,
    /// Ciphertext length, tag included.
    pub ciphertext_len: usize,
}

/// `void *(*key_new)(const uint8_t *key, size_t key_len)`.
pub type KeyNewFn = unsafe extern "C" fn(key: *const u8, key_len: usize) -> *mut c_void;
/// `void (*key_free)(void *key)`.
pub type KeyFreeFn = unsafe extern "C" fn(key: *mut c_void);
/// `seal` and `open`.
pub type AeadFn = unsafe extern "C" fn(
    key: *const c_void,
    nonce: *const u8,
    nonce_len: usize,
    aad: *const u8,
    aad_len: usize,
    input: *const u8,
    in_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int;
/// `encrypt_block`.
pub type EncryptBlockFn =
    unsafe extern "C" fn(key: *const u8, key_len: usize, input: *const u8, out: *mut u8) -> c_int;
/// `digest`.
pub type DigestFn = unsafe extern "C" fn(
    message: *const u8,
    len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int;

/// `pqgate_aead_v1`. Function pointers are `Option` so a NULL from another plugin is
/// representable (same layout as a nullable C function pointer).
#[repr(C)]
#[derive(Debug)]
pub struct AeadV1 {
    /// NUL-terminated name.
    pub name: *const c_char,
    /// Key length.
    pub key_len: u32,
    /// Nonce length.
    pub nonce_len: u32,
    /// Tag length.
    pub tag_len: u32,
    /// Key expansion.
    pub key_new: Option<KeyNewFn>,
    /// Key release.
    pub key_free: Option<KeyFreeFn>,
    /// Seal.
    pub seal: Option<AeadFn>,
    /// Open.
    pub open: Option<AeadFn>,
    /// Header-protection block length (0 if none).
    pub block_len: u32,
    /// Header-protection block encryption.
    pub encrypt_block: Option<EncryptBlockFn>,
    /// Known-answer vectors.
    pub kats: *const AeadKatV1,
    /// Number of vectors.
    pub kat_count: usize,
}

/// `pqgate_hash_kat_v1`.
#[repr(C)]
#[derive(Debug)]
pub struct HashKatV1 {
    /// Message.
    pub message: *const u8,
    /// Message length.
    pub message_len: usize,
    /// Digest.
    pub digest: *const u8,
    /// Digest length.
    pub digest_len: usize,
}

/// `pqgate_hash_v1`.
#[repr(C)]
#[derive(Debug)]
pub struct HashV1 {
    /// NUL-terminated name.
    pub name: *const c_char,
    /// Digest length.
    pub output_len: u32,
    /// Compression-function block length.
    pub block_len: u32,
    /// One-shot digest.
    pub digest: Option<DigestFn>,
    /// Known-answer vectors.
    pub kats: *const HashKatV1,
    /// Number of vectors.
    pub kat_count: usize,
}

/// `pqgate_tls13_suite_v1`.
#[repr(C)]
#[derive(Debug)]
pub struct Tls13SuiteV1 {
    /// NUL-terminated suite name.
    pub name: *const c_char,
    /// TLS code point.
    pub code_point: u16,
    /// Name of an AEAD of this plugin.
    pub aead: *const c_char,
    /// Name of a hash of this plugin.
    pub hash: *const c_char,
    /// Confidentiality limit.
    pub max_records_per_key: u64,
    /// Integrity limit.
    pub max_forgeries: u64,
    /// Security level in bits.
    pub security_bits: u32,
}

/// `pqgate_plugin_v1`.
#[repr(C)]
#[derive(Debug)]
pub struct PluginV1 {
    /// [`PQGATE_PLUGIN_ABI_VERSION`].
    pub abi_version: u32,
    /// NUL-terminated plugin name.
    pub name: *const c_char,
    /// NUL-terminated plugin version.
    pub version: *const c_char,
    /// AEADs.
    pub aeads: *const AeadV1,
    /// Number of AEADs.
    pub aead_count: usize,
    /// Hashes.
    pub hashes: *const HashV1,
    /// Number of hashes.
    pub hash_count: usize,
    /// Suites.
    pub suites: *const Tls13SuiteV1,
    /// Number of suites.
    pub suite_count: usize,
}

// SAFETY: (this and the five below) the raw pointers in these descriptors point only at
// immutable `'static` data (literals, consts, statics) that is never written, so sharing them
// between threads is sound. Function pointers are Sync already.
unsafe impl Sync for AeadKatV1 {}
// SAFETY: see above.
unsafe impl Sync for AeadV1 {}
// SAFETY: see above.
unsafe impl Sync for HashKatV1 {}
// SAFETY: see above.
unsafe impl Sync for HashV1 {}
// SAFETY: see above.
unsafe impl Sync for Tls13SuiteV1 {}
// SAFETY: see above.
unsafe impl Sync for PluginV1 {}

const fn cstr(bytes: &'static [u8]) -> *const c_char {
    match CStr::from_bytes_with_nul(bytes) {
        Ok(s) => s.as_ptr(),
        Err(_) => panic!("name is not NUL-terminated"),
    }
}

const PLUGIN_NAME_C: *const c_char = cstr(b"pqgate-plugin-sm4\0");
const PLUGIN_VERSION_C: *const c_char = cstr(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes());
const AEAD_NAME_C: *const c_char = cstr(b"SM4-GCM\0");
const HASH_NAME_C: *const c_char = cstr(b"SM3\0");
const SUITE_NAME_C: *const c_char = cstr(b"TLS_SM4_GCM_SM3\0");

const fn aead_kats<const N: usize>(v: &[AeadVector; N]) -> [AeadKatV1; N] {
    let mut out = [const {
        AeadKatV1 {
            key: ptr::null(),
            key_len: 0,
            nonce: ptr::null(),
            nonce_len: 0,
            aad: ptr::null(),
            aad_len: 0,
            plaintext: ptr::null(),
            plaintext_len: 0,
            ciphertext: ptr::null(),
            ciphertext_len: 0,
        }
    }; N];
    let mut i = 0;
    while i < N {
        let k = &v[i];
        out[i] = AeadKatV1 {
            key: k.key.as_ptr(),
            key_len: k.key.len(),
            nonce: k.nonce.as_ptr(),
            nonce_len: k.nonce.len(),
            aad: k.aad.as_ptr(),
            aad_len: k.aad.len(),
            plaintext: k.plaintext.as_ptr(),
            plaintext_len: k.plaintext.len(),
            ciphertext: k.ciphertext.as_ptr(),
            ciphertext_len: k.ciphertext.len(),
        };
        i += 1;
    }
    out
}

const fn hash_kats<const N: usize>(v: &[HashVector; N]) -> [HashKatV1; N] {
    let mut out = [const {
        HashKatV1 {
            message: ptr::null(),
            message_len: 0,
            digest: ptr::null(),
            digest_len: 0,
        }
    }; N];
    let mut i = 0;
    while i < N {
        out[i] = HashKatV1 {
            message: v[i].message.as_ptr(),
            message_len: v[i].message.len(),
            digest: v[i].digest.as_ptr(),
            digest_len: v[i].digest.len(),
        };
        i += 1;
    }
    out
}

static AEAD_KATS: [AeadKatV1; SM4_GCM_KATS.len()] = aead_kats(&SM4_GCM_KATS);
static HASH_KATS: [HashKatV1; SM3_KATS.len()] = hash_kats(&SM3_KATS);

static AEADS: [AeadV1; 1] = [AeadV1 {
    name: AEAD_NAME_C,
    key_len: crate::KEY_LEN as u32,
    nonce_len: crate::NONCE_LEN as u32,
    tag_len: crate::TAG_LEN as u32,
    key_new: Some(sm4_gcm_key_new),
    key_free: Some(sm4_gcm_key_free),
    seal: Some(sm4_gcm_crypt::<false>),
    open: Some(sm4_gcm_crypt::<true>),
    block_len: crate::BLOCK_LEN as u32,
    encrypt_block: Some(sm4_encrypt_block),
    kats: AEAD_KATS.as_ptr(),
    kat_count: AEAD_KATS.len(),
}];

static HASHES: [HashV1; 1] = [HashV1 {
    name: HASH_NAME_C,
    output_len: crate::SM3_OUTPUT_LEN as u32,
    block_len: crate::SM3_BLOCK_LEN as u32,
    digest: Some(sm3_digest),
    kats: HASH_KATS.as_ptr(),
    kat_count: HASH_KATS.len(),
}];

static SUITES: [Tls13SuiteV1; 1] = [Tls13SuiteV1 {
    name: SUITE_NAME_C,
    code_point: crate::SUITE_CODE_POINT,
    aead: AEAD_NAME_C,
    hash: HASH_NAME_C,
    max_records_per_key: crate::MAX_RECORDS_PER_KEY,
    max_forgeries: crate::MAX_FORGERIES,
    security_bits: crate::SECURITY_BITS,
}];

static PLUGIN: PluginV1 = PluginV1 {
    abi_version: PQGATE_PLUGIN_ABI_VERSION,
    name: PLUGIN_NAME_C,
    version: PLUGIN_VERSION_C,
    aeads: AEADS.as_ptr(),
    aead_count: AEADS.len(),
    hashes: HASHES.as_ptr(),
    hash_count: HASHES.len(),
    suites: SUITES.as_ptr(),
    suite_count: SUITES.len(),
};

/// The one symbol pqgate looks up: the plugin's static descriptor.
#[unsafe(no_mangle)]
pub extern "C" fn pqgate_plugin_v1_entry() -> &'static PluginV1 {
    &PLUGIN
}

/// Runs `f`, turning a panic into `on_panic` so that no unwind crosses the C boundary.
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

fn code(e: Error) -> c_int {
    match e {
        Error::BufferTooSmall => ERR_BUFFER,
        Error::Authentication => ERR_AUTHENTICATION,
        _ => ERR_ARGUMENT,
    }
}

/// A caller's input buffer; `None` for NULL with a nonzero length.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must be valid for reads of `len` bytes, and the
/// bytes must not be written while the returned slice lives.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() || len > isize::MAX as usize {
        return None;
    }
    // SAFETY: non-NULL, length within isize::MAX, and the caller promises `len` readable bytes
    // that stay unchanged during the call (the header's buffer contract).
    Some(unsafe { slice::from_raw_parts(ptr, len) })
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte.
fn overlaps(a: *const u8, a_len: usize, b: *const u8, b_len: usize) -> bool {
    let (a, b) = (a as usize, b as usize);
    a_len != 0 && b_len != 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

/// Sets `*out_len` to 0 before anything else can fail, so a failure always reports 0 bytes.
///
/// # Safety
/// `out_len` must be NULL or valid for one `size_t` write.
unsafe fn reset_len(out_len: *mut usize) -> bool {
    if out_len.is_null() {
        return false;
    }
    // SAFETY: non-NULL and, per the contract, points at a writable size_t.
    unsafe { out_len.write(0) };
    true
}

/// The arguments shared by seal and open, checked.
struct AeadArgs<'a> {
    key: &'a Sm4GcmKey,
    nonce: &'a [u8],
    aad: &'a [u8],
}

/// # Safety
/// `key` is NULL or a live pointer from [`sm4_gcm_key_new`]; `nonce`/`aad` follow [`input`].
unsafe fn aead_args<'a>(
    key: *const c_void,
    nonce: *const u8,
    nonce_len: usize,
    aad: *const u8,
    aad_len: usize,
) -> Option<AeadArgs<'a>> {
    // SAFETY: a non-NULL key is a Box<Sm4GcmKey> from key_new that the caller has not freed;
    // it is only read.
    let key = unsafe { key.cast::<Sm4GcmKey>().as_ref() }?;
    // SAFETY: the caller's buffer contract, forwarded.
    let nonce = unsafe { input(nonce, nonce_len) }?;
    // SAFETY: as above.
    let aad = unsafe { input(aad, aad_len) }?;
    Some(AeadArgs { key, nonce, aad })
}

/// `key_new`: a `Box<Sm4GcmKey>` as an opaque pointer, or NULL for a bad key.
unsafe extern "C" fn sm4_gcm_key_new(key: *const u8, key_len: usize) -> *mut c_void {
    guard(ptr::null_mut(), || {
        // SAFETY: the caller passes `key_len` readable bytes at `key`.
        let Some(key) = (unsafe { input(key, key_len) }) else {
            return ptr::null_mut();
        };
        match Sm4GcmKey::new(key) {
            Ok(k) => Box::into_raw(Box::new(k)).cast(),
            Err(_) => ptr::null_mut(),
        }
    })
}

/// `key_free`: drops (and wipes) a key from [`sm4_gcm_key_new`]; NULL is a no-op.
unsafe extern "C" fn sm4_gcm_key_free(key: *mut c_void) {
    guard((), || {
        if !key.is_null() {
            // SAFETY: a non-NULL key came from Box::into_raw in key_new and is freed once.
            drop(unsafe { Box::from_raw(key.cast::<Sm4GcmKey>()) });
        }
    })
}

/// `seal` (`OPEN == false`: writes `in_len + 16` bytes, `ciphertext || tag`) and `open`
/// (`OPEN == true`: verifies `ciphertext || tag` and writes `in_len - 16` bytes; nothing on
/// failure). One body, so both directions check their arguments the same way.
unsafe extern "C" fn sm4_gcm_crypt<const OPEN: bool>(
    key: *const c_void,
    nonce: *const u8,
    nonce_len: usize,
    aad: *const u8,
    aad_len: usize,
    input_ptr: *const u8,
    in_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(ERR_INTERNAL, || {
        // SAFETY: out_len is NULL or writable, per the contract.
        if !unsafe { reset_len(out_len) } {
            return ERR_ARGUMENT;
        }
        let need = match OPEN {
            false => in_len.checked_add(crate::TAG_LEN),
            true => in_len.checked_sub(crate::TAG_LEN),
        };
        let Some(need) = need else {
            return ERR_ARGUMENT;
        };
        if out_cap < need {
            return ERR_BUFFER;
        }
        // A sealed output is never empty, so only `open` may get a NULL `out`.
        if (out.is_null() && need != 0)
            || overlaps(nonce, nonce_len, out, need)
            || overlaps(aad, aad_len, out, need)
        {
            return ERR_ARGUMENT;
        }
        // SAFETY: contract-valid pointers, and neither nonce nor aad overlaps `out`.
        let Some(args) = (unsafe { aead_args(key, nonce, nonce_len, aad, aad_len) }) else {
            return ERR_ARGUMENT;
        };
        let result = if ptr::eq(input_ptr, out) && need != 0 {
            // SAFETY: as the callee states.
            unsafe { crypt_in_place::<OPEN>(&args, out, in_len, need) }
        } else {
            if overlaps(input_ptr, in_len, out, need) {
                return ERR_ARGUMENT;
            }
            // SAFETY: the caller's buffer contract; disjoint from `out` (checked above).
            let Some(input) = (unsafe { input(input_ptr, in_len) }) else {
                return ERR_ARGUMENT;
            };
            let out: &mut [u8] = if need == 0 {
                &mut []
            } else {
                // SAFETY: `out` is non-NULL, writable for out_cap >= need bytes, and overlaps
                // no input slice alive here.
                unsafe { slice::from_raw_parts_mut(out, need) }
            };
            match OPEN {
                false => args.key.seal_into(args.nonce, args.aad, input, out),
                true => args.key.open_into(args.nonce, args.aad, input, out),
            }
        };
        // SAFETY: reset_len accepted `out_len`.
        unsafe { finish(result, out_len) }
    })
}

/// Seals or opens in place: `buf` holds the `in_len`-byte input, `need` bytes are the output.
///
/// # Safety
/// `buf` is non-NULL, readable and writable for `max(in_len, need)` bytes (the caller checked
/// `out_cap >= need`, and the input is `in_len` readable bytes at the same address), `need != 0`,
/// and no other reference to those bytes exists.
unsafe fn crypt_in_place<const OPEN: bool>(
    args: &AeadArgs<'_>,
    buf: *mut u8,
    in_len: usize,
    need: usize,
) -> Result<usize, Error> {
    if OPEN {
        // Copy the tag out first; `buf[..need]` is then the only live view.
        let mut tag = [0u8; crate::TAG_LEN];
        // SAFETY: `buf` is readable for in_len = need + 16 bytes; the tag region does not
        // overlap `tag`, a local.
        unsafe { ptr::copy_nonoverlapping(buf.add(need), tag.as_mut_ptr(), tag.len()) };
        // SAFETY: `buf` is writable for need bytes and holds the ciphertext; no other reference
        // to it exists.
        let body = unsafe { slice::from_raw_parts_mut(buf, need) };
        args.key
            .open_in_place_detached(args.nonce, args.aad, body, &tag)
            .map(|()| need)
    } else {
        // SAFETY: `buf` is writable for need bytes, the first in_len of which are the
        // plaintext; no other reference to them exists.
        let whole = unsafe { slice::from_raw_parts_mut(buf, need) };
        let (body, tag_out) = whole.split_at_mut(in_len);
        args.key
            .seal_in_place_detached(args.nonce, args.aad, body)
            .map(|tag| {
                tag_out.copy_from_slice(&tag);
                need
            })
    }
}

/// Reports `result`: the length on success, the failure code otherwise.
///
/// # Safety
/// `out_len` must be valid for one `size_t` write (checked by [`reset_len`]).
unsafe fn finish(result: Result<usize, Error>, out_len: *mut usize) -> c_int {
    match result {
        Ok(n) => {
            // SAFETY: the caller guarantees `out_len` is writable.
            unsafe { out_len.write(n) };
            PQGATE_OK
        }
        Err(e) => code(e),
    }
}

/// `encrypt_block`: raw SM4 of one 16-byte block (`in` and `out` may be the same block).
unsafe extern "C" fn sm4_encrypt_block(
    key: *const u8,
    key_len: usize,
    input_ptr: *const u8,
    out: *mut u8,
) -> c_int {
    guard(ERR_INTERNAL, || {
        if input_ptr.is_null() || out.is_null() {
            return ERR_ARGUMENT;
        }
        // SAFETY: the caller passes `key_len` readable bytes at `key`.
        let Some(key) = (unsafe { input(key, key_len) }) else {
            return ERR_ARGUMENT;
        };
        let mut block = [0u8; crate::BLOCK_LEN];
        // SAFETY: `input_ptr` is readable for block_len (16) bytes; `block` is a local.
        unsafe { ptr::copy_nonoverlapping(input_ptr, block.as_mut_ptr(), block.len()) };
        let mut result = [0u8; crate::BLOCK_LEN];
        if let Err(e) = crate::sm4_encrypt_block(key, &block, &mut result) {
            return code(e);
        }
        // SAFETY: `out` is writable for block_len (16) bytes; `result` is a local. Written only
        // after every read of the caller's buffers, so `in == out` is fine.
        unsafe { ptr::copy_nonoverlapping(result.as_ptr(), out, result.len()) };
        PQGATE_OK
    })
}

/// `digest`: SM3, writes 32 bytes.
unsafe extern "C" fn sm3_digest(
    message: *const u8,
    len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(ERR_INTERNAL, || {
        // SAFETY: out_len is NULL or writable, per the contract.
        if !unsafe { reset_len(out_len) } {
            return ERR_ARGUMENT;
        }
        if out_cap < crate::SM3_OUTPUT_LEN {
            return ERR_BUFFER;
        }
        if out.is_null() {
            return ERR_ARGUMENT;
        }
        // SAFETY: the caller passes `len` readable bytes at `message`.
        let Some(message) = (unsafe { input(message, len) }) else {
            return ERR_ARGUMENT;
        };
        let digest = crate::sm3(message);
        // SAFETY: `out` is writable for out_cap >= 32 bytes; `digest` is a local, and the
        // message slice is no longer used.
        unsafe { ptr::copy_nonoverlapping(digest.as_ptr(), out, digest.len()) };
        // SAFETY: reset_len accepted `out_len`.
        unsafe { finish(Ok(digest.len()), out_len) }
    })
}
