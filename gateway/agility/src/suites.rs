//! The cipher suites pqgate can negotiate, as data: name, code point, TLS version and the
//! primitives whose self-tests they depend on.

use rustls::SupportedCipherSuite;
use rustls::crypto::aws_lc_rs::cipher_suite as cs;

use crate::selftest::names;

/// One cipher suite and what it is built from.
#[derive(Debug)]
pub struct SuiteInfo {
    /// IANA name (or the name a plugin declared).
    pub name: &'static str,
    /// Who implements it: `aws-lc-rs` or the plugin's name.
    pub provider: &'static str,
    /// The rustls implementation (aws-lc-rs).
    pub suite: SupportedCipherSuite,
    /// True for a TLS 1.2 suite.
    pub tls12: bool,
    /// Claimed security level in bits.
    pub security_bits: u16,
    /// Primitives whose self-tests must pass.
    pub requires: &'static [&'static str],
}

const AES128: &[&str] = &[names::AES_128_GCM, names::SHA_256, names::HKDF_SHA256];
const AES256: &[&str] = &[names::AES_256_GCM, names::SHA_384, names::HKDF_SHA384];
const CHACHA: &[&str] = &[names::CHACHA20_POLY1305, names::SHA_256, names::HKDF_SHA256];

/// Every suite, most preferred first within each TLS version.
pub static SUITES: &[SuiteInfo] = &[
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS13_AES_256_GCM_SHA384",
        suite: cs::TLS13_AES_256_GCM_SHA384,
        tls12: false,
        security_bits: 256,
        requires: AES256,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS13_AES_128_GCM_SHA256",
        suite: cs::TLS13_AES_128_GCM_SHA256,
        tls12: false,
        security_bits: 128,
        requires: AES128,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS13_CHACHA20_POLY1305_SHA256",
        suite: cs::TLS13_CHACHA20_POLY1305_SHA256,
        tls12: false,
        security_bits: 256,
        requires: CHACHA,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        suite: cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        tls12: true,
        security_bits: 256,
        requires: AES256,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        suite: cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        tls12: true,
        security_bits: 128,
        requires: AES128,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        tls12: true,
        security_bits: 256,
        requires: CHACHA,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        suite: cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        tls12: true,
        security_bits: 256,
        requires: AES256,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        suite: cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        tls12: true,
        security_bits: 128,
        requires: AES128,
    },
    SuiteInfo {
        provider: "aws-lc-rs",
        name: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        tls12: true,
        security_bits: 256,
        requires: CHACHA,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_rustls() {
        for s in SUITES {
            let is12 = s.suite.version() == &rustls::version::TLS12;
            assert_eq!(is12, s.tls12, "{}", s.name);
            assert_eq!(s.suite.suite().as_str(), Some(s.name), "{}", s.name);
        }
    }
}
