//! The registry: every algorithm pqgate knows with its properties and its status after the
//! power-on self-tests. Providers are assembled only from enabled algorithms: fail closed.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use serde::Serialize;

use crate::builtin::{self, KeyAgreement};
use crate::groups::{GroupInfo, KNOWN_GROUPS};
use crate::plugin::AeadAlgorithm;
use crate::provider::{AgilityError, ProviderSpec, assemble};
use crate::selftest::{self, SelfTestReport};
use crate::suites::{SUITES, SuiteInfo};

/// Whether an algorithm may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Its self-tests passed.
    Enabled,
    /// A self-test of it, or of a primitive it is built from, failed.
    DisabledBySelfTest,
}

/// One row of the inventory.
#[derive(Clone, Debug, Serialize)]
pub struct InventoryEntry {
    /// Name (IANA registry name for groups and suites).
    pub name: &'static str,
    /// `key-exchange`, `cipher-suite` or `primitive`.
    pub kind: &'static str,
    /// The implementation.
    pub provider: &'static str,
    /// IANA code point, where one exists.
    pub code_point: Option<u16>,
    /// Claimed security level in bits.
    pub security_bits: Option<u16>,
    /// Whether it resists a quantum adversary (key exchange only; symmetric primitives at 256
    /// bits are counted as resistant too).
    pub post_quantum: bool,
    /// Status.
    pub status: Status,
}

/// Algorithms and their self-test verdicts.
#[derive(Clone, Debug)]
pub struct Registry {
    report: SelfTestReport,
    aeads: Vec<Arc<dyn AeadAlgorithm>>,
}

impl Registry {
    /// Runs the power-on self-tests and builds the registry from their results.
    pub fn power_on() -> Self {
        Self::from_report(selftest::run())
    }

    /// A registry over a given report.
    pub fn from_report(report: SelfTestReport) -> Self {
        Self {
            report,
            aeads: builtin::aeads(),
        }
    }

    /// An enabled AEAD by registry name, behind the plugin interface.
    pub fn aead(&self, name: &str) -> Option<Arc<dyn AeadAlgorithm>> {
        self.aeads
            .iter()
            .find(|a| a.name() == name && self.report.passed(name))
            .cloned()
    }

    /// An enabled key agreement by registry name (X25519).
    pub fn key_agreement(&self, name: &str) -> Option<Arc<dyn KeyAgreement>> {
        (name == selftest::names::X25519 && self.report.passed(name))
            .then(|| Arc::new(builtin::X25519) as Arc<dyn KeyAgreement>)
    }

    /// The self-test results.
    pub fn report(&self) -> &SelfTestReport {
        &self.report
    }

    fn all_pass(&self, names: &[&str]) -> bool {
        names.iter().all(|n| self.report.passed(n))
    }

    /// Whether a group and everything it is built from passed.
    pub fn group_enabled(&self, g: &GroupInfo) -> bool {
        self.report.passed(g.name) && self.all_pass(g.requires)
    }

    /// Whether a suite's primitives passed.
    pub fn suite_enabled(&self, s: &SuiteInfo) -> bool {
        self.all_pass(s.requires)
    }

    /// A provider for `spec` from enabled algorithms only.
    pub fn provider(&self, spec: ProviderSpec) -> Result<Arc<CryptoProvider>, AgilityError> {
        assemble(spec, |g| self.group_enabled(g), |s| self.suite_enabled(s))
    }

    /// Every algorithm with its status.
    pub fn inventory(&self) -> Vec<InventoryEntry> {
        let status = |ok| {
            if ok {
                Status::Enabled
            } else {
                Status::DisabledBySelfTest
            }
        };
        let groups = KNOWN_GROUPS.iter().map(|g| InventoryEntry {
            name: g.name,
            kind: "key-exchange",
            provider: "aws-lc-rs",
            code_point: Some(g.code_point),
            security_bits: Some(g.security_bits),
            post_quantum: g.post_quantum,
            status: status(self.group_enabled(g)),
        });
        let suites = SUITES.iter().map(|s| InventoryEntry {
            name: s.name,
            kind: "cipher-suite",
            provider: "aws-lc-rs",
            code_point: Some(u16::from(s.suite.suite())),
            security_bits: Some(s.security_bits),
            post_quantum: s.security_bits >= 256,
            status: status(self.suite_enabled(s)),
        });
        let mut primitives: Vec<&'static str> = Vec::new();
        for r in &self.report.results {
            if !primitives.contains(&r.algorithm)
                && !KNOWN_GROUPS.iter().any(|g| g.name == r.algorithm)
            {
                primitives.push(r.algorithm);
            }
        }
        let primitives = primitives.into_iter().map(|name| InventoryEntry {
            name,
            kind: "primitive",
            provider: "aws-lc-rs",
            code_point: None,
            security_bits: None,
            post_quantum: name.starts_with("ML-"),
            status: status(self.report.passed(name)),
        });
        groups.chain(suites).chain(primitives).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::KxPolicy;
    use crate::selftest::{names, run_with_tamper};

    fn spec(policy: KxPolicy) -> ProviderSpec {
        ProviderSpec {
            policy,
            tls12: false,
        }
    }

    #[test]
    fn a_failed_aead_removes_its_suites_only() {
        let registry = Registry::from_report(run_with_tamper(Some(names::AES_128_GCM)));
        let provider = registry.provider(spec(KxPolicy::HybridRequired)).unwrap();
        let suites: Vec<_> = provider.cipher_suites.iter().map(|s| s.suite()).collect();
        assert!(!suites.contains(&rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(suites.contains(&rustls::CipherSuite::TLS13_AES_256_GCM_SHA384));
    }

    #[test]
    fn a_failed_x25519_disables_the_x25519_hybrid_but_not_the_p256_one() {
        let registry = Registry::from_report(run_with_tamper(Some(names::X25519)));
        let provider = registry.provider(spec(KxPolicy::HybridPreferred)).unwrap();
        let groups: Vec<u16> = provider.kx_groups.iter().map(|g| g.name().into()).collect();
        assert!(!groups.contains(&0x11ec) && !groups.contains(&0x001d));
        assert!(groups.contains(&0x11eb));
    }

    #[test]
    fn nothing_usable_left_refuses_rather_than_falls_back() {
        let mut report = selftest::run();
        for r in &mut report.results {
            if r.algorithm.starts_with("ML-KEM") {
                r.passed = false;
            }
        }
        let registry = Registry::from_report(report);
        assert!(matches!(
            registry.provider(spec(KxPolicy::HybridRequired)),
            Err(AgilityError::NoGroups(_))
        ));
        // hybrid-preferred still works, with classical groups only.
        let provider = registry.provider(spec(KxPolicy::HybridPreferred)).unwrap();
        assert!(
            provider
                .kx_groups
                .iter()
                .all(|g| u16::from(g.name()) < 0x100)
        );
        let inventory = registry.inventory();
        let x = inventory
            .iter()
            .find(|e| e.name == "X25519MLKEM768")
            .unwrap();
        assert_eq!(x.status, Status::DisabledBySelfTest);
    }
}
