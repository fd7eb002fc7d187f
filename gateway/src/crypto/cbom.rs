//! `pqgate crypto cbom`: a CycloneDX 1.6 cryptographic bill of materials (CBOM) listing exactly
//! the algorithms and protocols a configuration uses, each with its power-on self-test status.
//!
//! Field names and enumerations follow the CycloneDX 1.6 JSON schema
//! (`http://cyclonedx.org/schema/bom-1.6.schema.json`, definitions `component`,
//! `cryptoProperties` with `algorithmProperties` and `protocolProperties`, `cipherSuite`,
//! `metadata`, `dependency` and `property`).
//!
//! What is listed, per listener and connector:
//! - key exchange: the groups of its profile that its policy admits (`kem` for ML-KEM and the
//!   hybrids, `key-agree` for the classical groups);
//! - cipher suites: the profile's suites (TLS 1.2 ones only where `tls12` is on), each suite's
//!   AEAD, hash and, for TLS 1.3, HKDF over that hash;
//! - signatures: the algorithm of each configured certificate's key (which signs handshakes) and
//!   of the certificate's own signature, read from the PEM files; the generated self-signed
//!   certificate is ECDSA P-256 by construction. Where pqgate verifies peer certificates
//!   (connectors, listeners with `client_auth`) the schemes rustls accepts are listed, marked as
//!   accepted if the peer uses them rather than as in use;
//! - SHA-256 for connectors with `pin_sha256`.
//!
//! Algorithm components carry `pqgate:status` (`enabled`, `disabled-by-self-test` or
//! `not-self-tested`), `pqgate:usage` and `pqgate:used-by` properties. A protocol component per
//! TLS version in use lists the cipher suites that are enabled, and refers to its algorithms by
//! `bom-ref`.
//!
//! Output is deterministic: the timestamp is `SOURCE_DATE_EPOCH` when set (else the current
//! time, to the second), and the serial number is a UUIDv8 (RFC 9562 section 5.8) made of the
//! SHA-256 of the BOM without its serial number. The same config, build and timestamp give the
//! same bytes; two runs a second apart give different serial numbers.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use pqgate_agility::{KNOWN_GROUPS, KxPolicy, Profile, Registry, SuiteInfo};
use pqgate_core::config::Config;
use rustls::SignatureScheme;
use serde_json::{Value, json};

use crate::config::{self, ConfigErrors, Loaded};
use crate::daemon::assemble::resolve_profile;
use crate::keys::self_signed;
use crate::keys::x509::CertError;
use crate::tls::material::{self, MaterialError};

/// Why no CBOM could be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CbomError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A certificate file could not be read.
    #[error("{key}: {source}")]
    Certificate {
        /// Config key path of the certificate.
        key: String,
        /// What went wrong.
        #[source]
        source: Box<MaterialError>,
    },
    /// A certificate is not well-formed X.509 DER.
    #[error("{key}: {}: malformed certificate DER", path.display())]
    CertificateDer {
        /// Config key path of the certificate.
        key: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it (`None`: the file holds no certificate).
        #[source]
        source: Option<CertError>,
    },
    /// A listener or connector names a profile that does not exist.
    #[error("{key}: unknown profile {name:?}")]
    UnknownProfile {
        /// Config key path.
        key: String,
        /// The name.
        name: String,
    },
    /// A profile names a group or suite the registry does not have.
    #[error("{key}: profile {profile} names unknown algorithm {name:?}")]
    UnknownAlgorithm {
        /// Config key path of the endpoint using the profile.
        key: String,
        /// The profile.
        profile: String,
        /// The name.
        name: String,
    },
    /// `SOURCE_DATE_EPOCH` is set but is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970-01-01")]
    SourceDateEpoch(String),
    /// Serialization failed.
    #[error("serializing the CBOM: {0}")]
    Json(#[from] serde_json::Error),
}

/// The CBOM of the config at `path` (the embedded default when `None`) as pretty JSON, with the
/// configured run-time plugins loaded and every self-test run.
pub(crate) fn render(path: Option<&Path>) -> Result<String, CbomError> {
    let loaded = config::load(path)?;
    let registry = Registry::power_on_with(crate::crypto::plugins::load_all(&loaded.config));
    let bom = build_bom(&loaded, &registry, timestamp()?)?;
    Ok(serde_json::to_string_pretty(&bom)?)
}

/// Seconds since the epoch: `SOURCE_DATE_EPOCH` when set, else now.
pub(crate) fn timestamp() -> Result<u64, CbomError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| CbomError::SourceDateEpoch(text)),
        Err(_) => Ok(crate::net::clock::unix_ms().map_or(0, |ms| ms / 1000)),
    }
}

/// The CBOM of `loaded` as a JSON value, stamped with `timestamp` (seconds since the epoch).
pub(crate) fn build_bom(
    loaded: &Loaded,
    registry: &Registry,
    timestamp: u64,
) -> Result<Value, CbomError> {
    let mut inv = Inventory::new(registry);
    collect(&loaded.config, &mut inv)?;
    let version = env!("CARGO_PKG_VERSION");
    let pqgate = json!({
        "type": "application",
        "bom-ref": APP_REF,
        "name": "pqgate",
        "version": version,
        "description": env!("CARGO_PKG_DESCRIPTION"),
    });
    let mut components: Vec<Value> = inv.protocols.iter().map(|p| p.to_json(&inv)).collect();
    components.extend(inv.assets.iter().map(|a| a.to_json(registry)));
    let mut all_refs: Vec<String> = inv.protocols.iter().map(Protocol::bom_ref).collect();
    all_refs.extend(inv.assets.iter().map(|a| a.bom_ref()));
    let mut dependencies = vec![json!({ "ref": APP_REF, "dependsOn": all_refs })];
    dependencies.extend(
        inv.protocols
            .iter()
            .map(|p| json!({ "ref": p.bom_ref(), "dependsOn": p.refs })),
    );
    let mut bom = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(timestamp),
            "tools": { "components": [{
                "type": "application",
                "name": "pqgate",
                "version": version,
            }]},
            "component": pqgate,
            "properties": [
                { "name": "pqgate:config", "value": loaded.source.to_string() },
                { "name": "pqgate:serial-number", "value": "UUIDv8 of the SHA-256 of this BOM without serialNumber" },
            ],
        },
        "components": components,
        "dependencies": dependencies,
    });
    let digest = digest::digest(&digest::SHA256, &serde_json::to_vec(&bom)?);
    if let Some(obj) = bom.as_object_mut() {
        obj.insert(
            "serialNumber".into(),
            Value::String(format!("urn:uuid:{}", uuid_v8(digest.as_ref()))),
        );
    }
    Ok(bom)
}

const APP_REF: &str = "pqgate";

/// Walks every listener and connector, recording what each uses.
fn collect(config: &Config, inv: &mut Inventory) -> Result<(), CbomError> {
    let state_dir = self_signed::state_dir(config.service.state_dir.as_deref());
    for (i, l) in config.listeners.iter().enumerate() {
        let at = format!("listener[{i}]");
        let user = format!("listener:{}", l.name);
        let profile = profile(config, &at, &l.profile)?;
        let versions = inv.endpoint(Endpoint {
            at: &at,
            user: &user,
            profile: &profile,
            policy: l.policy,
            tls12: l.tls12,
        })?;
        let mut sig_refs = Vec::new();
        match (&l.cert, l.self_signed) {
            (Some(cert), _) => {
                sig_refs.extend(inv.certificate(&format!("{at}.cert"), cert, &user)?)
            }
            (None, true) => {
                let generated = self_signed::self_signed_paths(&state_dir).cert;
                if generated.exists() {
                    let key = format!("{at}.self_signed");
                    sig_refs.extend(inv.certificate(&key, &generated, &user)?);
                } else {
                    // self_signed::ensure_self_signed generates ECDSA P-256 with SHA-256.
                    sig_refs.push(inv.known("ECDSA-P256-SHA256", USAGE_KEY, &user));
                    sig_refs.push(inv.known("ECDSA-P256-SHA256", USAGE_CERT_SIG, &user));
                }
            }
            (None, false) => {}
        }
        for (j, r) in l.routes.iter().enumerate() {
            if let Some(cert) = &r.cert {
                let key = format!("{at}.route[{j}].cert");
                sig_refs.extend(inv.certificate(&key, cert, &user)?);
            }
        }
        if l.client_auth.is_some() {
            sig_refs.extend(inv.peer_verification(&user));
        }
        inv.link(&versions, &sig_refs);
    }
    for (i, c) in config.connectors.iter().enumerate() {
        let at = format!("connector[{i}]");
        let user = format!("connector:{}", c.name);
        let profile = profile(config, &at, &c.profile)?;
        let versions = inv.endpoint(Endpoint {
            at: &at,
            user: &user,
            profile: &profile,
            policy: c.policy,
            tls12: c.tls12,
        })?;
        let mut sig_refs = Vec::new();
        if let Some(cert) = &c.client_cert {
            let key = format!("{at}.client_cert");
            sig_refs.extend(inv.certificate(&key, cert, &user)?);
        }
        sig_refs.extend(inv.peer_verification(&user));
        if !c.pin_sha256.is_empty() {
            inv.known("SHA-256", "spki-pin", &user);
        }
        inv.link(&versions, &sig_refs);
    }
    Ok(())
}

fn profile(config: &Config, at: &str, name: &str) -> Result<Profile, CbomError> {
    resolve_profile(config, name).ok_or_else(|| CbomError::UnknownProfile {
        key: format!("{at}.profile"),
        name: name.to_owned(),
    })
}

const USAGE_KX: &str = "tls-key-exchange";
const USAGE_SUITE: &str = "tls-cipher-suite";
const USAGE_KEY: &str = "tls-handshake-signature (certificate key)";
const USAGE_CERT_SIG: &str = "certificate-signature";
const USAGE_PEER: &str = "peer-signature-verification (accepted if the peer uses it)";

/// Static facts about one algorithm.
struct Spec {
    name: &'static str,
    primitive: &'static str,
    parameter_set: Option<&'static str>,
    curve: Option<&'static str>,
    mode: Option<&'static str>,
    functions: &'static [&'static str],
    classical: u16,
    quantum: u8,
    oid: Option<&'static str>,
    hybrid_of: Option<&'static str>,
}

const KEM: &[&str] = &["keygen", "encapsulate", "decapsulate"];
const KA: &[&str] = &["keygen", "keyderive"];
const AE: &[&str] = &["encrypt", "decrypt"];
const HASH: &[&str] = &["digest"];
const KDF: &[&str] = &["keyderive"];
const SIG: &[&str] = &["sign", "verify"];

macro_rules! spec {
    ($name:expr, $prim:expr, $param:expr, $curve:expr, $mode:expr, $f:expr, $c:expr, $q:expr, $oid:expr) => {
        spec!($name, $prim, $param, $curve, $mode, $f, $c, $q, $oid, None)
    };
    ($name:expr, $prim:expr, $param:expr, $curve:expr, $mode:expr, $f:expr, $c:expr, $q:expr, $oid:expr, $hy:expr) => {
        Spec {
            name: $name,
            primitive: $prim,
            parameter_set: $param,
            curve: $curve,
            mode: $mode,
            functions: $f,
            classical: $c,
            quantum: $q,
            oid: $oid,
            hybrid_of: $hy,
        }
    };
}

/// Every algorithm pqgate's built-ins can use. Security levels: classical in bits (hashes by
/// collision resistance, RSA at the 2048-bit minimum rustls accepts); quantum as the NIST PQC
/// category (AES-128 = 1, SHA-256 collisions = 2, AES-192 = 3, SHA-384 = 4, AES-256 = 5; 0 for
/// algorithms that Shor's algorithm breaks). OIDs from NIST CSOR, RFC 8410, RFC 5758, RFC 8103,
/// RFC 8619 and SEC 2; the TLS hybrid groups have none.
#[rustfmt::skip]
static SPECS: &[Spec] = &[
    spec!("X25519MLKEM768", "kem", Some("768"), Some("curve25519"), None, KEM, 192, 3, None, Some("X25519 + ML-KEM-768")),
    spec!("SecP256r1MLKEM768", "kem", Some("768"), Some("secp256r1"), None, KEM, 192, 3, None, Some("secp256r1 + ML-KEM-768")),
    spec!("MLKEM1024", "kem", Some("1024"), None, None, KEM, 256, 5, Some("2.16.840.1.101.3.4.4.3")),
    spec!("X25519", "key-agree", None, Some("curve25519"), None, KA, 128, 0, Some("1.3.101.110")),
    spec!("secp256r1", "key-agree", None, Some("secp256r1"), None, KA, 128, 0, Some("1.3.132.1.12")),
    spec!("secp384r1", "key-agree", None, Some("secp384r1"), None, KA, 192, 0, Some("1.3.132.1.12")),
    spec!("AES-128-GCM", "ae", Some("128"), None, Some("gcm"), AE, 128, 1, Some("2.16.840.1.101.3.4.1.6")),
    spec!("AES-256-GCM", "ae", Some("256"), None, Some("gcm"), AE, 256, 5, Some("2.16.840.1.101.3.4.1.46")),
    spec!("ChaCha20-Poly1305", "ae", Some("256"), None, None, AE, 256, 5, Some("1.2.840.113549.1.9.16.3.18")),
    spec!("SHA-256", "hash", Some("256"), None, None, HASH, 128, 2, Some("2.16.840.1.101.3.4.2.1")),
    spec!("SHA-384", "hash", Some("384"), None, None, HASH, 192, 4, Some("2.16.840.1.101.3.4.2.2")),
    spec!("HKDF-SHA256", "kdf", Some("256"), None, None, KDF, 128, 2, Some("1.2.840.113549.1.9.16.3.28")),
    spec!("HKDF-SHA384", "kdf", Some("384"), None, None, KDF, 192, 4, Some("1.2.840.113549.1.9.16.3.29")),
    spec!("ECDSA-P256-SHA256", "signature", None, Some("secp256r1"), None, SIG, 128, 0, Some("1.2.840.10045.4.3.2")),
    spec!("ECDSA-P384-SHA384", "signature", None, Some("secp384r1"), None, SIG, 192, 0, Some("1.2.840.10045.4.3.3")),
    spec!("ECDSA-P521-SHA512", "signature", None, Some("secp521r1"), None, SIG, 256, 0, Some("1.2.840.10045.4.3.4")),
    spec!("Ed25519", "signature", None, Some("Ed25519"), None, SIG, 128, 0, Some("1.3.101.112")),
    spec!("ML-DSA-44", "signature", Some("44"), None, None, SIG, 128, 2, Some("2.16.840.1.101.3.4.3.17")),
    spec!("ML-DSA-65", "signature", Some("65"), None, None, SIG, 192, 3, Some("2.16.840.1.101.3.4.3.18")),
    spec!("ML-DSA-87", "signature", Some("87"), None, None, SIG, 256, 5, Some("2.16.840.1.101.3.4.3.19")),
    spec!("RSASSA-PSS-SHA256", "signature", None, None, None, SIG, 112, 0, Some("1.2.840.113549.1.1.10")),
    spec!("RSASSA-PSS-SHA384", "signature", None, None, None, SIG, 112, 0, Some("1.2.840.113549.1.1.10")),
    spec!("RSASSA-PSS-SHA512", "signature", None, None, None, SIG, 112, 0, Some("1.2.840.113549.1.1.10")),
    spec!("RSASSA-PKCS1-v1_5-SHA256", "signature", None, None, None, SIG, 112, 0, Some("1.2.840.113549.1.1.11")),
    spec!("RSASSA-PKCS1-v1_5-SHA384", "signature", None, None, None, SIG, 112, 0, Some("1.2.840.113549.1.1.12")),
    spec!("RSASSA-PKCS1-v1_5-SHA512", "signature", None, None, None, SIG, 112, 0, Some("1.2.840.113549.1.1.13")),
];

/// One algorithm component being assembled.
struct Asset {
    name: String,
    primitive: &'static str,
    parameter_set: Option<String>,
    curve: Option<&'static str>,
    mode: Option<&'static str>,
    functions: &'static [&'static str],
    classical: Option<u16>,
    quantum: Option<u8>,
    oid: Option<String>,
    hybrid_of: Option<&'static str>,
    provider: String,
    usages: Vec<String>,
    users: Vec<String>,
}

impl Asset {
    fn from_spec(s: &Spec) -> Self {
        Self {
            name: s.name.to_owned(),
            primitive: s.primitive,
            parameter_set: s.parameter_set.map(str::to_owned),
            curve: s.curve,
            mode: s.mode,
            functions: s.functions,
            classical: Some(s.classical),
            quantum: Some(s.quantum),
            oid: s.oid.map(str::to_owned),
            hybrid_of: s.hybrid_of,
            provider: "aws-lc-rs".to_owned(),
            usages: Vec::new(),
            users: Vec::new(),
        }
    }

    /// An algorithm outside [`SPECS`] (a plugin's, or one found in a certificate).
    fn other(name: String, primitive: &'static str, functions: &'static [&'static str]) -> Self {
        Self {
            name,
            primitive,
            parameter_set: None,
            curve: None,
            mode: None,
            functions,
            classical: None,
            quantum: None,
            oid: None,
            hybrid_of: None,
            provider: "aws-lc-rs".to_owned(),
            usages: Vec::new(),
            users: Vec::new(),
        }
    }

    fn bom_ref(&self) -> String {
        format!("crypto/algorithm/{}", self.name)
    }

    fn to_json(&self, registry: &Registry) -> Value {
        let mut alg = serde_json::Map::new();
        alg.insert("primitive".into(), json!(self.primitive));
        if let Some(p) = &self.parameter_set {
            alg.insert("parameterSetIdentifier".into(), json!(p));
        }
        if let Some(c) = self.curve {
            alg.insert("curve".into(), json!(c));
        }
        if let Some(m) = self.mode {
            alg.insert("mode".into(), json!(m));
        }
        alg.insert("executionEnvironment".into(), json!("software-plain-ram"));
        alg.insert("implementationPlatform".into(), json!(platform()));
        alg.insert("certificationLevel".into(), json!(["none"]));
        alg.insert("cryptoFunctions".into(), json!(self.functions));
        if let Some(c) = self.classical {
            alg.insert("classicalSecurityLevel".into(), json!(c));
        }
        if let Some(q) = self.quantum {
            alg.insert("nistQuantumSecurityLevel".into(), json!(q));
        }
        let mut crypto = json!({ "assetType": "algorithm", "algorithmProperties": alg });
        if let (Some(oid), Some(obj)) = (&self.oid, crypto.as_object_mut()) {
            obj.insert("oid".into(), json!(oid));
        }
        let mut properties = vec![
            property("pqgate:status", status_of(registry, &self.name)),
            property("pqgate:provider", &self.provider),
            property("pqgate:usage", &self.usages.join(", ")),
            property("pqgate:used-by", &self.users.join(", ")),
        ];
        if let Some(g) = KNOWN_GROUPS.iter().find(|g| g.name == self.name) {
            properties.push(property(
                "pqgate:iana-code-point",
                &format!("{:#06x}", g.code_point),
            ));
        }
        if let Some(h) = self.hybrid_of {
            properties.push(property("pqgate:hybrid-of", h));
        }
        json!({
            "type": "cryptographic-asset",
            "bom-ref": self.bom_ref(),
            "name": self.name,
            "cryptoProperties": crypto,
            "properties": properties,
        })
    }
}

fn property(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

/// The self-test verdict for `name`: a group needs its own test and its parts'; a primitive its
/// own tests; an algorithm without any test is reported as such.
fn status_of(registry: &Registry, name: &str) -> &'static str {
    let verdict = |ok: bool| {
        if ok {
            "enabled"
        } else {
            "disabled-by-self-test"
        }
    };
    if let Some(g) = KNOWN_GROUPS.iter().find(|g| g.name == name) {
        return verdict(registry.group_enabled(g));
    }
    let report = registry.report();
    if report.results.iter().any(|r| r.algorithm == name) {
        verdict(report.passed(name))
    } else {
        "not-self-tested"
    }
}

/// The CycloneDX `implementationPlatform` for the running CPU architecture.
fn platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "x86" => "x86_32",
        "aarch64" => "armv8-a",
        "arm" => "armv7-a",
        "s390x" => "s390x",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        _ => "other",
    }
}

/// One TLS version in use.
struct Protocol {
    version: &'static str,
    suites: Vec<&'static SuiteInfo>,
    refs: Vec<String>,
}

impl Protocol {
    fn bom_ref(&self) -> String {
        format!("crypto/protocol/tls-{}", self.version)
    }

    fn to_json(&self, inv: &Inventory) -> Value {
        let mut suites = Vec::new();
        let mut disabled = Vec::new();
        for s in &self.suites {
            let code = u16::from(s.suite.suite()).to_be_bytes();
            let identifiers = [format!("0x{:02X}", code[0]), format!("0x{:02X}", code[1])];
            if inv.registry.suite_enabled(s) {
                suites.push(json!({
                    "name": iana_suite_name(s.name),
                    "algorithms": suite_algorithms(s, self.version)
                        .iter()
                        .map(|(name, _)| format!("crypto/algorithm/{name}"))
                        .collect::<Vec<_>>(),
                    "identifiers": identifiers,
                }));
            } else {
                disabled.push(property(
                    "pqgate:cipher-suite-disabled",
                    &iana_suite_name(s.name),
                ));
            }
        }
        let mut properties = vec![property("pqgate:status", "enabled")];
        properties.extend(disabled);
        json!({
            "type": "cryptographic-asset",
            "bom-ref": self.bom_ref(),
            "name": format!("TLS {}", self.version),
            "cryptoProperties": {
                "assetType": "protocol",
                "protocolProperties": {
                    "type": "tls",
                    "version": self.version,
                    "cipherSuites": suites,
                    "cryptoRefArray": self.refs,
                },
            },
            "properties": properties,
        })
    }
}

/// rustls spells the TLS 1.3 suites `TLS13_*`; IANA's registry spells them `TLS_*`.
fn iana_suite_name(name: &str) -> String {
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    }
}

/// A suite's algorithms with their primitive: its AEAD and hash (the first two names of
/// `requires`, by the registry's convention), and for TLS 1.3 HKDF over that hash.
fn suite_algorithms(s: &SuiteInfo, version: &str) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    if let Some(aead) = s.requires.first() {
        out.push(((*aead).to_owned(), "ae"));
    }
    if let Some(hash) = s.requires.get(1) {
        out.push(((*hash).to_owned(), "hash"));
        if version == "1.3" {
            out.push((format!("HKDF-{}", hash.replace('-', "")), "kdf"));
        }
    }
    out
}

/// One listener or connector, as far as algorithms go.
struct Endpoint<'a> {
    at: &'a str,
    user: &'a str,
    profile: &'a Profile,
    policy: KxPolicy,
    tls12: bool,
}

/// Everything the config uses, in first-use order.
struct Inventory<'r> {
    registry: &'r Registry,
    assets: Vec<Asset>,
    protocols: Vec<Protocol>,
}

impl<'r> Inventory<'r> {
    fn new(registry: &'r Registry) -> Self {
        Self {
            registry,
            assets: Vec::new(),
            protocols: Vec::new(),
        }
    }

    /// Records a use of `asset` (merged with an earlier one of the same name); its bom-ref.
    fn add(&mut self, asset: Asset, usage: &str, user: &str) -> String {
        let i = match self.assets.iter().position(|a| a.name == asset.name) {
            Some(i) => i,
            None => {
                self.assets.push(asset);
                self.assets.len() - 1
            }
        };
        let a = &mut self.assets[i];
        if !a.usages.iter().any(|u| u == usage) {
            a.usages.push(usage.to_owned());
        }
        if !a.users.iter().any(|u| u == user) {
            a.users.push(user.to_owned());
        }
        a.bom_ref()
    }

    /// Records a use of an algorithm from [`SPECS`], or of another one named `name`.
    fn known(&mut self, name: &str, usage: &str, user: &str) -> String {
        let asset = match SPECS.iter().find(|s| s.name == name) {
            Some(spec) => Asset::from_spec(spec),
            None => Asset::other(name.to_owned(), "other", &["other"]),
        };
        self.add(asset, usage, user)
    }

    fn protocol(&mut self, version: &'static str) -> &mut Protocol {
        let i = match self.protocols.iter().position(|p| p.version == version) {
            Some(i) => i,
            None => {
                self.protocols.push(Protocol {
                    version,
                    suites: Vec::new(),
                    refs: Vec::new(),
                });
                self.protocols.len() - 1
            }
        };
        &mut self.protocols[i]
    }

    /// Records one listener's or connector's groups and suites; the TLS versions it speaks.
    fn endpoint(&mut self, ep: Endpoint<'_>) -> Result<Vec<&'static str>, CbomError> {
        let Endpoint {
            at,
            user,
            profile,
            policy,
            tls12,
        } = ep;
        let registry = self.registry;
        let unknown = |name: &str| CbomError::UnknownAlgorithm {
            key: format!("{at}.profile"),
            profile: profile.name.clone(),
            name: name.to_owned(),
        };
        let mut versions = vec!["1.3"];
        if tls12 {
            versions.push("1.2");
        }
        for name in &profile.groups {
            let group = KNOWN_GROUPS
                .iter()
                .find(|g| g.name == name)
                .ok_or_else(|| unknown(name))?;
            if !policy.admits(group) {
                continue;
            }
            let r = self.known(group.name, USAGE_KX, user);
            let enabled = registry.group_enabled(group);
            for v in &versions {
                // TLS 1.2 has classical ECDHE only.
                if enabled && (*v == "1.3" || !group.post_quantum) {
                    push_unique(&mut self.protocol(v).refs, &r);
                }
            }
        }
        for name in &profile.suites {
            let suite: &'static SuiteInfo = registry
                .suites()
                .iter()
                .find(|s| s.name == name)
                .copied()
                .ok_or_else(|| unknown(name))?;
            let version = if suite.tls12 { "1.2" } else { "1.3" };
            if suite.tls12 && !tls12 {
                continue;
            }
            for (alg, primitive) in suite_algorithms(suite, version) {
                let asset = match SPECS.iter().find(|s| s.name == alg) {
                    Some(spec) => Asset::from_spec(spec),
                    None => self.plugin_asset(suite, alg, primitive),
                };
                let r = self.add(asset, USAGE_SUITE, user);
                push_unique(&mut self.protocol(version).refs, &r);
            }
            let p = self.protocol(version);
            if !p.suites.iter().any(|s| s.name == suite.name) {
                p.suites.push(suite);
            }
        }
        Ok(versions)
    }

    /// Adds signature algorithms to the protocols an endpoint speaks.
    fn link(&mut self, versions: &[&'static str], sig_refs: &[String]) {
        for v in versions {
            let p = self.protocol(v);
            for r in sig_refs {
                push_unique(&mut p.refs, r);
            }
        }
    }

    /// An algorithm of a plugin suite (or a KDF over a plugin hash): what the registry knows.
    fn plugin_asset(&self, suite: &SuiteInfo, name: String, primitive: &'static str) -> Asset {
        let functions = match primitive {
            "ae" => AE,
            "hash" => HASH,
            _ => KDF,
        };
        let mut asset = Asset::other(name, primitive, functions);
        asset.provider = suite.provider.to_owned();
        if primitive == "ae" {
            asset.classical = Some(suite.security_bits);
            if let Some(aead) = self.registry.aead(&asset.name) {
                asset.parameter_set = Some((aead.key_len() * 8).to_string());
            }
        }
        asset
    }

    /// The schemes rustls verifies peer certificates and handshake signatures with.
    fn peer_verification(&mut self, user: &str) -> Vec<String> {
        let schemes = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes();
        schemes
            .into_iter()
            .map(|scheme| match scheme_name(scheme) {
                Some(name) => self.known(name, USAGE_PEER, user),
                None => self.add(
                    Asset::other(format!("{scheme:?}"), "signature", &["verify"]),
                    USAGE_PEER,
                    user,
                ),
            })
            .collect()
    }

    /// Records the algorithms of the certificate chain in `path`: its key's (which signs
    /// handshakes) and its signature's.
    fn certificate(
        &mut self,
        key: &str,
        path: &Path,
        user: &str,
    ) -> Result<Vec<String>, CbomError> {
        let chain =
            material::load_certs(path, "certificate").map_err(|source| CbomError::Certificate {
                key: key.to_owned(),
                source: Box::new(source),
            })?;
        let malformed = |source| CbomError::CertificateDer {
            key: key.to_owned(),
            path: path.to_owned(),
            source,
        };
        let leaf = chain.first().ok_or_else(|| malformed(None))?;
        let facts = der::cert_facts(leaf).map_err(|e| malformed(Some(e)))?;
        let issuer_key = if facts.self_issued {
            Some(facts.key.clone())
        } else {
            match chain.get(1) {
                Some(c) => Some(der::cert_facts(c).map_err(|e| malformed(Some(e)))?.key),
                None => None,
            }
        };
        let key_asset = key_algorithm(&facts.key);
        let sig_asset = signature_algorithm(&facts.signature, issuer_key.as_ref());
        Ok(vec![
            self.add(key_asset, USAGE_KEY, user),
            self.add(sig_asset, USAGE_CERT_SIG, user),
        ])
    }
}

fn push_unique(refs: &mut Vec<String>, r: &str) {
    if !refs.iter().any(|x| x == r) {
        refs.push(r.to_owned());
    }
}

/// The [`SPECS`] name of a TLS signature scheme.
fn scheme_name(scheme: SignatureScheme) -> Option<&'static str> {
    Some(match scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => "ECDSA-P256-SHA256",
        SignatureScheme::ECDSA_NISTP384_SHA384 => "ECDSA-P384-SHA384",
        SignatureScheme::ECDSA_NISTP521_SHA512 => "ECDSA-P521-SHA512",
        SignatureScheme::ED25519 => "Ed25519",
        SignatureScheme::RSA_PSS_SHA256 => "RSASSA-PSS-SHA256",
        SignatureScheme::RSA_PSS_SHA384 => "RSASSA-PSS-SHA384",
        SignatureScheme::RSA_PSS_SHA512 => "RSASSA-PSS-SHA512",
        SignatureScheme::RSA_PKCS1_SHA256 => "RSASSA-PKCS1-v1_5-SHA256",
        SignatureScheme::RSA_PKCS1_SHA384 => "RSASSA-PKCS1-v1_5-SHA384",
        SignatureScheme::RSA_PKCS1_SHA512 => "RSASSA-PKCS1-v1_5-SHA512",
        SignatureScheme::ML_DSA_44 => "ML-DSA-44",
        SignatureScheme::ML_DSA_65 => "ML-DSA-65",
        SignatureScheme::ML_DSA_87 => "ML-DSA-87",
        _ => return None,
    })
}

fn spec_asset(name: &str) -> Option<Asset> {
    SPECS.iter().find(|s| s.name == name).map(Asset::from_spec)
}

/// The algorithm a certificate's key signs TLS handshakes with.
fn key_algorithm(key: &der::KeyFacts) -> Asset {
    use der::oid;
    let known = match (key.algorithm.as_slice(), key.curve.as_deref()) {
        (oid::EC_PUBLIC_KEY, Some(oid::P256)) => spec_asset("ECDSA-P256-SHA256"),
        (oid::EC_PUBLIC_KEY, Some(oid::P384)) => spec_asset("ECDSA-P384-SHA384"),
        (oid::EC_PUBLIC_KEY, Some(oid::P521)) => spec_asset("ECDSA-P521-SHA512"),
        (oid::ED25519, _) => spec_asset("Ed25519"),
        (oid::ML_DSA_44, _) => spec_asset("ML-DSA-44"),
        (oid::ML_DSA_65, _) => spec_asset("ML-DSA-65"),
        (oid::ML_DSA_87, _) => spec_asset("ML-DSA-87"),
        _ => None,
    };
    if let Some(asset) = known {
        return asset;
    }
    if key.algorithm == oid::RSA_ENCRYPTION {
        let bits = key.rsa_bits.unwrap_or(0);
        let mut asset = Asset::other(format!("RSASSA-PSS (RSA-{bits})"), "signature", SIG);
        asset.parameter_set = Some(bits.to_string());
        asset.classical = Some(rsa_security(bits));
        asset.quantum = Some(0);
        asset.oid = Some("1.2.840.113549.1.1.10".into());
        return asset;
    }
    let dotted = der::dotted(&key.algorithm);
    let mut asset = Asset::other(format!("public key {dotted}"), "signature", SIG);
    asset.oid = Some(dotted);
    asset
}

/// The algorithm of a certificate's own signature; the issuer's key, when known, gives the curve.
fn signature_algorithm(sig: &[u8], issuer: Option<&der::KeyFacts>) -> Asset {
    use der::oid;
    let simple = match sig {
        oid::ED25519 => Some("Ed25519"),
        oid::ML_DSA_44 => Some("ML-DSA-44"),
        oid::ML_DSA_65 => Some("ML-DSA-65"),
        oid::ML_DSA_87 => Some("ML-DSA-87"),
        oid::SHA256_WITH_RSA => Some("RSASSA-PKCS1-v1_5-SHA256"),
        oid::SHA384_WITH_RSA => Some("RSASSA-PKCS1-v1_5-SHA384"),
        oid::SHA512_WITH_RSA => Some("RSASSA-PKCS1-v1_5-SHA512"),
        _ => None,
    };
    if let Some(asset) = simple.and_then(spec_asset) {
        return asset;
    }
    let hash = match sig {
        oid::ECDSA_SHA256 => Some(("SHA256", 128)),
        oid::ECDSA_SHA384 => Some(("SHA384", 192)),
        oid::ECDSA_SHA512 => Some(("SHA512", 256)),
        _ => None,
    };
    let dotted = der::dotted(sig);
    let Some((hash, hash_bits)) = hash else {
        let name = if sig == oid::RSASSA_PSS {
            "RSASSA-PSS".to_owned()
        } else {
            format!("signature {dotted}")
        };
        let mut asset = Asset::other(name, "signature", SIG);
        asset.oid = Some(dotted);
        return asset;
    };
    let curve = issuer.and_then(|k| match k.curve.as_deref() {
        Some(oid::P256) => Some(("P256", "secp256r1", 128)),
        Some(oid::P384) => Some(("P384", "secp384r1", 192)),
        Some(oid::P521) => Some(("P521", "secp521r1", 256)),
        _ => None,
    });
    match curve {
        Some((short, curve, bits)) => {
            let name = format!("ECDSA-{short}-{hash}");
            spec_asset(&name).unwrap_or_else(|| {
                let mut asset = Asset::other(name, "signature", SIG);
                asset.curve = Some(curve);
                asset.classical = Some(bits.min(hash_bits));
                asset.quantum = Some(0);
                asset.oid = Some(dotted);
                asset
            })
        }
        None => {
            let mut asset = Asset::other(format!("ECDSA-{hash}"), "signature", SIG);
            asset.quantum = Some(0);
            asset.oid = Some(dotted);
            asset
        }
    }
}

/// Classical strength of RSA by modulus size (NIST SP 800-57 part 1, table 2).
fn rsa_security(bits: usize) -> u16 {
    match bits {
        15360.. => 256,
        7680.. => 192,
        3072.. => 128,
        2048.. => 112,
        _ => 80,
    }
}

/// A UUIDv8 (RFC 9562 section 5.8) from the first 16 bytes of `hash`.
fn uuid_v8(hash: &[u8]) -> String {
    let mut b = [0u8; 16];
    for (dst, src) in b.iter_mut().zip(hash) {
        *dst = *src;
    }
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian calendar, UTC).
fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Days since 0000-03-01, so that leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// A certificate's algorithms, as [`x509`] reads them.
mod der {
    use std::borrow::Cow;

    use x509_parser::asn1_rs::{FromDer, Oid, Tag};
    use x509_parser::error::X509Error;
    use x509_parser::public_key::RSAPublicKey;

    use crate::keys::x509::{self, CertError};

    /// OID contents (without tag and length).
    pub(super) mod oid {
        pub(crate) const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        pub(crate) const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        pub(crate) const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
        pub(crate) const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
        pub(crate) const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
        pub(crate) const RSA_ENCRYPTION: &[u8] =
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        pub(crate) const RSASSA_PSS: &[u8] =
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
        pub(crate) const SHA256_WITH_RSA: &[u8] =
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
        pub(crate) const SHA384_WITH_RSA: &[u8] =
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
        pub(crate) const SHA512_WITH_RSA: &[u8] =
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
        pub(crate) const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        pub(crate) const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        pub(crate) const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
        pub(crate) const ML_DSA_44: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x11];
        pub(crate) const ML_DSA_65: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x12];
        pub(crate) const ML_DSA_87: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x13];
    }

    /// A SubjectPublicKeyInfo's algorithm.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(super) struct KeyFacts {
        /// Algorithm OID contents.
        pub algorithm: Vec<u8>,
        /// Named-curve OID contents, for EC keys.
        pub curve: Option<Vec<u8>>,
        /// Modulus size, for RSA keys.
        pub rsa_bits: Option<usize>,
    }

    /// What a certificate says about its algorithms.
    pub(super) struct CertFacts {
        /// Its subject key.
        pub key: KeyFacts,
        /// Its signature algorithm OID contents.
        pub signature: Vec<u8>,
        /// Issuer equals subject.
        pub self_issued: bool,
    }

    /// Reads a DER certificate.
    pub(super) fn cert_facts(der: &[u8]) -> Result<CertFacts, CertError> {
        let cert = x509::parse(der)?;
        let tbs = &cert.tbs_certificate;
        let spki = &tbs.subject_pki;
        let algorithm = spki.algorithm.algorithm.as_bytes();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .filter(|p| p.tag() == Tag::Oid)
            .map(|p| p.data.to_vec());
        let rsa_bits = if algorithm == oid::RSA_ENCRYPTION {
            let spki_error = || CertError::Malformed {
                source: X509Error::InvalidSPKI,
            };
            let (_, rsa) =
                RSAPublicKey::from_der(&spki.subject_public_key.data).map_err(|_| spki_error())?;
            let start = rsa
                .modulus
                .iter()
                .position(|&b| b != 0)
                .ok_or_else(spki_error)?;
            let modulus = &rsa.modulus[start..];
            Some(modulus.len() * 8 - modulus[0].leading_zeros() as usize)
        } else {
            None
        };
        Ok(CertFacts {
            key: KeyFacts {
                algorithm: algorithm.to_vec(),
                curve,
                rsa_bits,
            },
            signature: cert.signature_algorithm.algorithm.as_bytes().to_vec(),
            self_issued: tbs.issuer.as_raw() == tbs.subject.as_raw(),
        })
    }

    /// Dotted-decimal form of OID contents.
    pub(super) fn dotted(oid: &[u8]) -> String {
        Oid::new(Cow::Borrowed(oid)).to_id_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_group_and_suite_algorithm_has_a_spec() {
        for g in KNOWN_GROUPS {
            assert!(SPECS.iter().any(|s| s.name == g.name), "{}", g.name);
        }
        for s in pqgate_agility::SUITES {
            let version = if s.tls12 { "1.2" } else { "1.3" };
            let algs = suite_algorithms(s, version);
            assert!(algs.len() >= 2, "{}", s.name);
            for (name, _) in algs {
                assert!(SPECS.iter().any(|x| x.name == name), "{}: {name}", s.name);
            }
        }
        let mut names: Vec<_> = SPECS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SPECS.len(), "duplicate spec names");
    }

    #[test]
    fn every_verification_scheme_has_a_name() {
        let schemes = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes();
        for scheme in schemes {
            let name = scheme_name(scheme).unwrap_or_else(|| panic!("{scheme:?}"));
            assert!(SPECS.iter().any(|s| s.name == name), "{name}");
        }
    }

    #[test]
    fn dates_and_uuids() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        let id = uuid_v8(&[0xff; 32]);
        assert_eq!(id, "ffffffff-ffff-8fff-bfff-ffffffffffff");
    }

    #[test]
    fn suite_names_follow_iana() {
        assert_eq!(
            iana_suite_name("TLS13_AES_256_GCM_SHA384"),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(iana_suite_name("TLS_SM4_GCM_SM3"), "TLS_SM4_GCM_SM3");
    }

    #[test]
    fn oids_print_dotted() {
        assert_eq!(der::dotted(der::oid::P256), "1.2.840.10045.3.1.7");
        assert_eq!(der::dotted(der::oid::ML_DSA_65), "2.16.840.1.101.3.4.3.18");
        assert_eq!(der::dotted(der::oid::ED25519), "1.3.101.112");
    }

    #[test]
    fn generated_certificates_are_named() {
        for (alg, key_name, sig_name) in [
            (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                "ECDSA-P256-SHA256",
                "ECDSA-P256-SHA256",
            ),
            (
                &rcgen::PKCS_ECDSA_P384_SHA384,
                "ECDSA-P384-SHA384",
                "ECDSA-P384-SHA384",
            ),
            (&rcgen::PKCS_ED25519, "Ed25519", "Ed25519"),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let facts = der::cert_facts(cert.der()).unwrap();
            assert!(facts.self_issued);
            assert_eq!(key_algorithm(&facts.key).name, key_name);
            assert_eq!(
                signature_algorithm(&facts.signature, Some(&facts.key)).name,
                sig_name
            );
        }
        assert!(der::cert_facts(&[0x30, 0x03, 0x30, 0x01]).is_err());
    }

    #[test]
    fn every_keygen_algorithm_and_rsa_are_named() {
        use crate::keys::tls::{self, KeyAlg};
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        for alg in KeyAlg::ALL {
            let (signer, _) = tls::generate(alg).unwrap();
            let pem = tls::self_signed(&signer, &["a.test".into()], now, 30).unwrap();
            let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes());
            let der: rustls_pki_types::CertificateDer<'_> = der.unwrap();
            let facts = der::cert_facts(&der).unwrap();
            let name = match alg {
                KeyAlg::EcdsaP256 => "ECDSA-P256-SHA256",
                KeyAlg::EcdsaP384 => "ECDSA-P384-SHA384",
                KeyAlg::Ed25519 => "Ed25519",
                KeyAlg::MlDsa44 => "ML-DSA-44",
                KeyAlg::MlDsa65 => "ML-DSA-65",
                KeyAlg::MlDsa87 => "ML-DSA-87",
            };
            assert_eq!(key_algorithm(&facts.key).name, name, "{alg}");
            assert_eq!(
                signature_algorithm(&facts.signature, Some(&facts.key)).name,
                name,
                "{alg}"
            );
        }
        use aws_lc_rs::encoding::AsDer;
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&rsa).unwrap();
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &pkcs8.as_ref().to_vec().into(),
            &rcgen::PKCS_RSA_SHA256,
        )
        .unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let facts = der::cert_facts(cert.der()).unwrap();
        assert_eq!(facts.key.rsa_bits, Some(2048));
        let asset = key_algorithm(&facts.key);
        assert_eq!(asset.name, "RSASSA-PSS (RSA-2048)");
        assert_eq!(asset.classical, Some(112));
        assert_eq!(
            signature_algorithm(&facts.signature, Some(&facts.key)).name,
            "RSASSA-PKCS1-v1_5-SHA256"
        );
    }
}
