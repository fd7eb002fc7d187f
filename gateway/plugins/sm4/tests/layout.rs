//! The `#[repr(C)]` mirrors match `pqgate_plugin.h` field for field: a C compiler reports the
//! header's sizes and offsets, and they must equal Rust's. Skipped (with a note) when no C
//! compiler is installed.

use std::mem::{offset_of, size_of};
use std::process::Command;

use pqgate_plugin_sm4::abi::{AeadKatV1, AeadV1, HashKatV1, HashV1, PluginV1, Tls13SuiteV1};

/// (C expression, Rust value) pairs.
fn expected() -> Vec<(&'static str, usize)> {
    macro_rules! field {
        ($c:literal, $t:ty, $f:ident) => {
            (
                concat!("offsetof(", $c, ", ", stringify!($f), ")"),
                offset_of!($t, $f),
            )
        };
    }
    vec![
        ("sizeof(pqgate_aead_kat_v1)", size_of::<AeadKatV1>()),
        field!("pqgate_aead_kat_v1", AeadKatV1, nonce_len),
        field!("pqgate_aead_kat_v1", AeadKatV1, ciphertext_len),
        ("sizeof(pqgate_aead_v1)", size_of::<AeadV1>()),
        field!("pqgate_aead_v1", AeadV1, key_len),
        field!("pqgate_aead_v1", AeadV1, nonce_len),
        field!("pqgate_aead_v1", AeadV1, tag_len),
        field!("pqgate_aead_v1", AeadV1, key_new),
        field!("pqgate_aead_v1", AeadV1, key_free),
        field!("pqgate_aead_v1", AeadV1, seal),
        field!("pqgate_aead_v1", AeadV1, open),
        field!("pqgate_aead_v1", AeadV1, block_len),
        field!("pqgate_aead_v1", AeadV1, encrypt_block),
        field!("pqgate_aead_v1", AeadV1, kats),
        field!("pqgate_aead_v1", AeadV1, kat_count),
        ("sizeof(pqgate_hash_kat_v1)", size_of::<HashKatV1>()),
        field!("pqgate_hash_kat_v1", HashKatV1, digest),
        field!("pqgate_hash_kat_v1", HashKatV1, digest_len),
        ("sizeof(pqgate_hash_v1)", size_of::<HashV1>()),
        field!("pqgate_hash_v1", HashV1, output_len),
        field!("pqgate_hash_v1", HashV1, block_len),
        field!("pqgate_hash_v1", HashV1, digest),
        field!("pqgate_hash_v1", HashV1, kats),
        field!("pqgate_hash_v1", HashV1, kat_count),
        ("sizeof(pqgate_tls13_suite_v1)", size_of::<Tls13SuiteV1>()),
        field!("pqgate_tls13_suite_v1", Tls13SuiteV1, code_point),
        field!("pqgate_tls13_suite_v1", Tls13SuiteV1, aead),
        field!("pqgate_tls13_suite_v1", Tls13SuiteV1, hash),
        field!("pqgate_tls13_suite_v1", Tls13SuiteV1, max_records_per_key),
        field!("pqgate_tls13_suite_v1", Tls13SuiteV1, max_forgeries),
        field!("pqgate_tls13_suite_v1", Tls13SuiteV1, security_bits),
        ("sizeof(pqgate_plugin_v1)", size_of::<PluginV1>()),
        field!("pqgate_plugin_v1", PluginV1, name),
        field!("pqgate_plugin_v1", PluginV1, version),
        field!("pqgate_plugin_v1", PluginV1, aeads),
        field!("pqgate_plugin_v1", PluginV1, aead_count),
        field!("pqgate_plugin_v1", PluginV1, hashes),
        field!("pqgate_plugin_v1", PluginV1, hash_count),
        field!("pqgate_plugin_v1", PluginV1, suites),
        field!("pqgate_plugin_v1", PluginV1, suite_count),
    ]
}

#[test]
fn mirrors_match_the_c_header() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../../agility/include");
    let dir = std::env::temp_dir().join(format!("pqgate-sm4-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checks = expected();
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"pqgate_plugin.h\"\nint main(void) {\n",
    );
    for (expr, _) in &checks {
        src += &format!("    printf(\"%zu\\n\", (size_t)({expr}));\n");
    }
    src += "    return 0;\n}\n";
    let (c_file, exe) = (dir.join("layout.c"), dir.join("layout"));
    std::fs::write(&c_file, src).unwrap();
    let built = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I", include, "-o"])
        .arg(&exe)
        .arg(&c_file)
        .status();
    match built {
        Err(e) => {
            eprintln!("skipped: no C compiler ({cc}: {e})");
            return;
        }
        Ok(s) => assert!(s.success(), "{cc} failed on the header"),
    }
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let c_values: Vec<usize> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(c_values.len(), checks.len());
    for ((expr, rust), c) in checks.iter().zip(c_values) {
        assert_eq!(*rust, c, "{expr}: Rust {rust}, C {c}");
    }
}
