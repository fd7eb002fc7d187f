//! Key-encapsulation mechanisms by name, for the tunnel PSK derivation: ML-KEM from aws-lc-rs,
//! and Classic McEliece 460896 and HQC-128 from pqcrypto (PQClean), which aws-lc-rs lacks. Each
//! passes a pairwise-consistency test on first use (McEliece key generation is too slow to run at
//! every start); `pqgate crypto selftest` runs them all.

use std::sync::Mutex;

use aws_lc_rs::kem as awskem;
use pqcrypto_traits::kem::{Ciphertext as _, PublicKey as _, SecretKey as _, SharedSecret as _};
use zeroize::Zeroizing;

/// Key material, wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

use crate::plugin::PluginError;

/// A KEM key pair; the secret half is wiped on drop.
pub struct KeyPair {
    /// Public (encapsulation) key.
    pub public: Vec<u8>,
    /// Secret (decapsulation) key.
    pub secret: Secret,
}

/// One encapsulation: the ciphertext to send and the shared secret (wiped on drop).
pub struct Encapsulated {
    /// Ciphertext.
    pub ciphertext: Vec<u8>,
    /// Shared secret.
    pub shared: Secret,
}

/// A KEM.
pub trait Kem: Send + Sync {
    /// Registry name.
    fn name(&self) -> &'static str;
    /// Public key length in bytes.
    fn public_key_len(&self) -> usize;
    /// Ciphertext length in bytes.
    fn ciphertext_len(&self) -> usize;
    /// Generates a key pair.
    fn keypair(&self) -> Result<KeyPair, PluginError>;
    /// Encapsulates to `public`.
    fn encapsulate(&self, public: &[u8]) -> Result<Encapsulated, PluginError>;
    /// Decapsulates `ciphertext` with `secret`.
    fn decapsulate(&self, secret: &[u8], ciphertext: &[u8]) -> Result<Secret, PluginError>;
    /// Whether a malformed ciphertext yields a pseudo-random secret (true) rather than an
    /// error (HQC's PQClean code rejects explicitly).
    fn implicit_rejection(&self) -> bool {
        true
    }
}

/// Every KEM name, for the inventory.
pub const KEM_NAMES: &[&str] = &[
    "ML-KEM-768",
    "ML-KEM-1024",
    "Classic-McEliece-460896",
    "HQC-128",
];

/// A KEM by name.
pub fn by_name(name: &str) -> Option<&'static dyn Kem> {
    match name {
        "ML-KEM-768" => Some(&MlKem768),
        "ML-KEM-1024" => Some(&MlKem1024),
        "Classic-McEliece-460896" => Some(&McEliece460896),
        "HQC-128" => Some(&Hqc128),
        _ => None,
    }
}

/// Runs the pairwise-consistency test: a fresh key pair, an encapsulation, a decapsulation, the
/// same secret; and a different ciphertext must not give it.
pub fn pairwise_test(kem: &dyn Kem) -> Result<(), PluginError> {
    let fail = |what: &str| PluginError::call(kem.name(), what.to_owned());
    let pair = kem.keypair()?;
    if pair.public.len() != kem.public_key_len() {
        return Err(fail("public key length differs from the declared one"));
    }
    let enc = kem.encapsulate(&pair.public)?;
    if enc.ciphertext.len() != kem.ciphertext_len() {
        return Err(fail("ciphertext length differs from the declared one"));
    }
    let got = kem.decapsulate(&pair.secret, &enc.ciphertext)?;
    if got.as_slice() != enc.shared.as_slice() || got.iter().all(|&b| b == 0) {
        return Err(fail(
            "decapsulation did not recover the encapsulated secret",
        ));
    }
    if !kem.implicit_rejection() {
        return Ok(());
    }
    let mut tampered = enc.ciphertext.clone();
    tampered[0] ^= 1;
    // Implicit rejection: a tampered ciphertext yields some other (pseudo-random) secret.
    if let Ok(other) = kem.decapsulate(&pair.secret, &tampered)
        && other.as_slice() == enc.shared.as_slice()
    {
        return Err(fail(
            "a tampered ciphertext decapsulated to the same secret",
        ));
    }
    Ok(())
}

/// Results of first-use tests, by KEM name.
static TESTED: Mutex<Vec<(&'static str, bool)>> = Mutex::new(Vec::new());

/// The KEM `name`, after its pairwise test passed (run once per process, on first use).
pub fn checked(name: &str) -> Result<&'static dyn Kem, PluginError> {
    let kem = by_name(name).ok_or_else(|| PluginError::Unsupported(name.to_owned()))?;
    let mut tested = TESTED
        .lock()
        .map_err(|_| PluginError::call(name, "self-test state poisoned"))?;
    let passed = match tested.iter().find(|(n, _)| *n == kem.name()) {
        Some((_, passed)) => *passed,
        None => {
            let passed = pairwise_test(kem).is_ok();
            tested.push((kem.name(), passed));
            passed
        }
    };
    if passed {
        Ok(kem)
    } else {
        Err(PluginError::call(
            name,
            "disabled: pairwise self-test failed",
        ))
    }
}

/// The first-use verdict for `name`, if it has been tested in this process.
pub fn tested(name: &str) -> Option<bool> {
    TESTED
        .lock()
        .ok()?
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
}

struct MlKem768;
struct MlKem1024;

fn aws_keypair(
    alg: &'static awskem::Algorithm<awskem::AlgorithmId>,
    name: &str,
) -> Result<KeyPair, PluginError> {
    let fail = |w: &str| PluginError::call(name, w.to_owned());
    let dk = awskem::DecapsulationKey::generate(alg).map_err(|_| fail("keygen failed"))?;
    let ek = dk.encapsulation_key().map_err(|_| fail("keygen failed"))?;
    let public = ek
        .key_bytes()
        .map_err(|_| fail("keygen failed"))?
        .as_ref()
        .to_vec();
    let secret = dk
        .key_bytes()
        .map_err(|_| fail("keygen failed"))?
        .as_ref()
        .to_vec();
    Ok(KeyPair {
        public,
        secret: Zeroizing::new(secret),
    })
}

fn aws_encapsulate(
    alg: &'static awskem::Algorithm<awskem::AlgorithmId>,
    name: &str,
    public: &[u8],
) -> Result<Encapsulated, PluginError> {
    let fail = |w: &str| PluginError::call(name, w.to_owned());
    let ek = awskem::EncapsulationKey::new(alg, public).map_err(|_| fail("public key rejected"))?;
    let (ct, ss) = ek.encapsulate().map_err(|_| fail("encapsulation failed"))?;
    Ok(Encapsulated {
        ciphertext: ct.as_ref().to_vec(),
        shared: Zeroizing::new(ss.as_ref().to_vec()),
    })
}

fn aws_decapsulate(
    alg: &'static awskem::Algorithm<awskem::AlgorithmId>,
    name: &str,
    secret: &[u8],
    ciphertext: &[u8],
) -> Result<Secret, PluginError> {
    let fail = |w: &str| PluginError::call(name, w.to_owned());
    let dk = awskem::DecapsulationKey::new(alg, secret).map_err(|_| fail("secret key rejected"))?;
    let ss = dk
        .decapsulate(awskem::Ciphertext::from(ciphertext))
        .map_err(|_| fail("decapsulation failed"))?;
    Ok(Zeroizing::new(ss.as_ref().to_vec()))
}

macro_rules! aws_kem {
    ($ty:ident, $name:literal, $alg:expr, $pk:expr, $ct:expr) => {
        impl Kem for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn public_key_len(&self) -> usize {
                $pk
            }
            fn ciphertext_len(&self) -> usize {
                $ct
            }
            fn keypair(&self) -> Result<KeyPair, PluginError> {
                aws_keypair(&$alg, $name)
            }
            fn encapsulate(&self, public: &[u8]) -> Result<Encapsulated, PluginError> {
                aws_encapsulate(&$alg, $name, public)
            }
            fn decapsulate(&self, secret: &[u8], ciphertext: &[u8]) -> Result<Secret, PluginError> {
                aws_decapsulate(&$alg, $name, secret, ciphertext)
            }
        }
    };
}
// FIPS 203 table 3: encapsulation key and ciphertext sizes.
aws_kem!(MlKem768, "ML-KEM-768", awskem::ML_KEM_768, 1184, 1088);
aws_kem!(MlKem1024, "ML-KEM-1024", awskem::ML_KEM_1024, 1568, 1568);

macro_rules! pqclean_kem {
    ($ty:ident, $name:literal, $m:path, $implicit:expr) => {
        struct $ty;
        impl Kem for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn public_key_len(&self) -> usize {
                {
                    use $m as m;
                    m::public_key_bytes()
                }
            }
            fn ciphertext_len(&self) -> usize {
                {
                    use $m as m;
                    m::ciphertext_bytes()
                }
            }
            fn keypair(&self) -> Result<KeyPair, PluginError> {
                use $m as m;
                let (pk, sk) = m::keypair();
                Ok(KeyPair {
                    public: pk.as_bytes().to_vec(),
                    secret: Zeroizing::new(sk.as_bytes().to_vec()),
                })
            }
            fn encapsulate(&self, public: &[u8]) -> Result<Encapsulated, PluginError> {
                use $m as m;
                let pk = m::PublicKey::from_bytes(public)
                    .map_err(|_| PluginError::call($name, "public key rejected"))?;
                let (ss, ct) = m::encapsulate(&pk);
                Ok(Encapsulated {
                    ciphertext: ct.as_bytes().to_vec(),
                    shared: Zeroizing::new(ss.as_bytes().to_vec()),
                })
            }
            fn decapsulate(&self, secret: &[u8], ciphertext: &[u8]) -> Result<Secret, PluginError> {
                use $m as m;
                let sk = m::SecretKey::from_bytes(secret)
                    .map_err(|_| PluginError::call($name, "secret key rejected"))?;
                let ct = m::Ciphertext::from_bytes(ciphertext)
                    .map_err(|_| PluginError::call($name, "ciphertext rejected"))?;
                // pqcrypto asserts on PQClean's return code, and HQC rejects a malformed
                // ciphertext explicitly: a peer's ciphertext must not panic the process.
                std::panic::catch_unwind(|| m::decapsulate(&ct, &sk))
                    .map(|ss| Zeroizing::new(ss.as_bytes().to_vec()))
                    .map_err(|_| PluginError::call($name, "ciphertext rejected"))
            }
            fn implicit_rejection(&self) -> bool {
                $implicit
            }
        }
    };
}
pqclean_kem!(
    McEliece460896Inner,
    "Classic-McEliece-460896",
    pqcrypto_classicmceliece::mceliece460896,
    true
);
pqclean_kem!(Hqc128, "HQC-128", pqcrypto_hqc::hqc128, false);

/// Stack for Classic McEliece calls: PQClean's implementation keeps its large matrices on the
/// stack, beyond the 2 MiB of an ordinary thread.
const MCELIECE_STACK_BYTES: usize = 64 << 20;

/// Classic McEliece 460896, each call on a thread with [`MCELIECE_STACK_BYTES`] of stack.
struct McEliece460896;

fn on_big_stack<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, PluginError> {
    let name = "Classic-McEliece-460896";
    std::thread::Builder::new()
        .name("mceliece".into())
        .stack_size(MCELIECE_STACK_BYTES)
        .spawn(f)
        .map_err(|e| PluginError::call(name, format!("cannot start its thread: {e}")))?
        .join()
        .map_err(|_| PluginError::call(name, "panicked"))?
}

impl Kem for McEliece460896 {
    fn name(&self) -> &'static str {
        McEliece460896Inner.name()
    }
    fn public_key_len(&self) -> usize {
        McEliece460896Inner.public_key_len()
    }
    fn ciphertext_len(&self) -> usize {
        McEliece460896Inner.ciphertext_len()
    }
    fn keypair(&self) -> Result<KeyPair, PluginError> {
        on_big_stack(|| McEliece460896Inner.keypair())
    }
    fn encapsulate(&self, public: &[u8]) -> Result<Encapsulated, PluginError> {
        let public = public.to_vec();
        on_big_stack(move || McEliece460896Inner.encapsulate(&public))
    }
    fn decapsulate(&self, secret: &[u8], ciphertext: &[u8]) -> Result<Secret, PluginError> {
        let (secret, ciphertext) = (Zeroizing::new(secret.to_vec()), ciphertext.to_vec());
        on_big_stack(move || McEliece460896Inner.decapsulate(&secret, &ciphertext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kem_passes_its_pairwise_test() {
        for name in KEM_NAMES {
            let kem = by_name(name).unwrap();
            pairwise_test(kem).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn checked_caches_the_verdict() {
        assert!(checked("HQC-128").is_ok());
        assert_eq!(tested("HQC-128"), Some(true));
        assert!(checked("no-such-kem").is_err());
    }
}
