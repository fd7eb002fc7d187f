//! `pqgate crypto list` and `pqgate crypto selftest` on a healthy build.

fn pqgate(args: &[&str]) -> (bool, String) {
    let out = support::cli::pqgate(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn selftest_reports_every_test_and_passes() {
    let (ok, report) = pqgate(&["crypto", "selftest"]);
    assert!(ok, "{report}");
    for (algorithm, test) in [
        ("AES-128-GCM", "KAT GCM specification test case 2"),
        ("ChaCha20-Poly1305", "KAT RFC 8439 2.8.2"),
        ("X25519", "KAT RFC 7748 6.1"),
        ("HKDF-SHA256", "KAT RFC 5869 A.1"),
        ("ML-KEM-768", "pairwise encaps/decaps"),
        ("X25519MLKEM768", "pairwise key exchange (rustls)"),
        ("Classic-McEliece-460896", "pairwise encaps/decaps"),
        ("HQC-128", "pairwise encaps/decaps"),
    ] {
        let found = report.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some("PASS") && words.next() == Some(algorithm) && l.ends_with(test)
        });
        assert!(found, "no PASS line for {algorithm} / {test} in\n{report}");
    }
    assert!(report.contains(" 0 failed"), "{report}");
}

#[test]
fn inventory_lists_groups_suites_and_primitives_as_json() {
    let (ok, json) = pqgate(&["crypto", "list", "--json"]);
    assert!(ok);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let find = |name: &str| entries.iter().find(|e| e["name"] == name).cloned().unwrap();
    let hybrid = find("X25519MLKEM768");
    assert_eq!(hybrid["code_point"], 0x11ec);
    assert_eq!(hybrid["post_quantum"], true);
    assert_eq!(hybrid["status"], "enabled");
    assert_eq!(find("X25519")["post_quantum"], false);
    assert_eq!(find("TLS13_AES_128_GCM_SHA256")["kind"], "cipher-suite");
    assert_eq!(find("ML-DSA-65")["kind"], "primitive");
}

#[test]
fn with_a_config_the_inventory_marks_what_no_policy_admits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:18443\"\nbackend = \"h:1\"\nself_signed = true\n",
    )
    .unwrap();
    let (ok, json) = pqgate(&["crypto", "list", "--json", "-c", path.to_str().unwrap()]);
    assert!(ok, "{json}");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let status = |name: &str| {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["status"].clone())
            .unwrap()
    };
    assert_eq!(status("X25519MLKEM768"), "enabled");
    assert_eq!(status("X25519"), "disabled-by-policy");
    assert_eq!(
        status("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        "disabled-by-policy"
    );
    assert_eq!(status("TLS13_AES_128_GCM_SHA256"), "enabled");
}
