//! The layout rules the compiler cannot see on its own, checked over the source tree: `unsafe`
//! only in the modules allowed to hold it (and each crate root denying it elsewhere), the
//! sans-IO core free of the agility `Registry`, and the daemon's top level holding only its
//! entry points.

use std::fs;
use std::path::{Path, PathBuf};

/// Where `unsafe` code may stand: the daemon's syscall module, the plugin loader, and the SM4
/// example plugin's C ABI exports.
const UNSAFE_ALLOWED: &[&str] = &[
    "gateway/src/net/",
    "gateway/agility/src/plugin/loader.rs",
    "gateway/plugins/sm4/src/abi.rs",
];

/// Each crate root and the lint that fences `unsafe` in it.
const CRATE_ROOTS: &[(&str, &str)] = &[
    ("gateway/src/lib.rs", "#![deny(unsafe_code)]"),
    ("gateway/core/src/lib.rs", "#![forbid(unsafe_code)]"),
    ("gateway/agility/src/lib.rs", "#![deny(unsafe_code)]"),
    ("gateway/plugins/sm4/src/lib.rs", "#![deny(unsafe_code)]"),
    ("tests/support/src/lib.rs", "#![forbid(unsafe_code)]"),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`, as paths relative to the repository.
fn rust_files(dir: &str) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("below the repo");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let root = repo();
    let mut out = Vec::new();
    walk(&root, &root.join(dir), &mut out);
    out.sort();
    out
}

/// The code of a line: what stands before a `//` comment (string contents are kept; none of
/// the patterns below occurs inside a string literal in this tree).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Lines (1-based) of `text` that hold unsafe code or lift the lint.
fn unsafe_lines(text: &str) -> Vec<usize> {
    let words = [
        "unsafe {",
        "unsafe fn",
        "unsafe impl",
        "unsafe extern",
        "allow(unsafe_code)",
    ];
    text.lines()
        .enumerate()
        .filter(|(_, l)| words.iter().any(|w| code(l).contains(w)))
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn unsafe_code_stands_only_where_it_is_allowed() {
    let mut stray = Vec::new();
    // Test code that calls the plugin C ABI (gateway/plugins/sm4/tests) needs unsafe by nature.
    for dir in [
        "gateway/src",
        "gateway/core/src",
        "gateway/agility/src",
        "gateway/plugins/sm4/src",
        "tests/support/src",
    ] {
        for file in rust_files(dir) {
            let allowed = UNSAFE_ALLOWED.iter().any(|a| file.starts_with(a));
            // A crate root may lift the lint for exactly the allowed module below it.
            let is_root = CRATE_ROOTS.iter().any(|(root, _)| *root == file);
            let text = fs::read_to_string(repo().join(&file)).expect("read");
            for line in unsafe_lines(&text) {
                let lifts_for_allowed_module = is_root && {
                    let next = text.lines().nth(line).unwrap_or_default();
                    next.contains("mod net;") || next.contains("mod abi;")
                };
                if !allowed && !lifts_for_allowed_module {
                    stray.push(format!("{file}:{line}"));
                }
            }
        }
    }
    assert!(
        stray.is_empty(),
        "unsafe outside {UNSAFE_ALLOWED:?}: {stray:?}"
    );
}

#[test]
fn every_crate_root_fences_unsafe() {
    for (root, lint) in CRATE_ROOTS {
        let text = fs::read_to_string(repo().join(root)).expect("read");
        assert!(
            text.lines().any(|l| l.trim() == *lint),
            "{root} lacks {lint}"
        );
    }
}

#[test]
fn the_fence_check_sees_unsafe_code() {
    assert_eq!(
        unsafe_lines("fn a() {\n    let x = unsafe { f() };\n}\n"),
        [2]
    );
    assert_eq!(
        unsafe_lines("// SAFETY: unsafe { in a comment }\n"),
        Vec::<usize>::new()
    );
    assert_eq!(unsafe_lines("#[allow(unsafe_code)]\nmod x;\n"), [1]);
}

#[test]
fn the_sans_io_core_does_not_use_the_registry() {
    // Tests may power on a registry to check the core against real algorithms; the core's
    // code takes values and traits, never the registry.
    let offenders: Vec<String> = rust_files("gateway/core/src")
        .into_iter()
        .filter(|f| !f.ends_with("_tests.rs") && !f.ends_with("/tests.rs"))
        .filter(|f| {
            let text = fs::read_to_string(repo().join(f)).expect("read");
            let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
            before_tests.lines().any(|l| code(l).contains("Registry"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "core code naming Registry: {offenders:?}"
    );
}

#[test]
fn the_daemon_top_level_holds_only_its_entry_points() {
    let mut loose: Vec<String> = fs::read_dir(repo().join("gateway/src"))
        .expect("read_dir")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    loose.sort();
    assert_eq!(loose, ["lib.rs", "main.rs"]);
}
