//! System helpers for the tests that drive real peers: root, commands bounded by coreutils
//! `timeout` that must succeed (or return their output), WireGuard keys from the stock `wg`.
//! Whether a test may run at all is [`crate::require`]'s decision, not this module's.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Whether the effective user is root.
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

/// [`run`] (20 s) that must succeed; its stdout.
pub fn ok(args: &[&str]) -> String {
    stdout_of(&format!("{args:?}"), run(20, args))
}

/// The stdout of the command `what` that gave `out`; fails with its status and stderr unless
/// it succeeded.
pub fn stdout_of(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`ok`] over a command line split on whitespace (no argument contains a space).
pub fn okw(line: &str) -> String {
    ok(&line.split_whitespace().collect::<Vec<_>>())
}

/// A fresh WireGuard key pair from `wg genkey` and `wg pubkey`: (private, public), base64.
pub fn wg_key_pair() -> (String, String) {
    let private = ok(&["wg", "genkey"]).trim().to_owned();
    let public = wg_pubkey(&private);
    (private, public)
}

/// `wg pubkey` of a base64 private key.
pub fn wg_pubkey(private: &str) -> String {
    String::from_utf8_lossy(&piped(&["wg", "pubkey"], private))
        .trim()
        .to_owned()
}

/// Runs `args` with `input` on stdin and asserts it succeeds; its stdout.
pub fn piped(args: &[&str], input: &str) -> Vec<u8> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("writing to {args:?}: {e}"));
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "{args:?}: {}", out.status);
    out.stdout
}
