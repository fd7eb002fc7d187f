//! `pqgate probe` against real pqgate listeners: the group it reports is what the server chose
//! (hybrid when offered, classical when the server only has classical groups), certificates are
//! verified against --ca (and refused under the wrong CA), and --require-pq fails a classical
//! session.

use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn probe(args: &[&str]) -> Output {
    Command::new(support::pqgate_bin())
        .arg("probe")
        .args(args)
        .output()
        .expect("running pqgate probe")
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "probe output is not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn reports_the_hybrid_group_and_verifies_the_certificate() {
    let site = Site::new("main", "server");
    let _gw = site.serve("edge", "builtin:info", "hybrid-required", "");
    let target = site.addr().to_string();
    let ca = site.pki.ca_path("main");

    let out = probe(&[
        &target,
        "--ca",
        path(&ca),
        "--sni",
        "localhost",
        "--json",
        "--require-pq",
    ]);
    assert!(out.status.success(), "{out:?}");
    let r = json(&out);
    assert_eq!(r["group"], "X25519MLKEM768");
    assert_eq!(r["post_quantum"], true);
    assert_eq!(r["protocol"], "TLSv1.3");
    assert_eq!(r["verified"], true);
    assert_eq!(r["server_name"], "localhost");

    // The text form says the same.
    let out = probe(&[&target, "--ca", path(&ca), "--sni", "localhost"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("X25519MLKEM768") && text.contains("post-quantum yes"),
        "{text}"
    );

    // A different CA: the certificate is refused, nothing is reported as negotiated.
    let other_dir = site.dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = Pki::new(&other_dir, "other");
    let out = probe(&[
        &target,
        "--ca",
        path(&other.ca_path("other")),
        "--sni",
        "localhost",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");

    // The name is verified too.
    let out = probe(&[&target, "--ca", path(&ca), "--sni", "wrong.example"]);
    assert!(!out.status.success(), "{out:?}");

    // Without a trust anchor the probe refuses to run; --insecure skips verification only.
    let out = probe(&[&target]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));
    let out = probe(&[&target, "--insecure", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let r = json(&out);
    assert_eq!(r["verified"], false);
    assert_eq!(r["group"], "X25519MLKEM768");
}

#[test]
fn reports_a_classical_group_and_require_pq_fails() {
    let site = Site::new("main", "server");
    // A server that has only X25519: the probe offers the hybrid first and must fall back.
    let _gw = site.serve(
        "edge",
        "builtin:info",
        "hybrid-preferred",
        "profile = \"x25519-only\"\n\n[[profile]]\nname = \"x25519-only\"\n\
         groups = [\"X25519\"]\nsuites = [\"TLS13_AES_128_GCM_SHA256\"]\n",
    );
    let target = site.addr().to_string();

    let out = probe(&[&target, "--insecure", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let r = json(&out);
    assert_eq!(r["group"], "X25519");
    assert_eq!(r["post_quantum"], false);
    assert_eq!(r["suite"], "TLS13_AES_128_GCM_SHA256");

    let out = probe(&[&target, "--insecure", "--require-pq"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not post-quantum"));
}

#[test]
fn a_port_that_does_not_speak_tls_is_an_error() {
    let site = Site::new("main", "server");
    let admin = site.admin;
    let _gw = site.serve("edge", "builtin:info", "hybrid-required", "");
    // The admin endpoint speaks plain HTTP.
    let out = probe(&[&admin.to_string(), "--insecure", "--timeout-secs", "5"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS handshake"));
}
