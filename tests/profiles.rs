//! Profiles: `cnsa2` (ML-KEM-1024, AES-256-GCM, P-384 or ML-DSA-87 certificates),
//! `classical-compat`, and custom `[[profile]]` lists, end to end and in `pqgate check`.

use rustls::crypto::aws_lc_rs::kx_group;
use support::*;

fn check(dir: &std::path::Path, text: &str) -> (bool, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, text).unwrap();
    let (ok, _, stderr) = support::cli::check(&path);
    (ok, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn cnsa2_negotiates_mlkem1024_with_aes256_and_demands_a_p384_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "ca");
    let p256 = pki.server("p256");
    let p384 = pki.issue("p384", &["localhost"], &rcgen::PKCS_ECDSA_P384_SHA384);
    let backend = echo_backend().await;

    let (ok, err) = check(
        dir.path(),
        &(listener_toml("c", 18443, &backend.to_string(), &p256, "hybrid-required")
            + "profile = \"cnsa2\"\n"),
    );
    assert!(
        !ok && err.contains("listener[0].cert") && err.contains("cnsa2"),
        "{err}"
    );

    let (port, admin) = (free_port(), admin_addr());
    let cfg = admin_toml(admin)
        + &listener_toml("cnsa", port, &backend.to_string(), &p384, "hybrid-required")
        + "profile = \"cnsa2\"\n";
    let gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr = ([127, 0, 0, 1], port).into();
    let client = client_config(
        provider_with(&[kx_group::X25519MLKEM768, kx_group::MLKEM1024]),
        pki.roots(),
        None,
    );
    let tls = tls_connect(addr, client, "localhost").await.unwrap();
    let conn = tls.get_ref().1;
    assert_eq!(
        conn.negotiated_key_exchange_group().map(|g| g.name()),
        Some(rustls::NamedGroup::MLKEM1024)
    );
    assert_eq!(
        conn.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
    drop(tls);
    // A hybrid-768 client has no group in common with CNSA 2.0: refused.
    let only_768 = client_config(
        provider_with(&[kx_group::X25519MLKEM768]),
        pki.roots(),
        None,
    );
    assert!(exchange(addr, only_768, "localhost", b"x").await.is_err());
    assert!(gw.wait_log("MLKEM1024", std::time::Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_profile_orders_suites_and_bad_profiles_are_named() {
    let Site { dir, pki, leaf, .. } = Site::new("ca", "srv");
    let backend = echo_backend().await;

    let (ok, err) = check(
        dir.path(),
        &(listener_toml("a", 18443, "h:1", &leaf, "hybrid-required")
            + "profile = \"classical-compat\"\n"),
    );
    assert!(
        !ok && err.contains("listener[0].profile") && err.contains("hybrid-preferred"),
        "{err}"
    );
    let (ok, err) = check(
        dir.path(),
        &("[[profile]]\nname = \"odd\"\ngroups = [\"X25519MLKEM768\"]\nsuites = [\"TLS_NOPE\"]\n\n"
            .to_owned()
            + &listener_toml("a", 18443, "h:1", &leaf, "hybrid-required")
            + "profile = \"odd\"\n"),
    );
    assert!(!ok && err.contains("TLS_NOPE"), "{err}");
    let (ok, err) = check(
        dir.path(),
        &(listener_toml("a", 18443, "h:1", &leaf, "hybrid-required") + "profile = \"missing\"\n"),
    );
    assert!(
        !ok && err.contains("listener[0].profile") && err.contains("unknown profile"),
        "{err}"
    );

    let (port, admin) = (free_port(), admin_addr());
    let cfg = admin_toml(admin)
        + "[[profile]]\nname = \"chacha-first\"\ngroups = [\"SecP256r1MLKEM768\"]\n\
           suites = [\"TLS13_CHACHA20_POLY1305_SHA256\"]\n\n"
        + &listener_toml(
            "custom",
            port,
            &backend.to_string(),
            &leaf,
            "hybrid-required",
        )
        + "profile = \"chacha-first\"\n";
    let _gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let tls = tls_connect(
        ([127, 0, 0, 1], port).into(),
        client_config(hybrid_first(), pki.roots(), None),
        "localhost",
    )
    .await;
    assert!(
        tls.is_err(),
        "X25519MLKEM768/X25519 client must not match a SecP256r1MLKEM768-only profile"
    );
    let client = client_config(
        provider_with(&[kx_group::X25519MLKEM768, kx_group::SECP256R1MLKEM768]),
        pki.roots(),
        None,
    );
    let tls = tls_connect(([127, 0, 0, 1], port).into(), client, "localhost")
        .await
        .unwrap();
    let conn = tls.get_ref().1;
    assert_eq!(
        conn.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
    assert_eq!(
        conn.negotiated_key_exchange_group().map(|g| g.name()),
        Some(rustls::NamedGroup::secp256r1MLKEM768)
    );
}
