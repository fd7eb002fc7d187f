//! Key-exchange policies: which groups a listener or connector admits, by name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::groups::{GroupInfo, KNOWN_GROUPS};

/// Which key-exchange groups a TLS endpoint accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KxPolicy {
    /// Only post-quantum groups (hybrids and ML-KEM); a classical-only peer is refused with a
    /// `handshake_failure` alert. TLS 1.3 only.
    #[default]
    HybridRequired,
    /// Post-quantum groups first, classical groups accepted; classical sessions are counted.
    HybridPreferred,
}

/// A policy name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown key-exchange policy {0:?} (expected \"hybrid-required\" or \"hybrid-preferred\")")]
pub struct PolicyParseError(pub String);

impl KxPolicy {
    /// The config name of the policy.
    pub fn name(self) -> &'static str {
        match self {
            Self::HybridRequired => "hybrid-required",
            Self::HybridPreferred => "hybrid-preferred",
        }
    }

    /// Whether TLS 1.2 may be enabled together with this policy (TLS 1.2 has no hybrid groups).
    pub fn allows_tls12(self) -> bool {
        match self {
            Self::HybridRequired => false,
            Self::HybridPreferred => true,
        }
    }

    /// Whether the policy admits a group.
    pub fn admits(self, group: &GroupInfo) -> bool {
        match self {
            Self::HybridRequired => group.post_quantum,
            Self::HybridPreferred => true,
        }
    }

    /// The admitted groups, most preferred first.
    pub fn groups(self) -> impl Iterator<Item = &'static GroupInfo> {
        KNOWN_GROUPS.iter().filter(move |g| self.admits(g))
    }
}

impl fmt::Display for KxPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KxPolicy {
    type Err = PolicyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hybrid-required" => Ok(Self::HybridRequired),
            "hybrid-preferred" => Ok(Self::HybridPreferred),
            other => Err(PolicyParseError(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_required_admits_only_post_quantum_groups() {
        let names: Vec<_> = KxPolicy::HybridRequired.groups().map(|g| g.name).collect();
        assert_eq!(names, ["X25519MLKEM768", "SecP256r1MLKEM768", "MLKEM1024"]);
    }

    #[test]
    fn hybrid_preferred_puts_post_quantum_first() {
        let groups: Vec<_> = KxPolicy::HybridPreferred.groups().collect();
        assert_eq!(groups[0].name, "X25519MLKEM768");
        assert!(groups.iter().any(|g| g.name == "X25519"));
        let first_classical = groups.iter().position(|g| !g.post_quantum).unwrap();
        assert!(groups[first_classical..].iter().all(|g| !g.post_quantum));
    }

    #[test]
    fn names_round_trip() {
        for p in [KxPolicy::HybridRequired, KxPolicy::HybridPreferred] {
            assert_eq!(p.name().parse::<KxPolicy>().unwrap(), p);
        }
        assert!("hybrid".parse::<KxPolicy>().is_err());
    }
}
