//! The shipped configs stay valid: every file in config/examples/ and the annotated default pass
//! syntax and semantic validation, and the examples pass `pqgate check` (which also loads every
//! certificate and key) once their PKI exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use pqgate::config::{Source, load};
use pqgate_core::config::{Backend, ClientAuthMode, KxPolicy};
use support::Pki;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples_dir() -> PathBuf {
    repo().join("config/examples")
}

/// Every `*.toml` in config/examples/, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("reading config/examples")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Runs `pqgate check -c path` without `PQGATE_` overrides (any case); (success, stdout, stderr).
fn check(path: &Path) -> (bool, String, String) {
    let mut cmd = Command::new(support::pqgate_bin());
    cmd.args(["check", "-c"]).arg(path);
    for (name, _) in std::env::vars_os() {
        if name
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("PQGATE_")
        {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().expect("running pqgate check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_and_the_default_config_validate() {
    let files = example_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["site-a.toml", "site-b.toml", "termination.toml"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    for path in files.iter().chain([&repo().join("config/pqgate.toml")]) {
        let loaded = load(Some(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(loaded.source, Source::File(path.clone()));
        let config = &loaded.config;
        assert!(
            !config.listeners.is_empty() || !config.connectors.is_empty(),
            "{} serves nothing",
            path.display()
        );
    }
}

#[test]
fn termination_example_has_routes_mtls_and_proxy_protocol() {
    let dir = examples_dir();
    let config = load(Some(&dir.join("termination.toml"))).unwrap().config;
    let [web, partners] = &config.listeners[..] else {
        panic!("expected two listeners: {:?}", config.listeners);
    };
    assert_eq!(web.routes.len(), 2);
    for route in &web.routes {
        assert!(matches!(route.backend, Some(Backend::Tcp(_))), "{route:?}");
        assert!(route.cert.is_some() && route.key.is_some(), "{route:?}");
    }
    assert!(web.proxy_protocol);
    let auth = partners
        .client_auth
        .as_ref()
        .expect("partners has client_auth");
    assert_eq!(auth.mode, ClientAuthMode::Required);
    assert_eq!(partners.policy, KxPolicy::HybridRequired);
    // Relative paths follow the config file, not the working directory.
    assert_eq!(auth.ca, dir.join("pki/clients-ca.pem"));
    assert_eq!(
        web.routes[0].cert.as_deref(),
        Some(&*dir.join("pki/api-cert.pem"))
    );
}

#[test]
fn site_pair_is_mutual_tls_over_hybrid_required() {
    let dir = examples_dir();
    let a = load(Some(&dir.join("site-a.toml"))).unwrap().config;
    let b = load(Some(&dir.join("site-b.toml"))).unwrap().config;
    let connector = &a.connectors[0];
    assert_eq!(connector.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(connector.policy, KxPolicy::HybridRequired);
    assert_eq!(connector.ca.as_deref(), Some(&*dir.join("pki/site-ca.pem")));
    assert_eq!(
        connector.client_cert.as_deref(),
        Some(&*dir.join("pki/gw-a-cert.pem"))
    );
    let listener = &b.listeners[0];
    assert_eq!(listener.policy, KxPolicy::HybridRequired);
    assert!(matches!(listener.backend, Backend::Tcp(_)));
    assert_eq!(
        listener.cert.as_deref(),
        Some(&*dir.join("pki/gw-b-cert.pem"))
    );
    let auth = listener
        .client_auth
        .as_ref()
        .expect("B requires client certificates");
    assert_eq!(auth.mode, ClientAuthMode::Required);
    // Both ends trust the same CA, and B's name is what A verifies.
    assert_eq!(auth.ca, dir.join("pki/site-ca.pem"));
    assert_eq!(connector.server_name.as_deref(), Some("gw-b.example.net"));
}

/// Copies `name` from config/examples/ into `dir`, keeping its relative `pki/` paths.
fn copy_example(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(examples_dir().join(name), &to).unwrap();
    to
}

#[test]
fn pqgate_check_accepts_the_site_pair_with_a_real_pki() {
    let dir = tempfile::tempdir().unwrap();
    let a = copy_example(dir.path(), "site-a.toml");
    let b = copy_example(dir.path(), "site-b.toml");

    // `load` never opens certificates; `check` does, and names the file, key and path.
    let (ok, _, stderr) = check(&b);
    assert!(!ok, "check passed without a PKI");
    let prefix = format!("{}: listener[0].", b.display());
    assert!(stderr.contains(&prefix), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");

    let pki_dir = dir.path().join("pki");
    std::fs::create_dir(&pki_dir).unwrap();
    let pki = Pki::new(&pki_dir, "site");
    pki.issue(
        "gw-b",
        &["gw-b.example.net"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    pki.issue(
        "gw-a",
        &["gw-a.example.net"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );

    for path in [&a, &b] {
        let (ok, stdout, stderr) = check(path);
        assert!(ok, "{}: {stderr}", path.display());
        assert!(
            stdout.starts_with(&format!(
                "# effective configuration from {}",
                path.display()
            )),
            "{stdout}"
        );
        // The effective config shows the resolved, absolute paths.
        assert!(stdout.contains(&*pki_dir.to_string_lossy()), "{stdout}");
    }
}

#[test]
fn pqgate_check_accepts_the_termination_example_with_a_real_pki() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_example(dir.path(), "termination.toml");
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir(&pki_dir).unwrap();
    let web = Pki::new(&pki_dir, "web");
    Pki::new(&pki_dir, "clients");
    for (file, name) in [
        ("www", "www.example.com"),
        ("api", "api.example.com"),
        ("shop", "*.shop.example.com"),
        ("partners", "partners.example.com"),
    ] {
        web.issue(file, &[name], &rcgen::PKCS_ECDSA_P256_SHA256);
    }
    let (ok, _, stderr) = check(&path);
    assert!(ok, "{stderr}");
}
