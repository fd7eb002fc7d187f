//! Power-on self-tests: known-answer tests against published vectors (GCM specification, RFC
//! 8439, RFC 7748, FIPS 180-4, RFC 5869) and pairwise-consistency tests for KEMs, key-exchange
//! groups and signature schemes. An algorithm whose test fails is disabled by [`crate::Registry`].

use aws_lc_rs::{aead, agreement, digest, hkdf, kem, signature};
use rustls::crypto::SupportedKxGroup;

use crate::groups::KNOWN_GROUPS;

/// Primitive names used by self-tests and by the suite/group requirements in the registry.
pub mod names {
    /// AES-128 in GCM mode.
    pub const AES_128_GCM: &str = "AES-128-GCM";
    /// AES-256 in GCM mode.
    pub const AES_256_GCM: &str = "AES-256-GCM";
    /// ChaCha20-Poly1305 (RFC 8439).
    pub const CHACHA20_POLY1305: &str = "ChaCha20-Poly1305";
    /// SHA-256.
    pub const SHA_256: &str = "SHA-256";
    /// SHA-384.
    pub const SHA_384: &str = "SHA-384";
    /// HKDF with SHA-256.
    pub const HKDF_SHA256: &str = "HKDF-SHA256";
    /// HKDF with SHA-384.
    pub const HKDF_SHA384: &str = "HKDF-SHA384";
    /// X25519 Diffie-Hellman.
    pub const X25519: &str = "X25519";
    /// ML-KEM-768 (FIPS 203).
    pub const ML_KEM_768: &str = "ML-KEM-768";
    /// ML-KEM-1024 (FIPS 203).
    pub const ML_KEM_1024: &str = "ML-KEM-1024";
    /// ECDSA over P-256 with SHA-256.
    pub const ECDSA_P256: &str = "ECDSA-P256-SHA256";
    /// ECDSA over P-384 with SHA-384.
    pub const ECDSA_P384: &str = "ECDSA-P384-SHA384";
    /// Ed25519.
    pub const ED25519: &str = "Ed25519";
    /// ML-DSA-44 (FIPS 204).
    pub const ML_DSA_44: &str = "ML-DSA-44";
    /// ML-DSA-65 (FIPS 204).
    pub const ML_DSA_65: &str = "ML-DSA-65";
    /// ML-DSA-87 (FIPS 204).
    pub const ML_DSA_87: &str = "ML-DSA-87";
}

/// One test's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    /// The algorithm tested (a primitive name or a key-exchange group name).
    pub algorithm: &'static str,
    /// What was tested, with the vector's source.
    pub test: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed, when known.
    pub detail: Option<String>,
}

/// All results of one run.
#[derive(Clone, Debug, Default)]
pub struct SelfTestReport {
    /// Every test, in the order run.
    pub results: Vec<TestResult>,
}

impl SelfTestReport {
    /// True when `algorithm` has at least one test and every one passed.
    pub fn passed(&self, algorithm: &str) -> bool {
        let mut tests = self
            .results
            .iter()
            .filter(|r| r.algorithm == algorithm)
            .peekable();
        tests.peek().is_some() && tests.all(|r| r.passed)
    }

    /// The failed tests.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

/// Runs every self-test.
pub fn run() -> SelfTestReport {
    run_with_tamper(None)
}

/// Runs every self-test, corrupting the expected answer of the tests of `tamper` (an algorithm
/// name): how the fail-closed path is exercised in tests.
pub fn run_with_tamper(tamper: Option<&str>) -> SelfTestReport {
    let mut report = SelfTestReport::default();
    let mut record = |algorithm: &'static str, test: &'static str, passed: bool| {
        let passed = passed && tamper != Some(algorithm);
        report.results.push(TestResult {
            algorithm,
            test,
            passed,
            detail: (!passed).then(|| "known answer or consistency check failed".to_owned()),
        });
    };
    for kat in AEAD_KATS {
        record(kat.name, kat.source, aead_kat(kat));
    }
    for kat in DIGEST_KATS {
        record(kat.name, kat.source, digest_kat(kat));
    }
    record(
        names::HKDF_SHA256,
        "KAT RFC 5869 A.1",
        hkdf_kat(hkdf::HKDF_SHA256, HKDF_SHA256_OKM),
    );
    record(
        names::HKDF_SHA384,
        "KAT RFC 5869 A.1 inputs, OKM from OpenSSL 3",
        hkdf_kat(hkdf::HKDF_SHA384, HKDF_SHA384_OKM),
    );
    record(names::X25519, "KAT RFC 7748 6.1", x25519_kat());
    record(
        names::ML_KEM_768,
        "pairwise encaps/decaps",
        kem_pairwise(&kem::ML_KEM_768),
    );
    record(
        names::ML_KEM_1024,
        "pairwise encaps/decaps",
        kem_pairwise(&kem::ML_KEM_1024),
    );
    record(
        names::ECDSA_P256,
        "pairwise sign/verify",
        ecdsa_pairwise(true),
    );
    record(
        names::ECDSA_P384,
        "pairwise sign/verify",
        ecdsa_pairwise(false),
    );
    record(names::ED25519, "pairwise sign/verify", ed25519_pairwise());
    let mldsa = [
        (
            names::ML_DSA_44,
            &signature::ML_DSA_44_SIGNING,
            &signature::ML_DSA_44,
        ),
        (
            names::ML_DSA_65,
            &signature::ML_DSA_65_SIGNING,
            &signature::ML_DSA_65,
        ),
        (
            names::ML_DSA_87,
            &signature::ML_DSA_87_SIGNING,
            &signature::ML_DSA_87,
        ),
    ];
    for (name, signing, verifying) in mldsa {
        record(
            name,
            "pairwise sign/verify",
            mldsa_pairwise(signing, verifying),
        );
    }
    for group in KNOWN_GROUPS {
        record(
            group.name,
            "pairwise key exchange (rustls)",
            group_pairwise(group.group),
        );
    }
    report
}

struct AeadKat {
    name: &'static str,
    source: &'static str,
    alg: &'static aead::Algorithm,
    key: &'static str,
    nonce: &'static str,
    aad: &'static str,
    plaintext: &'static [u8],
    sealed: &'static str,
}

static AEAD_KATS: &[AeadKat] = &[
    AeadKat {
        name: names::AES_128_GCM,
        source: "KAT GCM specification test case 2",
        alg: &aead::AES_128_GCM,
        key: "00000000000000000000000000000000",
        nonce: "000000000000000000000000",
        aad: "",
        plaintext: &[0; 16],
        sealed: "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf",
    },
    AeadKat {
        name: names::AES_256_GCM,
        source: "KAT GCM specification test case 14",
        alg: &aead::AES_256_GCM,
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        nonce: "000000000000000000000000",
        aad: "",
        plaintext: &[0; 16],
        sealed: "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
    },
    AeadKat {
        name: names::CHACHA20_POLY1305,
        source: "KAT RFC 8439 2.8.2",
        alg: &aead::CHACHA20_POLY1305,
        key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
        nonce: "070000004041424344454647",
        aad: "50515253c0c1c2c3c4c5c6c7",
        plaintext: b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
                     for the future, sunscreen would be it.",
        sealed: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282\
                 fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab3\
                 24e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b61161ae10b594f09e26a7e\
                 902ecbd0600691",
    },
];

struct DigestKat {
    name: &'static str,
    source: &'static str,
    alg: &'static digest::Algorithm,
    expected: &'static str,
}

static DIGEST_KATS: &[DigestKat] = &[
    DigestKat {
        name: names::SHA_256,
        source: "KAT FIPS 180-4 \"abc\"",
        alg: &digest::SHA256,
        expected: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    },
    DigestKat {
        name: names::SHA_384,
        source: "KAT FIPS 180-4 \"abc\"",
        alg: &digest::SHA384,
        expected: "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                   8086072ba1e7cc2358baeca134c825a7",
    },
];

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| {
            let n = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            n(p[0]) << 4 | n(p[1])
        })
        .collect()
}

fn aead_kat(kat: &AeadKat) -> bool {
    let Ok(unbound) = aead::UnboundKey::new(kat.alg, &unhex(kat.key)) else {
        return false;
    };
    let key = aead::LessSafeKey::new(unbound);
    let nonce_bytes = unhex(kat.nonce);
    let aad = unhex(kat.aad);
    let expected = unhex(kat.sealed);
    let mut buf = kat.plaintext.to_vec();
    let Ok(nonce) = aead::Nonce::try_assume_unique_for_key(&nonce_bytes) else {
        return false;
    };
    if key
        .seal_in_place_append_tag(nonce, aead::Aad::from(&aad), &mut buf)
        .is_err()
        || buf != expected
    {
        return false;
    }
    // Open it back, and refuse a forged tag.
    let Ok(nonce) = aead::Nonce::try_assume_unique_for_key(&nonce_bytes) else {
        return false;
    };
    let opened = key
        .open_in_place(nonce, aead::Aad::from(&aad), &mut buf)
        .is_ok_and(|pt| pt == kat.plaintext);
    let mut forged = expected.clone();
    if let Some(last) = forged.last_mut() {
        *last ^= 1;
    }
    let Ok(nonce) = aead::Nonce::try_assume_unique_for_key(&nonce_bytes) else {
        return false;
    };
    let forged_refused = key
        .open_in_place(nonce, aead::Aad::from(&aad), &mut forged)
        .is_err();
    opened && forged_refused
}

fn digest_kat(kat: &DigestKat) -> bool {
    digest::digest(kat.alg, b"abc").as_ref() == unhex(kat.expected)
}

/// RFC 5869 A.1 output (HKDF-SHA256, IKM 0x0b x 22, salt 0x00..0x0c, info 0xf0..0xf9, L 42).
const HKDF_SHA256_OKM: &str =
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
/// The same inputs with SHA-384 (RFC 5869 has no SHA-384 case), computed with OpenSSL 3.
const HKDF_SHA384_OKM: &str =
    "9b5097a86038b805309076a44b3a9f38063e25b516dcbf369f394cfab43685f748b6457763e4f0204fc5";

fn hkdf_kat(alg: hkdf::Algorithm, okm_hex: &str) -> bool {
    let salt = hkdf::Salt::new(alg, &unhex("000102030405060708090a0b0c"));
    let prk = salt.extract(&[0x0b; 22]);
    let info = unhex("f0f1f2f3f4f5f6f7f8f9");
    let info_refs = [info.as_slice()];
    let expected = unhex(okm_hex);
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let mut okm = vec![0u8; expected.len()];
    prk.expand(&info_refs, Len(expected.len()))
        .and_then(|o| o.fill(&mut okm))
        .is_ok()
        && okm == expected
}

fn x25519_kat() -> bool {
    let alice = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob_public = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let expected = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    let Ok(private) = agreement::PrivateKey::from_private_key(&agreement::X25519, &alice) else {
        return false;
    };
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, &bob_public);
    agreement::agree(&private, peer, (), |secret| {
        Ok(secret == expected.as_slice())
    })
    .unwrap_or(false)
}

fn kem_pairwise(alg: &'static kem::Algorithm<kem::AlgorithmId>) -> bool {
    let Ok(decaps) = kem::DecapsulationKey::generate(alg) else {
        return false;
    };
    let Ok(encaps) = decaps.encapsulation_key() else {
        return false;
    };
    let Ok((ciphertext, sent)) = encaps.encapsulate() else {
        return false;
    };
    decaps
        .decapsulate(ciphertext)
        .is_ok_and(|got| got.as_ref() == sent.as_ref())
}

const SIGNED_MESSAGE: &[u8] = b"pqgate power-on self-test";

fn verify(alg: &'static dyn signature::VerificationAlgorithm, public: &[u8], sig: &[u8]) -> bool {
    let key = signature::UnparsedPublicKey::new(alg, public);
    let good = key.verify(SIGNED_MESSAGE, sig).is_ok();
    let bad = key.verify(b"another message", sig).is_err();
    good && bad
}

fn ecdsa_pairwise(p256: bool) -> bool {
    use signature::KeyPair;
    let (sign_alg, verify_alg): (_, &'static dyn signature::VerificationAlgorithm) = if p256 {
        (
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &signature::ECDSA_P256_SHA256_ASN1,
        )
    } else {
        (
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &signature::ECDSA_P384_SHA384_ASN1,
        )
    };
    let Ok(pair) = signature::EcdsaKeyPair::generate(sign_alg) else {
        return false;
    };
    let rng = aws_lc_rs::rand::SystemRandom::new();
    pair.sign(&rng, SIGNED_MESSAGE)
        .is_ok_and(|sig| verify(verify_alg, pair.public_key().as_ref(), sig.as_ref()))
}

fn ed25519_pairwise() -> bool {
    use signature::KeyPair;
    let Ok(pair) = signature::Ed25519KeyPair::generate() else {
        return false;
    };
    let sig = pair.sign(SIGNED_MESSAGE);
    verify(
        &signature::ED25519,
        pair.public_key().as_ref(),
        sig.as_ref(),
    )
}

fn mldsa_pairwise(
    alg: &'static signature::PqdsaSigningAlgorithm,
    verifying: &'static signature::PqdsaVerificationAlgorithm,
) -> bool {
    use aws_lc_rs::encoding::AsDer;
    use signature::KeyPair;
    let Ok(pair) = signature::PqdsaKeyPair::generate(alg) else {
        return false;
    };
    let mut sig = vec![0u8; alg.signature_len()];
    let Ok(len) = pair.sign(SIGNED_MESSAGE, &mut sig) else {
        return false;
    };
    let Ok(public) = pair.public_key().as_der() else {
        return false;
    };
    verify(verifying, public.as_ref(), &sig[..len])
}

/// Both sides of a key exchange through rustls's own interface must agree.
fn group_pairwise(group: &'static dyn SupportedKxGroup) -> bool {
    let Ok(client) = group.start() else {
        return false;
    };
    let client_share = client.pub_key().to_vec();
    let Ok(server) = group.start_and_complete(&client_share) else {
        return false;
    };
    let server_secret = server.secret.secret_bytes().to_vec();
    client
        .complete(&server.pub_key)
        .is_ok_and(|s| s.secret_bytes() == server_secret.as_slice() && !server_secret.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_self_test_passes_on_a_healthy_build() {
        let report = run();
        let failed: Vec<_> = report.failures().collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert!(report.passed(names::CHACHA20_POLY1305));
        assert!(report.passed("X25519MLKEM768"));
        assert!(!report.passed("no-such-algorithm"));
    }

    #[test]
    fn tampering_fails_exactly_that_algorithm() {
        let report = run_with_tamper(Some(names::AES_128_GCM));
        let failed: Vec<_> = report.failures().map(|r| r.algorithm).collect();
        assert_eq!(failed, [names::AES_128_GCM]);
    }
}
