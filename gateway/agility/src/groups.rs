//! The key-exchange groups pqgate knows, as data: name, IANA code point, whether it resists a
//! quantum adversary, and the rustls implementation behind it.

use rustls::crypto::SupportedKxGroup;
use rustls::crypto::aws_lc_rs::kx_group;
use std::sync::Mutex;

use rustls::{CipherSuite, NamedGroup};

use crate::selftest::names;
use crate::suites::SUITES;

/// One key-exchange group and its properties.
#[derive(Debug)]
pub struct GroupInfo {
    /// Name as used in config, logs and metric labels (IANA TLS Supported Groups registry name).
    pub name: &'static str,
    /// IANA code point.
    pub code_point: u16,
    /// True when an adversary with a quantum computer cannot recover the shared secret
    /// (pure ML-KEM or a hybrid that contains ML-KEM).
    pub post_quantum: bool,
    /// True when the group combines a classical and a post-quantum part.
    pub hybrid: bool,
    /// Claimed classical security level in bits (NIST category mapping for ML-KEM).
    pub security_bits: u16,
    /// The rustls implementation (aws-lc-rs).
    pub group: &'static dyn SupportedKxGroup,
    /// Primitives whose self-tests must pass besides the group's own pairwise test.
    pub requires: &'static [&'static str],
}

/// Every group pqgate can negotiate, most preferred first.
pub static KNOWN_GROUPS: &[GroupInfo] = &[
    GroupInfo {
        name: "X25519MLKEM768",
        code_point: 0x11ec,
        post_quantum: true,
        hybrid: true,
        security_bits: 192,
        group: kx_group::X25519MLKEM768,
        requires: &[names::X25519, names::ML_KEM_768],
    },
    GroupInfo {
        name: "SecP256r1MLKEM768",
        code_point: 0x11eb,
        post_quantum: true,
        hybrid: true,
        security_bits: 192,
        group: kx_group::SECP256R1MLKEM768,
        requires: &[names::ML_KEM_768],
    },
    GroupInfo {
        name: "MLKEM1024",
        code_point: 0x0202,
        post_quantum: true,
        hybrid: false,
        security_bits: 256,
        group: kx_group::MLKEM1024,
        requires: &[names::ML_KEM_1024],
    },
    GroupInfo {
        name: "X25519",
        code_point: 0x001d,
        post_quantum: false,
        hybrid: false,
        security_bits: 128,
        group: kx_group::X25519,
        requires: &[names::X25519],
    },
    GroupInfo {
        name: "secp256r1",
        code_point: 0x0017,
        post_quantum: false,
        hybrid: false,
        security_bits: 128,
        group: kx_group::SECP256R1,
        requires: &[],
    },
    GroupInfo {
        name: "secp384r1",
        code_point: 0x0018,
        post_quantum: false,
        hybrid: false,
        security_bits: 192,
        group: kx_group::SECP384R1,
        requires: &[],
    },
];

/// Looks a negotiated group up in [`KNOWN_GROUPS`].
pub fn group_info(group: NamedGroup) -> Option<&'static GroupInfo> {
    let code: u16 = group.into();
    KNOWN_GROUPS.iter().find(|g| g.code_point == code)
}

/// A bounded label for a negotiated group: its registry name, or `other`.
pub fn group_label(group: Option<NamedGroup>) -> &'static str {
    match group {
        None => "none",
        Some(g) => group_info(g).map_or("other", |info| info.name),
    }
}

/// Names of plugin suites for labels: (code point, name). Bounded: plugins load once, at start,
/// with at most 16 suites each.
static PLUGIN_SUITE_LABELS: Mutex<Vec<(u16, &'static str)>> = Mutex::new(Vec::new());

/// Makes a plugin suite's name usable as a label.
pub(crate) fn register_suite_label(code_point: u16, name: &'static str) {
    if let Ok(mut labels) = PLUGIN_SUITE_LABELS.lock()
        && !labels.iter().any(|(c, _)| *c == code_point)
    {
        labels.push((code_point, name));
    }
}

/// A bounded label for a negotiated cipher suite: its IANA (or plugin-declared) name, or `other`.
pub fn suite_label(suite: Option<CipherSuite>) -> &'static str {
    let Some(s) = suite else {
        return "none";
    };
    if let Some(info) = SUITES.iter().find(|info| info.suite.suite() == s) {
        return info.name;
    }
    let code = u16::from(s);
    PLUGIN_SUITE_LABELS
        .lock()
        .ok()
        .and_then(|labels| labels.iter().find(|(c, _)| *c == code).map(|(_, n)| *n))
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_points_match_rustls() {
        for info in KNOWN_GROUPS {
            let code: u16 = info.group.name().into();
            assert_eq!(code, info.code_point, "{}", info.name);
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            group_label(Some(NamedGroup::X25519MLKEM768)),
            "X25519MLKEM768"
        );
        assert_eq!(group_label(Some(NamedGroup::FFDHE2048)), "other");
        assert_eq!(group_label(None), "none");
        assert_eq!(
            suite_label(Some(CipherSuite::TLS_NULL_WITH_NULL_NULL)),
            "other"
        );
    }

    #[test]
    fn hybrid_groups_are_post_quantum() {
        for info in KNOWN_GROUPS.iter().filter(|g| g.hybrid) {
            assert!(info.post_quantum, "{}", info.name);
        }
    }
}
