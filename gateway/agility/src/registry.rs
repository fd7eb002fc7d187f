//! The registry: every algorithm pqgate knows with its properties and its status after the
//! power-on self-tests. Providers are assembled only from enabled algorithms: fail closed.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use serde::Serialize;

use crate::builtin::{self, KeyAgreement};
use crate::groups::{GroupInfo, KNOWN_GROUPS};
use crate::plugin::{
    AeadAlgorithm, HashAlgorithm, Origin, PluginDecl, PluginError, SuiteDecl, check_aead,
    check_hash,
};
use crate::profile::{DEFAULT_PROFILE, Profile, builtin_profile};
use crate::provider::{AgilityError, ProviderSpec, assemble};
use crate::selftest::{self, SelfTestReport, TestResult};
use crate::suites::{SUITES, SuiteInfo};

/// Post-quantum KEMs and signatures, and symmetric primitives with 256-bit keys or 384-bit
/// digests (Grover's search halves their strength to 128 bits at most).
fn primitive_resists_quantum(name: &str) -> bool {
    use crate::selftest::names;
    name.starts_with("ML-")
        || [
            names::AES_256_GCM,
            names::CHACHA20_POLY1305,
            names::SHA_384,
            names::HKDF_SHA384,
        ]
        .contains(&name)
}

/// Plugin names and suites live as long as the process (plugins load once, at start).
fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn plugin_suite(
    plugin: &str,
    decl: &SuiteDecl,
    aead: Arc<dyn AeadAlgorithm>,
    hash: Arc<dyn HashAlgorithm>,
) -> &'static SuiteInfo {
    let requires: &'static [&'static str] =
        Box::leak(vec![leak_str(aead.name()), leak_str(hash.name())].into_boxed_slice());
    let name = leak_str(&decl.name);
    crate::groups::register_suite_label(decl.code_point, name);
    Box::leak(Box::new(SuiteInfo {
        name,
        provider: leak_str(plugin),
        suite: crate::plugin::tls::tls13_suite(decl, aead, hash),
        tls12: false,
        security_bits: decl.security_bits,
        requires,
    }))
}

/// Whether an algorithm may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Its self-tests passed.
    Enabled,
    /// A self-test of it, or of a primitive it is built from, failed.
    DisabledBySelfTest,
    /// Tested on first use (slow key generation), not yet used in this process.
    PendingFirstUse,
    /// Passed its tests, but no listener or connector's profile and policy admit it.
    DisabledByPolicy,
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

/// What became of one plugin.
#[derive(Clone, Debug, Serialize)]
pub struct PluginStatus {
    /// Plugin name (or its file when it could not be read).
    pub name: String,
    /// `compiled-in` or the library path.
    pub origin: String,
    /// Its algorithms and suites that passed and are enabled.
    pub enabled: Vec<String>,
    /// Every problem: a refused declaration, a failed vector; empty when all is well.
    pub errors: Vec<String>,
}

/// Algorithms and their self-test verdicts.
#[derive(Clone, Debug)]
pub struct Registry {
    report: SelfTestReport,
    aeads: Vec<Arc<dyn AeadAlgorithm>>,
    suites: Vec<&'static SuiteInfo>,
    plugins: Vec<PluginStatus>,
}

impl Registry {
    /// Runs the power-on self-tests and builds the registry from their results.
    pub fn power_on() -> Self {
        Self::power_on_with(Vec::new())
    }

    /// Power-on with the compiled-in plugins plus `runtime` plugins (each the result of loading
    /// one library, with the path it came from). A plugin that failed to load, or whose
    /// algorithms fail their vectors, is recorded and left disabled.
    pub fn power_on_with(runtime: Vec<(String, Result<PluginDecl, PluginError>)>) -> Self {
        let mut registry = Self::from_report(selftest::run());
        for decl in crate::plugin::compiled_in() {
            registry.add_plugin(decl);
        }
        for (origin, loaded) in runtime {
            match loaded {
                Ok(decl) => registry.add_plugin(decl),
                Err(e) => registry.plugins.push(PluginStatus {
                    name: origin.clone(),
                    origin,
                    enabled: Vec::new(),
                    errors: vec![e.to_string()],
                }),
            }
        }
        registry
    }

    /// A registry over a given report, without plugins.
    pub fn from_report(report: SelfTestReport) -> Self {
        Self {
            report,
            aeads: builtin::aeads(),
            suites: SUITES.iter().collect(),
            plugins: Vec::new(),
        }
    }

    /// What became of each plugin.
    pub fn plugins(&self) -> &[PluginStatus] {
        &self.plugins
    }

    /// Tests a plugin's algorithms, records the results, and registers what passed.
    pub fn add_plugin(&mut self, decl: PluginDecl) {
        let origin = match &decl.origin {
            Origin::CompiledIn => "compiled-in".to_owned(),
            Origin::SharedLibrary(p) => p.display().to_string(),
        };
        let mut status = PluginStatus {
            name: decl.name.clone(),
            origin,
            enabled: Vec::new(),
            errors: Vec::new(),
        };
        let mut passed_aeads = Vec::new();
        for aead in &decl.aeads {
            if self.is_taken(aead.name()) {
                status
                    .errors
                    .push(format!("{}: name already registered", aead.name()));
                continue;
            }
            let result = check_aead(aead.as_ref());
            self.record(aead.name(), "plugin known-answer vectors", &result);
            match result {
                Ok(()) => passed_aeads.push(aead.clone()),
                Err(e) => status.errors.push(e.to_string()),
            }
        }
        let mut passed_hashes = Vec::new();
        for hash in &decl.hashes {
            if self.is_taken(hash.name()) {
                status
                    .errors
                    .push(format!("{}: name already registered", hash.name()));
                continue;
            }
            let result = check_hash(hash.as_ref());
            self.record(hash.name(), "plugin known-answer vectors", &result);
            match result {
                Ok(()) => passed_hashes.push(hash.clone()),
                Err(e) => status.errors.push(e.to_string()),
            }
        }
        status
            .enabled
            .extend(passed_aeads.iter().map(|a| a.name().to_owned()));
        status
            .enabled
            .extend(passed_hashes.iter().map(|h| h.name().to_owned()));
        for suite in &decl.suites {
            let aead = passed_aeads.iter().find(|a| a.name() == suite.aead);
            let hash = passed_hashes.iter().find(|h| h.name() == suite.hash);
            let code_taken = self
                .suites
                .iter()
                .any(|s| u16::from(s.suite.suite()) == suite.code_point);
            match (aead, hash) {
                _ if self.is_taken(&suite.name) || code_taken => status.errors.push(format!(
                    "{}: name or code point {:#06x} already registered",
                    suite.name, suite.code_point
                )),
                (Some(aead), Some(_)) if aead.key_len() > 32 || aead.nonce_len() != 12 => {
                    status.errors.push(format!(
                        "{}: TLS 1.3 needs a 12-byte nonce and a key of at most 32 bytes; {} has {} and {}",
                        suite.name,
                        aead.name(),
                        aead.nonce_len(),
                        aead.key_len()
                    ))
                }
                (Some(aead), Some(hash)) => {
                    self.suites
                        .push(plugin_suite(&decl.name, suite, aead.clone(), hash.clone()));
                    status.enabled.push(suite.name.clone());
                }
                _ => status.errors.push(format!(
                    "{}: its AEAD {} or hash {} is missing or failed its vectors",
                    suite.name, suite.aead, suite.hash
                )),
            }
        }
        self.aeads.extend(passed_aeads);
        self.plugins.push(status);
    }

    fn is_taken(&self, name: &str) -> bool {
        self.report.results.iter().any(|r| r.algorithm == name)
            || self.suites.iter().any(|s| s.name == name)
    }

    fn record(&mut self, name: &str, test: &'static str, result: &Result<(), PluginError>) {
        self.report.results.push(TestResult {
            algorithm: leak_str(name),
            test,
            passed: result.is_ok(),
            detail: result.as_ref().err().map(ToString::to_string),
        });
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

    /// A provider for `spec` with the default profile, from enabled algorithms only.
    pub fn provider(&self, spec: ProviderSpec) -> Result<Arc<CryptoProvider>, AgilityError> {
        let profile = builtin_profile(DEFAULT_PROFILE).ok_or(AgilityError::NoDefaultProfile)?;
        self.provider_for(spec, &profile)
    }

    /// A provider for `spec` and `profile`, from enabled algorithms only.
    pub fn provider_for(
        &self,
        spec: ProviderSpec,
        profile: &Profile,
    ) -> Result<Arc<CryptoProvider>, AgilityError> {
        assemble(
            spec,
            profile,
            |g| self.group_enabled(g),
            &self.suites,
            |s| self.suite_enabled(s),
        )
    }

    /// Every registered suite (built-in and from plugins).
    pub fn suites(&self) -> &[&'static SuiteInfo] {
        &self.suites
    }

    /// The smallest confidentiality limit (records per key) that an enabled TLS 1.3 suite built
    /// on the AEAD `aead` declares, `None` when no suite declares one: what the agile tunnel
    /// takes as a plugin AEAD's usage limit.
    pub fn aead_confidentiality_limit(&self, aead: &str) -> Option<u64> {
        self.suites
            .iter()
            .filter(|s| !s.tls12 && s.requires.first() == Some(&aead))
            .filter_map(|s| s.suite.tls13().map(|t| t.common.confidentiality_limit))
            .filter(|&limit| limit > 0)
            .min()
    }

    /// The inventory with the key-exchange groups and suites that no `(spec, profile)` of a
    /// config admits marked [`Status::DisabledByPolicy`].
    pub fn inventory_with_policy(&self, uses: &[(ProviderSpec, Profile)]) -> Vec<InventoryEntry> {
        let admitted_group = |name: &str| {
            uses.iter().any(|(spec, profile)| {
                profile.groups.iter().any(|g| g == name)
                    && KNOWN_GROUPS
                        .iter()
                        .any(|g| g.name == name && spec.policy.admits(g))
            })
        };
        let admitted_suite = |name: &str| {
            uses.iter().any(|(spec, profile)| {
                profile.suites.iter().any(|s| s == name)
                    && self
                        .suites
                        .iter()
                        .any(|s| s.name == name && (spec.tls12 || !s.tls12))
            })
        };
        let mut entries = self.inventory();
        for e in &mut entries {
            let admitted = match e.kind {
                "key-exchange" => admitted_group(e.name),
                "cipher-suite" => admitted_suite(e.name),
                _ => true,
            };
            if !admitted && e.status == Status::Enabled {
                e.status = Status::DisabledByPolicy;
            }
        }
        entries
    }

    fn provider_of(&self, name: &str) -> &'static str {
        let from_plugin = self
            .report
            .results
            .iter()
            .any(|r| r.algorithm == name && r.test == "plugin known-answer vectors");
        if from_plugin { "plugin" } else { "aws-lc-rs" }
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
        let suites = self.suites.iter().map(|s| InventoryEntry {
            name: s.name,
            kind: "cipher-suite",
            provider: s.provider,
            code_point: Some(u16::from(s.suite.suite())),
            security_bits: Some(s.security_bits),
            // In TLS 1.2 the suite fixes a classical key exchange; a TLS 1.3 suite is only
            // symmetric, and 256-bit keys keep 128-bit strength against Grover's search.
            post_quantum: s.security_bits >= 256 && !s.tls12,
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
            provider: self.provider_of(name),
            code_point: None,
            security_bits: None,
            post_quantum: primitive_resists_quantum(name),
            status: status(self.report.passed(name)),
        });
        let kems = crate::kem::KEM_NAMES.iter().map(|&name| InventoryEntry {
            name,
            kind: "kem",
            provider: if name.starts_with("ML-KEM") {
                "aws-lc-rs"
            } else {
                "pqcrypto"
            },
            code_point: None,
            security_bits: Some(if name.ends_with("1024") {
                256
            } else if name.starts_with("HQC") {
                128
            } else {
                192
            }),
            post_quantum: true,
            status: match (
                self.report.results.iter().any(|r| r.algorithm == name),
                crate::kem::tested(name),
            ) {
                (true, _) => status(self.report.passed(name)),
                (false, Some(passed)) => status(passed),
                (false, None) => Status::PendingFirstUse,
            },
        });
        groups
            .chain(suites)
            .chain(kems)
            .chain(primitives.filter(|e| !e.name.starts_with("ML-KEM")))
            .collect()
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
            Err(AgilityError::NoGroups { .. })
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
