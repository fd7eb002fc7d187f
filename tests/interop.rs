//! Real clients against a real pqgate: Debian's Chromium (headless) and OpenSSL 3.0's
//! `s_client`. `tests/run-all.sh` installs them and sets REQUIRE_INTEROP_TOOLS=1, which turns a
//! missing tool into a failure; a bare `cargo test` without them reports the test as skipped.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::*;

/// Runs a command with a wall-clock bound, killing it if it overruns.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn s_client(port: u16) -> Output {
    run_bounded(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-tls1_3",
        ]),
        Duration::from_secs(20),
    )
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn openssl_s_client_is_refused_under_hybrid_required_and_accepted_under_preferred() {
    if !require_tools(
        "openssl_s_client_is_refused_under_hybrid_required_and_accepted_under_preferred",
        &["openssl"],
    ) {
        return;
    }
    let Site {
        dir, pki: _, leaf, ..
    } = Site::new("ca", "srv");
    let (strict, lenient, admin) = (free_port(), free_port(), admin_addr());
    let cfg = admin_toml(admin)
        + &listener_toml("strict", strict, "builtin:info", &leaf, "hybrid-required")
        + "\n"
        + &listener_toml(
            "lenient",
            lenient,
            "builtin:info",
            &leaf,
            "hybrid-preferred",
        );
    let gw = Gateway::start(dir.path(), "gw", &cfg, admin);

    let refused = s_client(strict);
    let t = text(&refused);
    assert!(
        !refused.status.success(),
        "s_client connected under hybrid-required:\n{t}"
    );
    assert!(t.contains("alert handshake failure"), "{t}");

    let accepted = s_client(lenient);
    let t = text(&accepted);
    assert!(accepted.status.success(), "{t}");
    assert!(t.contains("Server Temp Key: X25519"), "{t}");
    assert!(t.contains("TLSv1.3"), "{t}");

    assert_eq!(
        gw.metric("pqgate_policy_refusals_total{listener=\"strict\"}"),
        1.0
    );
    gw.assert_log("group=\"X25519\"", Duration::from_secs(5));
}

fn chromium_dump(url: &str, profile: &Path) -> Output {
    run_bounded(
        Command::new("chromium").args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            url,
        ]),
        Duration::from_secs(90),
    )
}

#[test]
fn chromium_opens_the_embedded_default_and_sees_x25519mlkem768() {
    if !require_tools(
        "chromium_opens_the_embedded_default_and_sees_x25519mlkem768",
        &["chromium"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The embedded default config, unchanged but for where it keeps its generated certificate.
    let log = std::fs::File::create(dir.path().join("default.log")).unwrap();
    let mut child = Command::new(support::pqgate_bin())
        .arg("run")
        .env("PQGATE_SERVICE__STATE_DIR", dir.path().join("state"))
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let admin = ([127, 0, 0, 1], 9851).into();
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    while !http_get(admin, "/healthz").is_some_and(|r| r.contains("200 OK")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the default config did not come up"
        );
        assert!(child.try_wait().unwrap().is_none(), "pqgate exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = chromium_dump("https://127.0.0.1:8443/", &dir.path().join("profile"));
    let metrics = http_get(admin, "/metrics").unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains("<td id=\"key-exchange-group\">X25519MLKEM768</td>"),
        "Chromium's page:\n{page}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(page.contains("Post-quantum: yes"), "{page}");
    assert!(
        metric_value(
            &metrics,
            "pqgate_tls_sessions_total{listener=\"default\",group=\"X25519MLKEM768\""
        ) >= 1.0,
        "{metrics}"
    );
    assert!(dir.path().join("state/self-signed/cert.pem").exists());
}
