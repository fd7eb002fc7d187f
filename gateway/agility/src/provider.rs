//! Assembles explicit rustls `CryptoProvider`s from a policy and the registry's self-test
//! verdicts: every field is chosen here, so a new field in rustls forces a decision instead of
//! inheriting a default, and a disabled algorithm is left out rather than silently used.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs;

use crate::groups::{GroupInfo, KNOWN_GROUPS};
use crate::policy::KxPolicy;
use crate::profile::{DEFAULT_PROFILE, Profile, builtin_profile};
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
    /// The profile and policy leave no usable group (none admitted, or all disabled by
    /// self-tests).
    #[error(
        "profile {profile} with policy {policy} leaves no key-exchange group (its groups are not \
         admitted by the policy or failed their self-tests: see `pqgate crypto list`)"
    )]
    NoGroups {
        /// The profile.
        profile: String,
        /// The policy.
        policy: KxPolicy,
    },
    /// The built-in default profile is missing (a build defect).
    #[error("the default profile is not defined")]
    NoDefaultProfile,
    /// Every cipher suite of the profile is disabled by self-tests or unusable.
    #[error("profile {0} leaves no TLS 1.3 cipher suite enabled (see `pqgate crypto list`)")]
    NoSuites(String),
    /// A profile names an algorithm the registry does not have.
    #[error("profile {profile} names unknown algorithm {name:?} (see `pqgate crypto list`)")]
    UnknownAlgorithm {
        /// The profile.
        profile: String,
        /// The name.
        name: String,
    },
    /// A profile for classical peers used with a policy that refuses them.
    #[error("profile {0} is for classical peers: use policy = \"hybrid-preferred\"")]
    NeedsClassical(String),
}

/// Builds the provider for `spec` with every algorithm enabled, without consulting self-tests:
/// for test and benchmark clients. The daemon uses [`crate::Registry::provider`].
pub fn build_provider(spec: ProviderSpec) -> Result<Arc<CryptoProvider>, AgilityError> {
    let profile = builtin_profile(DEFAULT_PROFILE).ok_or(AgilityError::NoDefaultProfile)?;
    let suites: Vec<&'static SuiteInfo> = SUITES.iter().collect();
    assemble(spec, &profile, |_| true, &suites, |_| true)
}

/// Builds a provider from `profile`'s groups and suites, in the profile's order, keeping those
/// the policy admits and the predicates accept.
pub(crate) fn assemble(
    spec: ProviderSpec,
    profile: &Profile,
    group_ok: impl Fn(&GroupInfo) -> bool,
    suites: &[&'static SuiteInfo],
    suite_ok: impl Fn(&SuiteInfo) -> bool,
) -> Result<Arc<CryptoProvider>, AgilityError> {
    if spec.tls12 && !spec.policy.allows_tls12() {
        return Err(AgilityError::Tls12WithPqOnlyPolicy(spec.policy));
    }
    if profile.needs_classical && !spec.policy.allows_tls12() {
        return Err(AgilityError::NeedsClassical(profile.name.clone()));
    }
    let unknown = |name: &String| AgilityError::UnknownAlgorithm {
        profile: profile.name.clone(),
        name: name.clone(),
    };
    let mut kx_groups = Vec::new();
    for name in &profile.groups {
        let group = KNOWN_GROUPS
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| unknown(name))?;
        if spec.policy.admits(group) && group_ok(group) {
            kx_groups.push(group.group);
        }
    }
    if kx_groups.is_empty() {
        return Err(AgilityError::NoGroups {
            profile: profile.name.clone(),
            policy: spec.policy,
        });
    }
    let mut cipher_suites = Vec::new();
    for name in &profile.suites {
        let suite = suites
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| unknown(name))?;
        if (spec.tls12 || !suite.tls12) && suite_ok(suite) {
            cipher_suites.push(suite.suite);
        }
    }
    if !cipher_suites
        .iter()
        .any(|s| s.version() == &rustls::version::TLS13)
    {
        return Err(AgilityError::NoSuites(profile.name.clone()));
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
