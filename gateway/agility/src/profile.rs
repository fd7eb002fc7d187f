//! Named profiles: which key-exchange groups and cipher suites (in preference order) a listener,
//! connector or tunnel may use, and which certificate signature schemes it demands. The policy
//! (`hybrid-required`/`hybrid-preferred`) then filters the groups further.

use rustls::SignatureScheme;

/// The default profile.
pub const DEFAULT_PROFILE: &str = "pq-hybrid";

/// The built-in profile names.
pub const BUILTIN_PROFILES: &[&str] = &["pq-hybrid", "cnsa2", "classical-compat"];

/// A resolved profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Name.
    pub name: String,
    /// Group names, most preferred first.
    pub groups: Vec<String>,
    /// Suite names, most preferred first (TLS 1.2 suites are used only where TLS 1.2 is on).
    pub suites: Vec<String>,
    /// Certificate signature schemes the profile demands; empty: any.
    pub cert_schemes: Vec<SignatureScheme>,
    /// Whether the profile is meant for classical peers (needs policy `hybrid-preferred`).
    pub needs_classical: bool,
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

const ALL_GROUPS: &[&str] = &[
    "X25519MLKEM768",
    "SecP256r1MLKEM768",
    "MLKEM1024",
    "X25519",
    "secp256r1",
    "secp384r1",
];

const STANDARD_SUITES: &[&str] = &[
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// A built-in profile by name.
pub fn builtin_profile(name: &str) -> Option<Profile> {
    let profile = match name {
        // Post-quantum groups first; classical ones only where the policy admits them.
        "pq-hybrid" => Profile {
            name: name.into(),
            groups: strings(ALL_GROUPS),
            suites: strings(STANDARD_SUITES),
            cert_schemes: Vec::new(),
            needs_classical: false,
        },
        // CNSA 2.0: ML-KEM-1024, AES-256-GCM with SHA-384, P-384 or ML-DSA-87 certificates.
        "cnsa2" => Profile {
            name: name.into(),
            groups: strings(&["MLKEM1024"]),
            // TLS 1.3 only: ML-KEM has no TLS 1.2 key exchange.
            suites: strings(&["TLS13_AES_256_GCM_SHA384"]),
            cert_schemes: vec![
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignatureScheme::ML_DSA_87,
            ],
            needs_classical: false,
        },
        // Everything, for peers that cannot do post-quantum yet (counted as classical).
        "classical-compat" => Profile {
            name: name.into(),
            groups: strings(ALL_GROUPS),
            suites: strings(STANDARD_SUITES),
            cert_schemes: Vec::new(),
            needs_classical: true,
        },
        _ => return None,
    };
    Some(profile)
}

/// A custom profile from config.
pub fn custom_profile(name: &str, groups: &[String], suites: &[String]) -> Profile {
    Profile {
        name: name.to_owned(),
        groups: groups.to_vec(),
        suites: suites.to_vec(),
        cert_schemes: Vec::new(),
        needs_classical: false,
    }
}
