//! The Rust API against the published vectors, plus the error paths.

use super::*;
use crate::kat::{SM3_KATS, SM4_BLOCK_KATS, SM4_GCM_KATS};

#[test]
fn sm4_gcm_rfc8998_vector_seals_and_opens() {
    for v in SM4_GCM_KATS {
        assert_eq!(
            sm4_gcm_seal(v.key, v.nonce, v.aad, v.plaintext).unwrap(),
            v.ciphertext,
            "{}",
            v.source
        );
        assert_eq!(
            sm4_gcm_open(v.key, v.nonce, v.aad, v.ciphertext).unwrap(),
            v.plaintext
        );
    }
}

#[test]
fn sm3_specification_vectors() {
    for v in SM3_KATS {
        assert_eq!(sm3(v.message), v.digest, "{}", v.source);
    }
}

#[test]
fn sm4_block_vector() {
    for v in SM4_BLOCK_KATS {
        let mut out = [0u8; BLOCK_LEN];
        sm4_encrypt_block(v.key, v.plaintext, &mut out).unwrap();
        assert_eq!(out, v.ciphertext, "{}", v.source);
    }
    let mut out = [0u8; BLOCK_LEN];
    assert_eq!(
        sm4_encrypt_block(&[0; 15], &[0; 16], &mut out),
        Err(Error::KeyLength)
    );
    assert_eq!(
        sm4_encrypt_block(&[0; 16], &[0; 15], &mut out),
        Err(Error::BlockLength)
    );
    assert_eq!(
        sm4_encrypt_block(&[0; 16], &[0; 16], &mut out[..15]),
        Err(Error::BufferTooSmall)
    );
}

#[test]
fn forged_tag_or_ciphertext_or_aad_is_refused() {
    let v = SM4_GCM_KATS[0];
    let key = Sm4GcmKey::new(v.key).unwrap();
    for i in [0, v.plaintext.len(), v.ciphertext.len() - 1] {
        let mut forged = v.ciphertext.to_vec();
        forged[i] ^= 0x80;
        assert_eq!(
            key.open(v.nonce, v.aad, &forged),
            Err(Error::Authentication)
        );
    }
    assert_eq!(
        key.open(v.nonce, b"other aad", v.ciphertext),
        Err(Error::Authentication)
    );
    let mut other_nonce = v.nonce.to_vec();
    other_nonce[0] ^= 1;
    assert_eq!(
        key.open(&other_nonce, v.aad, v.ciphertext),
        Err(Error::Authentication)
    );
}

#[test]
fn failed_open_writes_nothing() {
    let v = SM4_GCM_KATS[0];
    let key = Sm4GcmKey::new(v.key).unwrap();
    let mut forged = v.ciphertext.to_vec();
    *forged.last_mut().unwrap() ^= 1;
    let mut out = [0xEEu8; 64];
    assert_eq!(
        key.open_into(v.nonce, v.aad, &forged, &mut out),
        Err(Error::Authentication)
    );
    assert!(out.iter().all(|&b| b == 0xEE));

    let mut buf = forged[..64].to_vec();
    assert_eq!(
        key.open_in_place_detached(v.nonce, v.aad, &mut buf, &forged[64..]),
        Err(Error::Authentication)
    );
    assert_eq!(buf, &forged[..64]);
}

#[test]
fn short_buffers_and_bad_lengths_are_errors() {
    let v = SM4_GCM_KATS[0];
    let key = Sm4GcmKey::new(v.key).unwrap();
    let mut out = vec![0xEEu8; v.ciphertext.len() - 1];
    assert_eq!(
        key.seal_into(v.nonce, v.aad, v.plaintext, &mut out),
        Err(Error::BufferTooSmall)
    );
    assert!(out.iter().all(|&b| b == 0xEE));
    let mut out = vec![0xEEu8; v.plaintext.len() - 1];
    assert_eq!(
        key.open_into(v.nonce, v.aad, v.ciphertext, &mut out),
        Err(Error::BufferTooSmall)
    );
    assert!(out.iter().all(|&b| b == 0xEE));

    assert_eq!(Sm4GcmKey::new(&[0; 15]).unwrap_err(), Error::KeyLength);
    assert_eq!(Sm4GcmKey::new(&[0; 32]).unwrap_err(), Error::KeyLength);
    assert_eq!(
        key.seal(&[0; 16], b"", b"x").unwrap_err(),
        Error::NonceLength
    );
    assert_eq!(
        key.open(v.nonce, b"", &[0; TAG_LEN - 1]).unwrap_err(),
        Error::InputTooShort
    );
}

#[test]
fn in_place_matches_out_of_place() {
    let v = SM4_GCM_KATS[0];
    let key = Sm4GcmKey::new(v.key).unwrap();
    let mut buf = v.plaintext.to_vec();
    let tag = key
        .seal_in_place_detached(v.nonce, v.aad, &mut buf)
        .unwrap();
    assert_eq!(buf, &v.ciphertext[..64]);
    assert_eq!(tag, v.ciphertext[64..]);
    key.open_in_place_detached(v.nonce, v.aad, &mut buf, &tag)
        .unwrap();
    assert_eq!(buf, v.plaintext);
}

#[test]
fn empty_message_round_trips() {
    let key = Sm4GcmKey::new(&[7; KEY_LEN]).unwrap();
    let sealed = key.seal(&[1; NONCE_LEN], b"", b"").unwrap();
    assert_eq!(sealed.len(), TAG_LEN);
    assert_eq!(key.open(&[1; NONCE_LEN], b"", &sealed).unwrap(), b"");
}
