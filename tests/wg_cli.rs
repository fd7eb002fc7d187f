//! `pqgate wg up` on bad input, needing neither root nor WireGuard tools: config errors come
//! back with their line numbers and exit status 1, before any interface is created.

use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "2", "20"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"))
}

/// Config errors come back with their line numbers and exit 1, before anything is created.
#[test]
fn wg_up_reports_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("wgbad0.conf");
    std::fs::write(
        &bad,
        "[Interface]\nListenPort = 70000\n\n[Peer]\nAllowedIPs = 10.0.0.0/33\n",
    )
    .expect("writing");
    let out = run(&[support::pqgate_bin(), "wg", "up", &bad.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 2") && stderr.contains("line 5"),
        "{stderr}"
    );

    let misnamed = dir.path().join("not an interface.conf");
    std::fs::write(&misnamed, "").expect("writing");
    let out = run(&[
        support::pqgate_bin(),
        "wg",
        "up",
        &misnamed.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interface name"));
}
