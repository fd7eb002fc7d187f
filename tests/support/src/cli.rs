//! One-shot `pqgate` commands as an operator runs them (`check`, `keygen`, `ca`, `crypto`, ...):
//! their output, an asserted success with stdout, and a run with text on stdin.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `pqgate ARGS`, stdin from /dev/null; its output.
pub fn pqgate(args: &[&str]) -> Output {
    Command::new(crate::pqgate_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running pqgate")
}

/// `pqgate ARGS` that must succeed; its stdout, trimmed.
pub fn pqgate_ok(args: &[&str]) -> String {
    let out = pqgate(args);
    assert!(
        out.status.success(),
        "pqgate {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `pqgate ARGS` with `input` on stdin, which must succeed; its stdout, trimmed.
pub fn pqgate_stdin(args: &[&str], input: &str) -> String {
    let all: Vec<&str> = [crate::pqgate_bin()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let out = crate::sys::piped(&all, input);
    String::from_utf8_lossy(&out).trim().to_owned()
}

/// `pqgate check -c CONFIG`: (success, stdout, stderr).
pub fn check(config: &Path) -> (bool, String, String) {
    let out = pqgate(&["check", "-c", &config.to_string_lossy()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
