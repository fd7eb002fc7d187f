//! Whether a test that needs root or outside tools can run here, decided in one place: every
//! need met runs it; a need unmet fails it under REQUIRE_INTEROP_TOOLS (tests/run-all.sh sets
//! it, so a test there never passes by skipping) with a message naming what is missing, and
//! otherwise prints `SKIPPED: TEST needs ...` and tells the caller to return.

use std::process::{Command, Stdio};

use crate::sys::is_root;

/// Whether `tool` is on PATH (no decision: see [`require_tools`]).
pub fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `test` runs: root when `root`, and every tool in `tools` on PATH. A need unmet
/// panics under REQUIRE_INTEROP_TOOLS and otherwise prints why the test skips; false then.
pub fn require(test: &str, root: bool, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if root && !is_root() {
        missing.push("root (ip netns, /dev/net/tun, nft, capabilities)".to_owned());
    }
    for tool in tools.iter().filter(|t| !on_path(t)) {
        missing.push(format!("`{tool}` (tests/run-all.sh installs it)"));
    }
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    assert!(
        std::env::var_os("REQUIRE_INTEROP_TOOLS").is_none(),
        "{test} cannot run: it needs {missing} (REQUIRE_INTEROP_TOOLS is set, so this fails \
         instead of skipping)"
    );
    eprintln!("SKIPPED: {test} needs {missing}");
    false
}

/// [`require`] of root and `tools`.
pub fn require_root(test: &str, tools: &[&str]) -> bool {
    require(test, true, tools)
}

/// [`require`] of `tools` only.
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    require(test, false, tools)
}
