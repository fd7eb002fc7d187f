//! `pqgate crypto cbom`: the CycloneDX 1.6 CBOM of the embedded default config and of a
//! hybrid-preferred config with its own certificate, parsed and checked for structure and
//! content.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `pqgate crypto cbom [-c config]` with a pinned timestamp and an empty state directory;
/// (success, stdout, stderr).
fn cbom(config: Option<&Path>, state: &Path, epoch: &str) -> (bool, String, String) {
    let mut cmd = Command::new(support::pqgate_bin());
    cmd.args(["crypto", "cbom"])
        .env("STATE_DIRECTORY", state)
        .env("SOURCE_DATE_EPOCH", epoch);
    if let Some(c) = config {
        cmd.arg("-c").arg(c);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn parse(config: Option<&Path>, state: &Path) -> (Value, String) {
    let (ok, json, err) = cbom(config, state, "1700000000");
    assert!(ok, "pqgate crypto cbom failed: {err}");
    (serde_json::from_str(&json).unwrap(), json)
}

fn components(bom: &Value) -> &Vec<Value> {
    bom["components"].as_array().unwrap()
}

fn find<'a>(bom: &'a Value, name: &str) -> Option<&'a Value> {
    components(bom).iter().find(|c| c["name"] == name)
}

fn property<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
}

/// What every CBOM must satisfy, whatever the config.
fn check_structure(bom: &Value) {
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.6");
    assert_eq!(bom["version"], 1);
    let serial = bom["serialNumber"].as_str().unwrap();
    let uuid = serial.strip_prefix("urn:uuid:").unwrap();
    let groups: Vec<_> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{serial}");
    assert!(
        uuid.chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(&uuid[14..15], "8", "UUIDv8: {serial}");
    assert_eq!(bom["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(bom["metadata"]["component"]["name"], "pqgate");
    assert_eq!(bom["metadata"]["tools"]["components"][0]["name"], "pqgate");

    let mut refs = HashSet::new();
    for c in components(bom) {
        assert_eq!(c["type"], "cryptographic-asset", "{c}");
        let bom_ref = c["bom-ref"].as_str().unwrap();
        assert!(
            refs.insert(bom_ref.to_owned()),
            "duplicate bom-ref {bom_ref}"
        );
        let crypto = c["cryptoProperties"]
            .as_object()
            .unwrap_or_else(|| panic!("{c}"));
        match crypto["assetType"].as_str().unwrap() {
            "algorithm" => {
                let alg = &crypto["algorithmProperties"];
                assert!(alg["primitive"].is_string(), "{c}");
                assert_eq!(alg["executionEnvironment"], "software-plain-ram");
                assert_eq!(alg["certificationLevel"][0], "none");
                let status = property(c, "pqgate:status").unwrap();
                assert!(
                    ["enabled", "not-self-tested"].contains(&status),
                    "{bom_ref}: {status}"
                );
            }
            "protocol" => assert_eq!(crypto["protocolProperties"]["type"], "tls"),
            other => panic!("unexpected assetType {other}"),
        }
    }
    // Every reference points at a component.
    for c in components(bom) {
        let protocol = &c["cryptoProperties"]["protocolProperties"];
        if protocol.is_null() {
            continue;
        }
        for r in protocol["cryptoRefArray"].as_array().unwrap() {
            assert!(refs.contains(r.as_str().unwrap()), "dangling {r}");
        }
        for s in protocol["cipherSuites"].as_array().unwrap() {
            for r in s["algorithms"].as_array().unwrap() {
                assert!(refs.contains(r.as_str().unwrap()), "dangling {r}");
            }
        }
    }
    for d in bom["dependencies"].as_array().unwrap() {
        for r in d["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(r.as_str().unwrap()), "dangling {r}");
        }
    }
}

fn check_hybrid_group(bom: &Value) {
    let hybrid = find(bom, "X25519MLKEM768").expect("X25519MLKEM768 listed");
    let alg = &hybrid["cryptoProperties"]["algorithmProperties"];
    assert!(["kem", "key-agree"].contains(&alg["primitive"].as_str().unwrap()));
    assert!(alg["nistQuantumSecurityLevel"].as_u64().unwrap() > 0);
    assert_eq!(property(hybrid, "pqgate:status"), Some("enabled"));
    assert_eq!(property(hybrid, "pqgate:iana-code-point"), Some("0x11ec"));
}

fn tls13(bom: &Value) -> &Value {
    let p = find(bom, "TLS 1.3").expect("TLS 1.3 protocol");
    assert_eq!(p["cryptoProperties"]["assetType"], "protocol");
    &p["cryptoProperties"]["protocolProperties"]
}

#[test]
fn default_config_cbom_lists_pq_groups_suites_and_the_self_signed_key() {
    let state = tempfile::tempdir().unwrap();
    let (bom, text) = parse(None, state.path());
    check_structure(&bom);
    check_hybrid_group(&bom);
    assert!(find(&bom, "MLKEM1024").is_some());
    assert!(
        find(&bom, "X25519").is_none(),
        "hybrid-required admits no classical group"
    );
    assert!(find(&bom, "TLS 1.2").is_none());
    let protocol = tls13(&bom);
    assert_eq!(protocol["version"], "1.3");
    let suites = protocol["cipherSuites"].as_array().unwrap();
    let aes256 = suites
        .iter()
        .find(|s| s["name"] == "TLS_AES_256_GCM_SHA384")
        .unwrap();
    assert_eq!(aes256["identifiers"], serde_json::json!(["0x13", "0x02"]));
    assert!(
        aes256["algorithms"]
            .as_array()
            .unwrap()
            .contains(&"crypto/algorithm/AES-256-GCM".into())
    );
    let aes = find(&bom, "AES-256-GCM").unwrap();
    assert_eq!(
        aes["cryptoProperties"]["algorithmProperties"]["primitive"],
        "ae"
    );
    assert_eq!(aes["cryptoProperties"]["oid"], "2.16.840.1.101.3.4.1.46");
    // The generated certificate is ECDSA P-256.
    let ecdsa = find(&bom, "ECDSA-P256-SHA256").unwrap();
    assert!(
        property(ecdsa, "pqgate:usage")
            .unwrap()
            .contains("certificate key")
    );
    assert_eq!(property(ecdsa, "pqgate:used-by"), Some("listener:default"));
    // Deterministic for a pinned timestamp.
    let (_, again) = parse(None, state.path());
    assert_eq!(text, again);
    let (_, later, _) = cbom(None, state.path(), "1700000001");
    assert_ne!(
        serde_json::from_str::<Value>(&later).unwrap()["serialNumber"],
        bom["serialNumber"]
    );
}

#[test]
fn hybrid_preferred_listener_adds_classical_groups_tls12_and_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["gw.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let config = dir.path().join("pqgate.toml");
    std::fs::write(
        &config,
        r#"
[admin]
enabled = false

[[listener]]
name = "edge"
listen = "127.0.0.1:18443"
backend = "127.0.0.1:18080"
policy = "hybrid-preferred"
tls12 = true
cert = "cert.pem"
key = "key.pem"

[listener.client_auth]
ca = "cert.pem"

[[connector]]
name = "uplink"
listen = "127.0.0.1:17000"
remote = "gw.test:8443"
policy = "hybrid-required"
ca = "cert.pem"
"#,
    )
    .unwrap();
    let (bom, _) = parse(Some(&config), dir.path());
    check_structure(&bom);
    check_hybrid_group(&bom);
    let x25519 = find(&bom, "X25519").expect("hybrid-preferred admits X25519");
    let alg = &x25519["cryptoProperties"]["algorithmProperties"];
    assert_eq!(alg["primitive"], "key-agree");
    assert_eq!(alg["nistQuantumSecurityLevel"], 0);
    assert_eq!(property(x25519, "pqgate:used-by"), Some("listener:edge"));
    assert_eq!(
        property(find(&bom, "X25519MLKEM768").unwrap(), "pqgate:used-by"),
        Some("listener:edge, connector:uplink")
    );
    // The P-384 certificate, read from its file.
    let p384 = find(&bom, "ECDSA-P384-SHA384").unwrap();
    let usage = property(p384, "pqgate:usage").unwrap();
    assert!(usage.contains("certificate key") && usage.contains("certificate-signature"));
    assert_eq!(p384["cryptoProperties"]["oid"], "1.2.840.10045.4.3.3");
    // Peer certificates: rustls's verification schemes, marked as accepted, not as in use.
    let mldsa = find(&bom, "ML-DSA-65").unwrap();
    assert!(
        property(mldsa, "pqgate:usage")
            .unwrap()
            .contains("accepted if the peer")
    );
    // TLS 1.2 is on for the listener: its protocol lists classical groups only.
    let tls12 = find(&bom, "TLS 1.2").expect("TLS 1.2 protocol");
    let refs = tls12["cryptoProperties"]["protocolProperties"]["cryptoRefArray"]
        .as_array()
        .unwrap();
    assert!(refs.contains(&"crypto/algorithm/X25519".into()));
    assert!(!refs.contains(&"crypto/algorithm/X25519MLKEM768".into()));
    assert!(
        tls13(&bom)["cryptoRefArray"]
            .as_array()
            .unwrap()
            .contains(&"crypto/algorithm/X25519MLKEM768".into())
    );
}

#[test]
fn cbom_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = cbom(Some(&dir.path().join("missing.toml")), dir.path(), "0");
    assert!(!ok && err.contains("cannot read config file"), "{err}");
    let (ok, _, err) = cbom(None, dir.path(), "yesterday");
    assert!(!ok && err.contains("SOURCE_DATE_EPOCH"), "{err}");
}
