//! Run-time plugins through the real loader: C plugins compiled here with gcc (a toy AEAD that
//! honours the contract, and broken ones that must each be refused with a clear error), detached
//! signatures, and the SM4-GCM/SM3 plugin carrying TLS_SM4_GCM_SM3 between two pqgate processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use pqgate_agility::Registry;
use pqgate_agility::plugin::{PluginDecl, PluginError, loader};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `tests/plugins/NAME.c` into `dir/NAME.so`.
fn build_c_plugin(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.so"));
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-I"])
        .arg(repo().join("gateway/agility/include"))
        .arg("-o")
        .arg(&out)
        .arg(repo().join(format!("tests/plugins/{name}.c")))
        .status()
        .expect("gcc is needed to build the test plugins (tests/run-all.sh installs it)");
    assert!(status.success(), "gcc failed for {name}.c");
    out
}

/// A registry powered on with the plugin `decl` loaded from `path` alone; asserts the plugin's
/// status carries an error containing `error`.
fn power_on_refusing(path: &Path, decl: PluginDecl, error: &str) -> Registry {
    let registry = Registry::power_on_with(vec![(path.display().to_string(), Ok(decl))]);
    let status = &registry.plugins()[0];
    assert!(
        status.errors.iter().any(|e| e.contains(error)),
        "no {error:?} in {:?}",
        status.errors
    );
    registry
}

#[test]
fn a_contract_honouring_c_plugin_loads_and_its_suite_is_registered() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_c_plugin(dir.path(), "xor_aead");
    let decl = loader::load(&path).unwrap();
    assert!(!decl.aeads.is_empty() && !decl.hashes.is_empty() && !decl.suites.is_empty());
    let suite = decl.suites[0].clone();
    let registry = Registry::power_on_with(vec![(path.display().to_string(), Ok(decl))]);
    let status = &registry.plugins()[0];
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    assert!(status.enabled.contains(&suite.name), "{status:?}");
    assert!(registry.suites().iter().any(|s| s.name == suite.name));
}

#[test]
fn broken_plugins_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let abi = loader::load(&build_c_plugin(dir.path(), "wrong_abi")).unwrap_err();
    assert!(
        matches!(
            abi,
            PluginError::AbiVersion {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{abi}"
    );
    let missing = loader::load(&build_c_plugin(dir.path(), "no_entry")).unwrap_err();
    assert!(
        matches!(missing, PluginError::MissingSymbol { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("pqgate_plugin_v1_entry"));
    let sizes = loader::load(&build_c_plugin(dir.path(), "bad_sizes")).unwrap_err();
    assert!(matches!(sizes, PluginError::Declaration { .. }), "{sizes}");
    let nothing = loader::load(&dir.path().join("absent.so")).unwrap_err();
    assert!(matches!(nothing, PluginError::Load { .. }), "{nothing}");

    // A wrong vector loads, but its AEAD and everything built on it stay disabled.
    let path = build_c_plugin(dir.path(), "wrong_vector");
    let decl = loader::load(&path).unwrap();
    let suites: Vec<String> = decl.suites.iter().map(|s| s.name.clone()).collect();
    let registry = power_on_refusing(&path, decl, "known-answer vector");
    for s in suites {
        assert!(
            !registry.suites().iter().any(|r| r.name == s),
            "{s} enabled"
        );
    }

    // A seal that reports fewer bytes than the contract requires: refused, AEAD disabled.
    let path = build_c_plugin(dir.path(), "short_write");
    let decl = loader::load(&path).unwrap();
    let registry = power_on_refusing(&path, decl, "buffer contract violated");
    assert!(registry.aead("TEST-XOR-TOY-AEAD").is_none());
}

/// `pqgate check -c CONFIG`: (success, stderr).
fn check(config: &Path) -> (bool, String) {
    let (ok, _, stderr) = support::cli::check(config);
    (ok, stderr)
}

#[test]
fn signatures_are_required_when_configured() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let plugin = build_c_plugin(dir.path(), "xor_aead");
    let signer = Ed25519KeyPair::generate().unwrap();
    let spki = signer.public_key().as_der().unwrap();
    std::fs::write(
        dir.path().join("trusted.pem"),
        base64_pem("PUBLIC KEY", spki.as_ref()),
    )
    .unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins]\nrequire_signature = true\ntrusted_keys = [\"trusted.pem\"]\n\n[[plugin]]\npath = \"{}\"\n",
            plugin.display()
        ),
    )
    .unwrap();
    let (ok, err) = check(&config);
    assert!(!ok && err.contains("unsigned"), "{err}");

    let other = Ed25519KeyPair::generate().unwrap();
    let bytes = std::fs::read(&plugin).unwrap();
    let sig_path = PathBuf::from(format!("{}.sig", plugin.display()));
    std::fs::write(&sig_path, other.sign(&bytes).as_ref()).unwrap();
    let (ok, err) = check(&config);
    assert!(!ok && err.contains("does not verify"), "{err}");

    std::fs::write(&sig_path, signer.sign(&bytes).as_ref()).unwrap();
    let (ok, err) = check(&config);
    assert!(ok, "{err}");
}

/// PEM-encodes `der` (RFC 7468), for the trusted key file.
fn base64_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_speak_tls_sm4_gcm_sm3_over_x25519mlkem768_through_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let lib = sm4_plugin();
    let pki = Pki::new(dir.path(), "sm");
    let b_leaf = pki.issue("gw-b", &["gw-b.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = echo_backend().await;
    let (b_port, app_port, admin_a, admin_b) =
        (free_port(), free_port(), admin_addr(), admin_addr());
    let common = format!(
        "[[plugin]]\npath = \"{}\"\n\n[[profile]]\nname = \"sm\"\ngroups = [\"X25519MLKEM768\"]\nsuites = [\"TLS_SM4_GCM_SM3\"]\n\n",
        lib.display()
    );
    let cfg_b = admin_toml(admin_b)
        + &common
        + &listener_toml(
            "sm-in",
            b_port,
            &server.to_string(),
            &b_leaf,
            "hybrid-required",
        )
        + "profile = \"sm\"\n";
    let b = Gateway::start(dir.path(), "gw-b", &cfg_b, admin_b);
    let cfg_a = admin_toml(admin_a)
        + &common
        + &format!(
            "[[connector]]\nname = \"sm-out\"\nlisten = \"127.0.0.1:{app_port}\"\nremote = \"127.0.0.1:{b_port}\"\n\
             server_name = \"gw-b.test\"\nca = \"{}\"\nprofile = \"sm\"\n",
            pki.ca_path("sm").display()
        );
    let a = Gateway::start(dir.path(), "gw-a", &cfg_a, admin_a);

    let mut app = tokio::net::TcpStream::connect(("127.0.0.1", app_port))
        .await
        .unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    app.write_all(&payload).await.unwrap();
    let mut echoed = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(30), app.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert!(echoed == payload, "bytes changed in transit");
    drop(app);
    for gw in [&a, &b] {
        gw.assert_log("TLS_SM4_GCM_SM3", Duration::from_secs(10));
        let m = gw.metrics();
        assert!(
            m.contains("group=\"X25519MLKEM768\",suite=\"TLS_SM4_GCM_SM3\""),
            "{m}"
        );
    }
}
