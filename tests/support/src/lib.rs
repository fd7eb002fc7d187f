//! Fixtures shared by pqgate's integration tests: each `tests/*.rs` binary links this crate
//! (compiled once) instead of carrying its own copy of the lab harnesses, the throwaway PKI,
//! the pqgate processes and the skip-or-fail decision ([`require`]).
//!
//! * [`require`]: whether a test that needs root or outside tools runs, skips or fails;
//! * [`sys`]: bounded commands, root, WireGuard keys from `wg`;
//! * [`pki`]: a CA, leaves and CRLs made with rcgen, written as PEM files;
//! * [`gateway`]: `pqgate run` on loopback, waited for until healthy, killed on drop;
//! * [`daemon`]: `pqgate run` inside a network namespace, its log kept;
//! * [`cli`]: one-shot `pqgate` commands (`check`, `keygen`, ...);
//! * [`tls`]: TLS clients with chosen groups and the `[[listener]]`/`[admin]` TOML;
//! * [`fill`]: deterministic filler bytes, PQ PSK peer entries;
//! * [`backend`]: small TCP backends (echo, tag, hashing) and a deterministic byte stream;
//! * [`netns`]: namespaces, veths, wireguard-go and `pqgate wg up` peers, transfers;
//! * [`lab`]: the WireGuard lab, namespace `a` (pqgate) joined to `b` (and `c`) by veths.

#![forbid(unsafe_code)]

pub mod backend;
pub mod cli;
pub mod daemon;
pub mod fill;
pub mod gateway;
pub mod lab;
pub mod netns;
pub mod pki;
pub mod require;
pub mod sys;
pub mod tls;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use backend::*;
pub use fill::{Xorshift64, pqpsk_peer};
pub use gateway::*;
pub use pki::{Leaf, Pki};
pub use require::{require, require_root, require_tools};
pub use tls::*;

/// The `pqgate` binary cargo built for the running test: next to `deps/`, where the test
/// executable is (what `CARGO_BIN_EXE_pqgate` names in the test crate itself).
pub fn pqgate_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the target directory");
        let bin = dir.join("pqgate");
        assert!(
            bin.exists(),
            "{} missing: run the tests through cargo test (it builds the binary)",
            bin.display()
        );
        bin.into_os_string()
            .into_string()
            .expect("a UTF-8 target path")
    })
}

/// The SM4 plugin library cargo built next to the pqgate binary.
pub fn sm4_plugin() -> PathBuf {
    let lib = Path::new(pqgate_bin())
        .parent()
        .expect("target dir")
        .join("libpqgate_plugin_sm4.so");
    assert!(
        lib.exists(),
        "{} missing: build the workspace first (cargo build --workspace; tests/run-all.sh does)",
        lib.display()
    );
    lib
}
/// A port on 127.0.0.1 that was free a moment ago. Taken below the kernel's ephemeral range
/// (32768 and up), so client sockets of concurrent tests cannot grab it before pqgate binds it,
/// and spread by process id so test binaries do not walk the same sequence.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const BASE: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let seed = std::process::id().wrapping_mul(7_919);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (BASE + seed.wrapping_add(n) % SPAN) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {BASE}..{}", BASE + SPAN);
}
