//! Assembles explicit rustls `CryptoProvider`s from a policy and the registry's self-test
//! verdicts: every field is chosen here, so a new field in rustls forces a decision instead of
//! inheriting a default, and a disabled algorithm is left out rather than silently used.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs;

use crate::groups::GroupInfo;
use crate::policy::KxPolicy;
use crate::suites::{SUITES, SuiteInfo};

/// What a provider must offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderSpec {
    /// Admitted key-exchange groups.
    pub policy: KxPolicy,
    /// Whether TLS 1.2 suites are included (refused with [`KxPolicy::HybridRequired`]).
    pub tls12: bool,
}

/// Errors assembling a provider: a configuration mistake or nothing usable left.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgilityError {
    /// TLS 1.2 has no hybrid key exchange, so it cannot satisfy a hybrid-only policy.
    #[error("TLS 1.2 cannot be enabled with policy {0}: TLS 1.2 has no post-quantum key exchange")]
    Tls12WithPqOnlyPolicy(KxPolicy),
    /// The policy left no usable group (all disabled by self-tests, or none admitted).
    #[error("policy {0} leaves no key-exchange group enabled (see `pqgate crypto selftest`)")]
    NoGroups(KxPolicy),
    /// Every cipher suite is disabled by self-tests.
    #[error("no TLS cipher suite is enabled (see `pqgate crypto selftest`)")]
    NoSuites,
}

/// Builds the provider for `spec` with every algorithm enabled, without consulting self-tests:
/// for test and benchmark clients. The daemon uses [`crate::Registry::provider`].
pub fn build_provider(spec: ProviderSpec) -> Result<Arc<CryptoProvider>, AgilityError> {
    assemble(spec, |_| true, |_| true)
}

/// Builds a provider from the groups and suites the two predicates keep.
pub(crate) fn assemble(
    spec: ProviderSpec,
    group_ok: impl Fn(&GroupInfo) -> bool,
    suite_ok: impl Fn(&SuiteInfo) -> bool,
) -> Result<Arc<CryptoProvider>, AgilityError> {
    if spec.tls12 && !spec.policy.allows_tls12() {
        return Err(AgilityError::Tls12WithPqOnlyPolicy(spec.policy));
    }
    let kx_groups: Vec<_> = spec
        .policy
        .groups()
        .filter(|g| group_ok(g))
        .map(|g| g.group)
        .collect();
    if kx_groups.is_empty() {
        return Err(AgilityError::NoGroups(spec.policy));
    }
    let cipher_suites: Vec<_> = SUITES
        .iter()
        .filter(|s| (spec.tls12 || !s.tls12) && suite_ok(s))
        .map(|s| s.suite)
        .collect();
    if !cipher_suites
        .iter()
        .any(|s| s.version() == &rustls::version::TLS13)
    {
        return Err(AgilityError::NoSuites);
    }
    let base = aws_lc_rs::default_provider();
    Ok(Arc::new(CryptoProvider {
        cipher_suites,
        kx_groups,
        signature_verification_algorithms: base.signature_verification_algorithms,
        secure_random: base.secure_random,
        key_provider: base.key_provider,
    }))
}

/// Draws once from the provider's RNG: aws-lc seeds lazily and the first draw in a process takes
/// tens of milliseconds, which would otherwise land on the first handshake.
pub fn warm_up_rng(provider: &CryptoProvider) -> Result<(), rustls::Error> {
    let mut seed = [0u8; 32];
    provider
        .secure_random
        .fill(&mut seed)
        .map_err(|_| rustls::Error::FailedToGetRandomBytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls12_is_refused_with_hybrid_required() {
        let spec = ProviderSpec {
            policy: KxPolicy::HybridRequired,
            tls12: true,
        };
        assert!(matches!(
            build_provider(spec),
            Err(AgilityError::Tls12WithPqOnlyPolicy(_))
        ));
    }

    #[test]
    fn hybrid_required_provider_has_no_classical_group() {
        let spec = ProviderSpec {
            policy: KxPolicy::HybridRequired,
            tls12: false,
        };
        let provider = build_provider(spec).unwrap();
        let names: Vec<u16> = provider.kx_groups.iter().map(|g| g.name().into()).collect();
        assert_eq!(names, [0x11ec, 0x11eb, 0x0202]);
        assert!(
            provider
                .cipher_suites
                .iter()
                .all(|s| s.version() == &rustls::version::TLS13)
        );
        warm_up_rng(&provider).unwrap();
    }
}
