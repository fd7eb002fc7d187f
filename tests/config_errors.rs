//! `pqgate check` and `pqgate run` on broken configs: exit status 1 and a message naming the key
//! and the file, for every broken thing at once.

use std::path::Path;
use std::process::Command;

use support::cli::check;
use support::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_valid_config_prints_the_effective_config() {
    let Site {
        dir, pki: _, leaf, ..
    } = Site::new("ca", "srv");
    let p = write(
        dir.path(),
        "ok.toml",
        &listener_toml("ok", 18443, "127.0.0.1:80", &leaf, "hybrid-required"),
    );
    let (ok, stdout, stderr) = check(&p);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("policy = \"hybrid-required\""), "{stdout}");
    assert!(stdout.contains("max_connections = 4096"), "{stdout}");
}

#[test]
fn every_broken_thing_is_named_with_key_and_file() {
    let Site { dir, pki, leaf, .. } = Site::new("ca", "srv");
    let other = pki.server("other");
    let cases: Vec<(&str, String, &str)> = vec![
        ("syntax", "[[listener]\nname = 1".into(), "(file)"),
        (
            "unknown-key",
            format!(
                "{}colour = \"red\"\n",
                listener_toml("a", 1443, "h:1", &leaf, "hybrid-required")
            ),
            "listener[0]",
        ),
        (
            "bad-policy",
            listener_toml("a", 1443, "h:1", &leaf, "quantum-maybe"),
            "listener[0].policy",
        ),
        (
            "bad-address",
            listener_toml("a", 1443, "h:1", &leaf, "hybrid-required")
                .replace("127.0.0.1:1443", "localhost"),
            "listener[0].listen",
        ),
        (
            "bad-backend",
            listener_toml("a", 1443, "nohost", &leaf, "hybrid-required"),
            "listener[0].backend",
        ),
        (
            "missing-cert",
            listener_toml("a", 1443, "h:1", &leaf, "hybrid-required")
                .replace("srv-cert.pem", "missing.pem"),
            "listener[0].cert",
        ),
        (
            "key-mismatch",
            listener_toml("a", 1443, "h:1", &leaf, "hybrid-required")
                .replace("srv-key.pem", "other-key.pem"),
            "listener[0].cert",
        ),
        (
            "tls12-with-hybrid-required",
            format!(
                "{}tls12 = true\n",
                listener_toml("a", 1443, "h:1", &leaf, "hybrid-required")
            ),
            "listener[0].tls12",
        ),
    ];
    let _ = other;
    for (name, text, key) in cases {
        let p = write(dir.path(), &format!("{name}.toml"), &text);
        let (ok, _, stderr) = check(&p);
        assert!(!ok, "{name}: check accepted a broken config");
        assert!(
            stderr.contains(key),
            "{name}: error does not name {key}:\n{stderr}"
        );
        assert!(
            stderr.contains(&p.display().to_string()),
            "{name}: error does not name the file:\n{stderr}"
        );
    }
}

#[test]
fn a_log_level_that_would_silence_every_line_is_refused() {
    // The tracing filter reads a bare word as a target: "warning" used to pass `check` and
    // turn off every log line, the per-connection audit line included.
    let dir = tempfile::tempdir().unwrap();
    for (level, hint) in [
        ("warning", "did you mean \"warn\"?"),
        ("bogus", "is no level"),
    ] {
        let p = write(
            dir.path(),
            &format!("{level}.toml"),
            &format!("[log]\nlevel = \"{level}\"\n"),
        );
        let (ok, _, stderr) = check(&p);
        assert!(!ok, "{level}: accepted");
        assert!(
            stderr.contains("log.level"),
            "{level}: key not named:\n{stderr}"
        );
        assert!(stderr.contains(hint), "{level}:\n{stderr}");
        assert!(
            stderr.contains(&p.display().to_string()),
            "{level}: file not named:\n{stderr}"
        );
    }
    let p = write(
        dir.path(),
        "ok.toml",
        "[log]\nlevel = \"warn,pqgate=debug\"\n",
    );
    let (ok, _, stderr) = check(&p);
    assert!(ok, "{stderr}");
}

#[test]
fn several_errors_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[admin]\nlisten = \"nope\"\n\n[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\n\
                backend = \"h:1\"\npolicy = \"bogus\"\nself_signed = true\n\n\
                [[connector]]\nname = \"c\"\nlisten = \"127.0.0.1:2\"\nremote = \"h:1\"\n";
    let p = write(dir.path(), "many.toml", text);
    let (ok, _, stderr) = check(&p);
    assert!(!ok);
    for key in ["admin.listen", "listener[0].policy"] {
        assert!(stderr.contains(key), "missing {key}:\n{stderr}");
    }
}

#[test]
fn run_refuses_a_broken_config_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.toml", "[[listener]]\nname = \"x\"\n");
    let out = Command::new(support::pqgate_bin())
        .args(["run", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listener[0]") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

#[test]
fn environment_overrides_apply_and_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "env.toml",
        "[admin]\nlisten = \"127.0.0.1:9000\"\n",
    );
    let out = Command::new(support::pqgate_bin())
        .args(["check", "-c"])
        .arg(&p)
        .env("PQGATE_ADMIN__LISTEN", "127.0.0.1:9100")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9100"));
    let out = Command::new(support::pqgate_bin())
        .args(["check", "-c"])
        .arg(&p)
        .env("PQGATE_ADMIN__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PQGATE_ADMIN__LISTEN"), "{stderr}");
}
