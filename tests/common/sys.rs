//! System helpers for the tests that drive real peers: tool presence (a skip, or a failure
//! when REQUIRE_INTEROP_TOOLS is set), root, bounded commands, WireGuard keys from `wg`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("REQUIRE_INTEROP_TOOLS").is_none(),
            "{tool} is required (REQUIRE_INTEROP_TOOLS is set) but not installed"
        );
        eprintln!("SKIPPED: {tool} is not installed (tests/run-all.sh installs it)");
    }
    found
}

pub fn is_root() -> bool {
    // The effective uid is in /proc/self/status ("Uid: real effective ...").
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Runs a command under coreutils `timeout`, so it can never hang the test.
pub fn run(limit_s: u32, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "2", &limit_s.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"))
}

pub fn ok(args: &[&str]) -> String {
    let out = run(20, args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`ok`] over a command line split on whitespace (no argument contains a space).
pub fn okw(line: &str) -> String {
    ok(&line.split_whitespace().collect::<Vec<_>>())
}

pub fn wg_key_pair() -> (String, String) {
    let private = ok(&["wg", "genkey"]).trim().to_owned();
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg pubkey");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(private.as_bytes())
        .expect("writing to wg pubkey");
    let out = child.wait_with_output().expect("wg pubkey output");
    assert!(out.status.success());
    (
        private,
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}
