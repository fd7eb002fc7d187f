//! The plugin through its C ABI, the way pqgate's loader sees it: the descriptor returned by
//! `pqgate_plugin_v1_entry`, its known-answer vectors, and the buffer contract of every function.

use std::ffi::{CStr, c_void};

use pqgate_plugin_sm4::abi::{
    AeadFn, AeadV1, ERR_ARGUMENT, ERR_AUTHENTICATION, ERR_BUFFER, HashV1, PQGATE_OK, PluginV1,
    pqgate_plugin_v1_entry,
};
use pqgate_plugin_sm4::kat::{SM4_BLOCK_KATS, SM4_GCM_KATS};
use pqgate_plugin_sm4::{self as sm4, Sm4GcmKey, TAG_LEN};

fn plugin() -> &'static PluginV1 {
    pqgate_plugin_v1_entry()
}

fn aead() -> &'static AeadV1 {
    assert_eq!(plugin().aead_count, 1);
    // SAFETY: the descriptor's array holds aead_count static entries.
    unsafe { &*plugin().aeads }
}

fn hash() -> &'static HashV1 {
    assert_eq!(plugin().hash_count, 1);
    // SAFETY: as above, hash_count entries.
    unsafe { &*plugin().hashes }
}

fn name(p: *const std::ffi::c_char) -> &'static str {
    // SAFETY: descriptor names are static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

/// # Safety
/// `p` points at `len` static bytes (or len is 0).
unsafe fn bytes(p: *const u8, len: usize) -> &'static [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(p, len) }
}

/// A key object from the ABI, freed on drop.
struct Key(*mut c_void);

impl Key {
    fn new(key: &[u8]) -> Option<Self> {
        // SAFETY: key_new reads key_len bytes of `key`.
        let k = unsafe { (aead().key_new.unwrap())(key.as_ptr(), key.len()) };
        (!k.is_null()).then_some(Key(k))
    }

    /// Calls seal (`open == false`) or open on `input` into `out[..cap]`.
    fn call(
        &self,
        open: bool,
        nonce: &[u8],
        aad: &[u8],
        input: &[u8],
        out: &mut [u8],
        cap: usize,
    ) -> (i32, usize) {
        assert!(cap <= out.len());
        let f = if open { aead().open } else { aead().seal }.unwrap();
        let mut out_len = usize::MAX;
        let raw = Raw {
            out_len: &raw mut out_len,
            ..Raw::new(self, nonce, aad, input, out.as_mut_ptr(), cap)
        };
        // SAFETY: every pointer/length pair describes a live buffer; out is writable for cap.
        let rc = unsafe { raw.call(f) };
        (rc, out_len)
    }
}

/// The arguments of one seal or open call, exactly as passed (NULLs, overlaps and wrong lengths
/// included), each buffer as its pointer/length pair, so a test can vary one of them.
#[derive(Clone, Copy)]
struct Raw {
    key: *const c_void,
    nonce: (*const u8, usize),
    aad: (*const u8, usize),
    input: (*const u8, usize),
    out: (*mut u8, usize),
    out_len: *mut usize,
}

impl Raw {
    /// A well-formed call on slices (`out_len` NULL until set).
    fn new(key: &Key, nonce: &[u8], aad: &[u8], input: &[u8], out: *mut u8, cap: usize) -> Self {
        Self {
            key: key.0,
            nonce: (nonce.as_ptr(), nonce.len()),
            aad: (aad.as_ptr(), aad.len()),
            input: (input.as_ptr(), input.len()),
            out: (out, cap),
            out_len: std::ptr::null_mut(),
        }
    }

    /// # Safety
    /// Every pointer is live for its length, or a NULL or overlap the plugin promises to refuse.
    unsafe fn call(self, f: AeadFn) -> i32 {
        let Self {
            key,
            nonce,
            aad,
            input,
            out,
            out_len,
        } = self;
        // SAFETY: the caller's promise.
        unsafe {
            f(
                key, nonce.0, nonce.1, aad.0, aad.1, input.0, input.1, out.0, out.1, out_len,
            )
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: self.0 came from key_new and is freed once.
        unsafe { (aead().key_free.unwrap())(self.0) }
    }
}

// SAFETY: the ABI promises keys are read-only after key_new and usable from several threads.
unsafe impl Send for Key {}
// SAFETY: as above.
unsafe impl Sync for Key {}

#[test]
fn descriptor_matches_the_header_and_rfc_8998() {
    let p = plugin();
    assert_eq!(p.abi_version, 1);
    assert_eq!(name(p.name), sm4::PLUGIN_NAME);
    assert_eq!(name(p.version), sm4::PLUGIN_VERSION);
    let a = aead();
    assert_eq!(name(a.name), "SM4-GCM");
    assert_eq!(
        (a.key_len, a.nonce_len, a.tag_len, a.block_len),
        (16, 12, 16, 16)
    );
    assert!(a.key_new.is_some() && a.key_free.is_some() && a.seal.is_some());
    assert!(a.open.is_some() && a.encrypt_block.is_some());
    assert_eq!(a.kat_count, SM4_GCM_KATS.len());
    let h = hash();
    assert_eq!(name(h.name), "SM3");
    assert_eq!((h.output_len, h.block_len), (32, 64));
    assert!(h.digest.is_some() && h.kat_count == 2);
    assert_eq!(p.suite_count, 1);
    // SAFETY: suite_count static entries.
    let s = unsafe { &*p.suites };
    assert_eq!(name(s.name), "TLS_SM4_GCM_SM3");
    assert_eq!(s.code_point, 0x00C6);
    assert_eq!((name(s.aead), name(s.hash)), ("SM4-GCM", "SM3"));
    assert_eq!(s.max_records_per_key, 1 << 23);
    assert_eq!(s.max_forgeries, 1 << 52);
    assert_eq!(s.security_bits, 128);
    assert!(
        std::ptr::eq(pqgate_plugin_v1_entry(), p),
        "one static descriptor"
    );
}

#[test]
fn declared_aead_vectors_pass_through_the_abi() {
    let a = aead();
    // SAFETY: kat_count static entries.
    let kats = unsafe { std::slice::from_raw_parts(a.kats, a.kat_count) };
    for kat in kats {
        // SAFETY: each pointer/length pair in a declared vector is static data.
        let (k, n, aad, pt, ct) = unsafe {
            (
                bytes(kat.key, kat.key_len),
                bytes(kat.nonce, kat.nonce_len),
                bytes(kat.aad, kat.aad_len),
                bytes(kat.plaintext, kat.plaintext_len),
                bytes(kat.ciphertext, kat.ciphertext_len),
            )
        };
        assert_eq!(ct, SM4_GCM_KATS[0].ciphertext, "the RFC 8998 A.1 vector");
        let key = Key::new(k).unwrap();
        let mut out = vec![0; ct.len()];
        assert_eq!(
            key.call(false, n, aad, pt, &mut out, ct.len()),
            (PQGATE_OK, ct.len())
        );
        assert_eq!(out, ct);
        let mut back = vec![0; pt.len()];
        assert_eq!(
            key.call(true, n, aad, ct, &mut back, pt.len()),
            (PQGATE_OK, pt.len())
        );
        assert_eq!(back, pt);
    }
}

#[test]
fn forged_tag_is_refused_and_nothing_is_written() {
    let v = SM4_GCM_KATS[0];
    let key = Key::new(v.key).unwrap();
    let mut forged = v.ciphertext.to_vec();
    *forged.last_mut().unwrap() ^= 0x01;
    let mut out = vec![0xEE; 128];
    assert_eq!(
        key.call(true, v.nonce, v.aad, &forged, &mut out, 128),
        (ERR_AUTHENTICATION, 0)
    );
    assert!(out.iter().all(|&b| b == 0xEE));
    forged = v.ciphertext.to_vec();
    forged[3] ^= 0x40;
    assert_eq!(
        key.call(true, v.nonce, v.aad, &forged, &mut out, 128),
        (ERR_AUTHENTICATION, 0)
    );
    assert!(out.iter().all(|&b| b == 0xEE));
}

#[test]
fn too_small_out_cap_fails_and_writes_nothing() {
    let v = SM4_GCM_KATS[0];
    let key = Key::new(v.key).unwrap();
    let sealed_len = v.ciphertext.len();
    let cases: [(&str, bool, &[u8], &[usize]); 2] = [
        (
            "seal",
            false,
            v.plaintext,
            &[0, 1, v.plaintext.len(), sealed_len - 1],
        ),
        ("open", true, v.ciphertext, &[0, v.plaintext.len() - 1]),
    ];
    for (what, open, input, caps) in cases {
        for &cap in caps {
            let mut out = vec![0xEE; sealed_len + 32];
            assert_eq!(
                key.call(open, v.nonce, v.aad, input, &mut out, cap),
                (ERR_BUFFER, 0)
            );
            assert!(
                out.iter().all(|&b| b == 0xEE),
                "{what} wrote with out_cap {cap}"
            );
        }
    }
}

#[test]
fn large_out_cap_writes_exactly_the_output() {
    let v = SM4_GCM_KATS[0];
    let key = Key::new(v.key).unwrap();
    let mut out = vec![0xEE; v.ciphertext.len() + 32];
    let cap = out.len();
    assert_eq!(
        key.call(false, v.nonce, v.aad, v.plaintext, &mut out, cap),
        (0, 80)
    );
    assert_eq!(&out[..80], v.ciphertext);
    assert!(out[80..].iter().all(|&b| b == 0xEE));
    let mut out = vec![0xEE; 100];
    assert_eq!(
        key.call(true, v.nonce, v.aad, v.ciphertext, &mut out, 100),
        (0, 64)
    );
    assert_eq!(&out[..64], v.plaintext);
    assert!(out[64..].iter().all(|&b| b == 0xEE));
}

#[test]
fn bad_arguments_are_refused_without_crashing() {
    let v = SM4_GCM_KATS[0];
    let a = aead();
    let null = std::ptr::null::<u8>();
    // SAFETY: (whole block) the pointers are live buffers or deliberately NULL; the plugin
    // promises to refuse NULLs and bad lengths.
    unsafe {
        assert!((a.key_new.unwrap())(v.key.as_ptr(), 15).is_null());
        assert!((a.key_new.unwrap())(v.key.as_ptr(), 17).is_null());
        assert!((a.key_new.unwrap())(std::ptr::null(), 16).is_null());
        (a.key_free.unwrap())(std::ptr::null_mut());

        let key = Key::new(v.key).unwrap();
        let mut out = [0u8; 128];
        let mut len = 7usize;
        let (seal, open) = (a.seal.unwrap(), a.open.unwrap());
        let good = Raw {
            out_len: &raw mut len,
            ..Raw::new(&key, v.nonce, v.aad, v.plaintext, out.as_mut_ptr(), 128)
        };
        // NULL out_len.
        let rc = Raw {
            out_len: std::ptr::null_mut(),
            ..good
        }
        .call(seal);
        assert_ne!(rc, PQGATE_OK);
        let refused = [
            (
                "NULL key",
                seal,
                Raw {
                    key: std::ptr::null(),
                    ..good
                },
            ),
            (
                "NULL out",
                seal,
                Raw {
                    out: (std::ptr::null_mut(), 128),
                    ..good
                },
            ),
            (
                "NULL aad with a nonzero length",
                seal,
                Raw {
                    aad: (null, 20),
                    ..good
                },
            ),
            (
                "NULL input with a nonzero length",
                seal,
                Raw {
                    input: (null, 64),
                    ..good
                },
            ),
            (
                "wrong nonce length",
                seal,
                Raw {
                    nonce: (v.nonce.as_ptr(), 11),
                    ..good
                },
            ),
            (
                "sealed input shorter than the tag",
                open,
                Raw {
                    input: (v.ciphertext.as_ptr(), TAG_LEN - 1),
                    ..good
                },
            ),
        ];
        for (what, f, raw) in refused {
            len = 7;
            let rc = raw.call(f);
            assert_eq!((rc, len), (ERR_ARGUMENT, 0), "{what}");
        }
        // Empty input with NULL pointers is a valid empty message.
        let empty = Raw {
            aad: (null, 0),
            input: (null, 0),
            ..good
        };
        let rc = empty.call(seal);
        assert_eq!((rc, len), (PQGATE_OK, TAG_LEN));
        let tag = out[..TAG_LEN].to_vec();
        let rc = Raw {
            input: (tag.as_ptr(), TAG_LEN),
            out: (std::ptr::null_mut(), 0),
            ..empty
        }
        .call(open);
        assert_eq!((rc, len), (PQGATE_OK, 0));
    }
}

#[test]
fn in_place_is_supported_and_partial_overlap_refused() {
    let v = SM4_GCM_KATS[0];
    let key = Key::new(v.key).unwrap();
    let (seal, open) = (aead().seal.unwrap(), aead().open.unwrap());
    let mut buf = vec![0u8; 80];
    buf[..64].copy_from_slice(v.plaintext);
    let mut len = 0;
    let p = buf.as_mut_ptr();
    let in_place = Raw {
        input: (p, 64),
        out_len: &raw mut len,
        ..Raw::new(&key, v.nonce, v.aad, v.plaintext, p, 80)
    };
    // SAFETY: in == out, buffer of 80 bytes with a 64-byte message.
    let rc = unsafe { in_place.call(seal) };
    assert_eq!((rc, len), (PQGATE_OK, 80));
    assert_eq!(buf, v.ciphertext);
    // SAFETY: as above, 80 sealed bytes opened in place.
    let rc = unsafe {
        Raw {
            input: (p, 80),
            ..in_place
        }
        .call(open)
    };
    assert_eq!((rc, len), (PQGATE_OK, 64));
    assert_eq!(&buf[..64], v.plaintext);

    let mut buf = vec![0u8; 96];
    let p = buf.as_mut_ptr();
    let disjoint = Raw {
        out_len: &raw mut len,
        ..Raw::new(&key, v.nonce, v.aad, v.plaintext, p, 96)
    };
    // SAFETY: input at p+8, output at p: a partial overlap, which the plugin must refuse
    // before touching either.
    let rc = unsafe {
        Raw {
            // SAFETY: p + 8 is inside the 96-byte buffer.
            input: (p.add(8), 64),
            out: (p, 88),
            ..disjoint
        }
        .call(seal)
    };
    assert_eq!((rc, len), (ERR_ARGUMENT, 0));
    // AAD inside the output.
    // SAFETY: as above; p + 4 is inside the buffer.
    let rc = unsafe {
        Raw {
            aad: (p.add(4), 20),
            ..disjoint
        }
        .call(seal)
    };
    assert_eq!((rc, len), (ERR_ARGUMENT, 0));
}

#[test]
fn encrypt_block_reproduces_gbt_32907() {
    let f = aead().encrypt_block.unwrap();
    for v in SM4_BLOCK_KATS {
        let mut out = [0u8; 16];
        // SAFETY: 16-byte key, 16-byte blocks.
        let rc = unsafe { f(v.key.as_ptr(), 16, v.plaintext.as_ptr(), out.as_mut_ptr()) };
        assert_eq!(rc, PQGATE_OK);
        assert_eq!(out, v.ciphertext);
        let mut same = [0u8; 16];
        same.copy_from_slice(v.plaintext);
        // SAFETY: in == out is allowed for one block.
        let rc = unsafe { f(v.key.as_ptr(), 16, same.as_ptr(), same.as_mut_ptr()) };
        assert_eq!((rc, same.as_slice()), (PQGATE_OK, v.ciphertext));
        // SAFETY: a short key length is refused before anything is read past it.
        let rc = unsafe { f(v.key.as_ptr(), 15, v.plaintext.as_ptr(), out.as_mut_ptr()) };
        assert_ne!(rc, PQGATE_OK);
        // SAFETY: NULL block pointers are refused.
        let rc = unsafe { f(v.key.as_ptr(), 16, std::ptr::null(), out.as_mut_ptr()) };
        assert_ne!(rc, PQGATE_OK);
    }
}

#[test]
fn declared_hash_vectors_pass_and_small_out_cap_fails() {
    let h = hash();
    let digest = h.digest.unwrap();
    // SAFETY: kat_count static entries.
    let kats = unsafe { std::slice::from_raw_parts(h.kats, h.kat_count) };
    for kat in kats {
        // SAFETY: static vector data.
        let (m, d) = unsafe {
            (
                bytes(kat.message, kat.message_len),
                bytes(kat.digest, kat.digest_len),
            )
        };
        let mut out = [0xEEu8; 40];
        let mut len = 0;
        // SAFETY: live buffers; out writable for 40 bytes.
        let rc = unsafe { digest(m.as_ptr(), m.len(), out.as_mut_ptr(), 40, &mut len) };
        assert_eq!((rc, len), (PQGATE_OK, 32));
        assert_eq!(&out[..32], d);
        assert!(out[32..].iter().all(|&b| b == 0xEE));
        let mut out = [0xEEu8; 40];
        // SAFETY: as above, with a 31-byte capacity.
        let rc = unsafe { digest(m.as_ptr(), m.len(), out.as_mut_ptr(), 31, &mut len) };
        assert_eq!((rc, len), (ERR_BUFFER, 0));
        assert!(out.iter().all(|&b| b == 0xEE));
    }
}

#[test]
fn abi_and_rust_api_agree() {
    let key_bytes: Vec<u8> = (0u8..16)
        .map(|i| i.wrapping_mul(17).wrapping_add(3))
        .collect();
    let rust = Sm4GcmKey::new(&key_bytes).unwrap();
    let abi = Key::new(&key_bytes).unwrap();
    let nonce = [9u8; 12];
    for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 1400, 16384] {
        let msg: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let aad = &msg[..len.min(13)];
        let expected = rust.seal(&nonce, aad, &msg).unwrap();
        let mut out = vec![0; len + TAG_LEN];
        assert_eq!(
            abi.call(false, &nonce, aad, &msg, &mut out, len + TAG_LEN),
            (0, len + 16)
        );
        assert_eq!(out, expected, "length {len}");
        let mut back = vec![0; len];
        assert_eq!(abi.call(true, &nonce, aad, &out, &mut back, len), (0, len));
        assert_eq!(back, msg);
    }
}

#[test]
fn one_key_serves_several_threads() {
    let v = SM4_GCM_KATS[0];
    let key = Key::new(v.key).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    let mut out = [0u8; 80];
                    assert_eq!(
                        key.call(false, v.nonce, v.aad, v.plaintext, &mut out, 80),
                        (0, 80)
                    );
                    assert_eq!(out.as_slice(), v.ciphertext);
                }
            });
        }
    });
}
