//! Project Wycheproof vectors (AES-GCM, ChaCha20-Poly1305, X25519) run through the registry's
//! algorithm interface (`Registry::aead`, `Registry::key_agreement`), the same one the
//! self-tests and plugins use. The vectors ship inside the `wycheproof` crate: no network.
//!
//! Semantics per Wycheproof's `result`:
//! - AEAD `valid`: seal reproduces `ct || tag` and open returns the message.
//! - AEAD `invalid`: open refuses `ct || tag`.
//! - AEAD `acceptable` (none in the shipped sets; handled anyway): open may refuse, and when it
//!   does not it must return the message.
//! - X25519 `valid`: the shared secret matches.
//! - X25519 `invalid`: the key agreement errors.
//! - X25519 `acceptable`: an error or the expected secret, never another secret. Vectors flagged
//!   `ZeroSharedSecret` (low-order public keys) must error: aws-lc refuses an all-zero secret
//!   and the `KeyAgreement` contract promises exactly that.
//!
//! Groups the built-ins cannot express (AES-192, nonces other than 96 bits for a `valid`
//! vector, tags other than 128 bits) are skipped explicitly and counted; every count is printed
//! (`--nocapture`) and checked against a floor so the test cannot pass vacuously.

use std::fmt::Write as _;

use pqgate_agility::Registry;
use pqgate_agility::plugin::AeadAlgorithm;
use wycheproof::TestResult;

/// What happened to the vectors of one algorithm.
#[derive(Debug, Default)]
struct Tally {
    executed: usize,
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
    skipped_key_size: usize,
    skipped_nonce_size: usize,
    skipped_tag_size: usize,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, tc_id: usize, what: impl std::fmt::Display) {
        self.failures.push(format!("tcId {tc_id}: {what}"));
    }

    fn report(&self, name: &str) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{name}: executed {} (valid {}, invalid {}, acceptable accepted {}, acceptable \
             refused {}), skipped: key size {}, nonce size {}, tag size {}",
            self.executed,
            self.valid,
            self.invalid,
            self.acceptable_accepted,
            self.acceptable_refused,
            self.skipped_key_size,
            self.skipped_nonce_size,
            self.skipped_tag_size,
        );
        out
    }

    fn assert_clean(&self, name: &str) {
        assert!(
            self.failures.is_empty(),
            "{name}: {} Wycheproof vector(s) failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn registry() -> Registry {
    let registry = Registry::power_on();
    let failed: Vec<_> = registry.report().failures().collect();
    assert!(failed.is_empty(), "power-on self-tests failed: {failed:?}");
    registry
}

fn aead(registry: &Registry, name: &str) -> std::sync::Arc<dyn AeadAlgorithm> {
    registry
        .aead(name)
        .unwrap_or_else(|| panic!("registry has no enabled AEAD {name}"))
}

/// Runs the vectors of `set` whose key size matches `alg`; other key sizes are counted as skipped.
fn run_aead(alg: &dyn AeadAlgorithm, set: wycheproof::aead::TestName) -> Tally {
    let set = wycheproof::aead::TestSet::load(set).expect("Wycheproof AEAD set loads");
    let mut t = Tally::default();
    for group in &set.test_groups {
        let n = group.tests.len();
        if group.key_size != alg.key_len() * 8 {
            t.skipped_key_size += n;
            continue;
        }
        if group.tag_size != alg.tag_len() * 8 {
            t.skipped_tag_size += n;
            continue;
        }
        let nonce_ok = group.nonce_size == alg.nonce_len() * 8;
        for test in &group.tests {
            // A valid vector with another nonce size is outside the interface (96-bit nonces
            // only); an invalid one is still run: the interface must refuse it.
            if !nonce_ok && test.result != TestResult::Invalid {
                t.skipped_nonce_size += 1;
                continue;
            }
            t.executed += 1;
            let key = match alg.new_key(&test.key) {
                Ok(k) => k,
                Err(e) => {
                    t.fail(test.tc_id, format!("key rejected: {e}"));
                    continue;
                }
            };
            let mut sealed_expected = test.ct.to_vec();
            sealed_expected.extend_from_slice(&test.tag);
            let mut opened = Vec::new();
            let open = key.open(&test.nonce, &test.aad, &sealed_expected, &mut opened);
            match test.result {
                TestResult::Valid => {
                    t.valid += 1;
                    let mut sealed = Vec::new();
                    match key.seal(&test.nonce, &test.aad, &test.pt, &mut sealed) {
                        Ok(()) if sealed == sealed_expected => {}
                        Ok(()) => t.fail(test.tc_id, "seal produced another ct || tag"),
                        Err(e) => t.fail(test.tc_id, format!("seal failed: {e}")),
                    }
                    match open {
                        Ok(()) if opened == *test.pt => {}
                        Ok(()) => t.fail(test.tc_id, "open returned another plaintext"),
                        Err(e) => t.fail(test.tc_id, format!("open failed: {e}")),
                    }
                }
                TestResult::Invalid => {
                    t.invalid += 1;
                    if open.is_ok() {
                        t.fail(
                            test.tc_id,
                            format!("invalid vector opened ({})", test.comment),
                        );
                    }
                }
                TestResult::Acceptable => match open {
                    Ok(()) if opened == *test.pt => t.acceptable_accepted += 1,
                    Ok(()) => t.fail(test.tc_id, "acceptable vector opened to another plaintext"),
                    Err(_) => t.acceptable_refused += 1,
                },
            }
        }
    }
    t
}

#[test]
fn aes_gcm_vectors_pass_through_the_registry() {
    let registry = registry();
    for (name, floor) in [("AES-128-GCM", 60), ("AES-256-GCM", 60)] {
        let alg = aead(&registry, name);
        let t = run_aead(alg.as_ref(), wycheproof::aead::TestName::AesGcm);
        println!("{}", t.report(name));
        t.assert_clean(name);
        assert!(t.executed >= floor, "{}", t.report(name));
        assert!(t.valid >= 35 && t.invalid >= 25, "{}", t.report(name));
        // The other key sizes of the set and the other nonce sizes were seen and skipped.
        assert!(
            t.skipped_key_size > 0 && t.skipped_nonce_size > 0,
            "{}",
            t.report(name)
        );
    }
}

#[test]
fn chacha20_poly1305_vectors_pass_through_the_registry() {
    let registry = registry();
    let name = "ChaCha20-Poly1305";
    let alg = aead(&registry, name);
    let t = run_aead(alg.as_ref(), wycheproof::aead::TestName::ChaCha20Poly1305);
    println!("{}", t.report(name));
    t.assert_clean(name);
    assert!(t.executed >= 300, "{}", t.report(name));
    assert!(t.valid >= 250 && t.invalid >= 60, "{}", t.report(name));
}

#[test]
fn x25519_vectors_pass_through_the_registry() {
    let registry = registry();
    let kx = registry
        .key_agreement("X25519")
        .expect("registry has an enabled X25519");
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519)
        .expect("Wycheproof X25519 set loads");
    let mut t = Tally::default();
    let mut zero_secret_refused = 0;
    for group in &set.test_groups {
        assert_eq!(group.curve, wycheproof::MontgomeryCurve::X25519);
        for test in &group.tests {
            t.executed += 1;
            let got = kx.agree(&test.private_key, &test.public_key);
            let zero_secret = test
                .flags
                .contains(&wycheproof::xdh::TestFlag::ZeroSharedSecret);
            match test.result {
                TestResult::Valid => {
                    t.valid += 1;
                    match got {
                        Ok(s) if s == *test.shared_secret => {}
                        Ok(_) => t.fail(test.tc_id, "another shared secret"),
                        Err(e) => t.fail(test.tc_id, format!("refused: {e}")),
                    }
                }
                TestResult::Invalid => {
                    t.invalid += 1;
                    if got.is_ok() {
                        t.fail(
                            test.tc_id,
                            format!("invalid vector accepted ({})", test.comment),
                        );
                    }
                }
                TestResult::Acceptable if zero_secret => match got {
                    Err(_) => {
                        t.acceptable_refused += 1;
                        zero_secret_refused += 1;
                    }
                    Ok(_) => t.fail(test.tc_id, "an all-zero shared secret was returned"),
                },
                TestResult::Acceptable => match got {
                    Ok(s) if s == *test.shared_secret => t.acceptable_accepted += 1,
                    Ok(_) => t.fail(test.tc_id, "acceptable vector gave another secret"),
                    Err(_) => t.acceptable_refused += 1,
                },
            }
        }
    }
    let report = format!(
        "{}; all-zero secrets refused {zero_secret_refused}",
        t.report("X25519")
    );
    println!("{report}");
    t.assert_clean("X25519");
    assert!(t.executed >= 500, "{report}");
    assert!(t.valid >= 250, "{report}");
    assert!(zero_secret_refused >= 30, "{report}");
}
