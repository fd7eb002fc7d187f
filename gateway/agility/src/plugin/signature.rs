//! Detached signatures over plugin files: Ed25519 (RFC 8032) or ML-DSA-44/65/87 (FIPS 204),
//! the public key given as a DER SubjectPublicKeyInfo.

use aws_lc_rs::signature::{self, UnparsedPublicKey};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The signature algorithm a trusted key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Ed25519.
    Ed25519,
    /// ML-DSA (any parameter set aws-lc-rs accepts for this key).
    MlDsa,
}

/// Which kind of key `spki_der` is, if one we accept.
pub fn key_kind(spki_der: &[u8]) -> Option<KeyKind> {
    if spki_der.len() == 44 && spki_der.starts_with(&ED25519_SPKI_PREFIX) {
        return Some(KeyKind::Ed25519);
    }
    // ML-DSA OIDs 2.16.840.1.101.3.4.3.17-19 end in 0x03 0x11..0x13.
    let oid_prefix = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
    spki_der
        .windows(oid_prefix.len() + 1)
        .take(24)
        .any(|w| {
            w[..oid_prefix.len()] == oid_prefix && (0x11..=0x13).contains(&w[oid_prefix.len()])
        })
        .then_some(KeyKind::MlDsa)
}

/// True when `signature` over `message` verifies under the key `spki_der`.
pub fn verify_detached(message: &[u8], signature: &[u8], spki_der: &[u8]) -> bool {
    match key_kind(spki_der) {
        Some(KeyKind::Ed25519) => UnparsedPublicKey::new(&signature::ED25519, &spki_der[12..])
            .verify(message, signature)
            .is_ok(),
        Some(KeyKind::MlDsa) => [
            &signature::ML_DSA_44,
            &signature::ML_DSA_65,
            &signature::ML_DSA_87,
        ]
        .iter()
        .any(|alg| {
            UnparsedPublicKey::new(*alg, spki_der)
                .verify(message, signature)
                .is_ok()
        }),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;

    #[test]
    fn ed25519_signatures_verify_and_forgeries_do_not() {
        let pair = signature::Ed25519KeyPair::generate().unwrap();
        let spki = pair.public_key().as_der().unwrap();
        assert_eq!(key_kind(spki.as_ref()), Some(KeyKind::Ed25519));
        let sig = pair.sign(b"plugin bytes");
        assert!(verify_detached(
            b"plugin bytes",
            sig.as_ref(),
            spki.as_ref()
        ));
        assert!(!verify_detached(
            b"plugin bytez",
            sig.as_ref(),
            spki.as_ref()
        ));
    }

    #[test]
    fn ml_dsa_signatures_verify() {
        let alg = &signature::ML_DSA_65_SIGNING;
        let pair = signature::PqdsaKeyPair::generate(alg).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        assert_eq!(key_kind(spki.as_ref()), Some(KeyKind::MlDsa));
        let mut sig = vec![0; alg.signature_len()];
        let n = pair.sign(b"plugin bytes", &mut sig).unwrap();
        assert!(verify_detached(b"plugin bytes", &sig[..n], spki.as_ref()));
        assert!(!verify_detached(b"other", &sig[..n], spki.as_ref()));
    }
}
