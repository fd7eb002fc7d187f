//! `pqgate keygen` and `pqgate ca` as an operator runs them: file modes, refusal to overwrite,
//! WireGuard keys against the real `wg`, CA certificates in a real mutual-TLS connection to a
//! pqgate listener, revocation through the CRL (rustls/webpki and `openssl verify`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use support::cli::{pqgate, pqgate_ok, pqgate_stdin};
use support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn wireguard_key_file_is_0600_not_overwritten_and_matches_wg_pubkey() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("wg.key");
    let public = pqgate_ok(&["keygen", "wg", "--out", s(&key)]);
    assert_eq!(mode(&key), 0o600);
    let private = std::fs::read_to_string(&key).unwrap();
    assert_eq!(private.trim().len(), 44);
    assert!(!public.contains(private.trim()), "private key printed");

    // A second run refuses and leaves the key alone; --if-missing keeps it and prints its
    // public key; --force replaces it.
    let again = pqgate(&["keygen", "wg", "--out", s(&key)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), private);
    assert_eq!(
        pqgate_ok(&["keygen", "wg", "--if-missing", "--out", s(&key)]),
        public
    );
    let replaced = pqgate_ok(&["keygen", "wg", "--force", "--out", s(&key)]);
    assert_ne!(replaced, public);
    assert_eq!(mode(&key), 0o600);

    // Without --out and with stdout a pipe: the private key, like `wg genkey`.
    let piped = pqgate_ok(&["keygen", "wg"]);
    assert_eq!(piped.len(), 44);
    let piped_public = pqgate_stdin(&["keygen", "wg-pub"], &piped);
    assert_eq!(
        pqgate_stdin(
            &["keygen", "wg-pub"],
            &std::fs::read_to_string(&key).unwrap()
        ),
        replaced
    );

    if !require_tools(
        "wireguard_key_file_is_0600_not_overwritten_and_matches_wg_pubkey",
        &["wg"],
    ) {
        return;
    }
    assert_eq!(
        sys::wg_pubkey(&std::fs::read_to_string(&key).unwrap()),
        replaced
    );
    assert_eq!(sys::wg_pubkey(&piped), piped_public);
    for _ in 0..5 {
        let (wg_private, wg_public) = sys::wg_key_pair();
        assert_eq!(pqgate_stdin(&["keygen", "wg-pub"], &wg_private), wg_public);
    }
}

#[test]
fn tls_keys_of_every_algorithm_load_into_rustls() {
    let dir = tempfile::tempdir().unwrap();
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    for alg in [
        "ecdsa-p256",
        "ecdsa-p384",
        "ed25519",
        "ml-dsa-44",
        "ml-dsa-65",
        "ml-dsa-87",
    ] {
        let key = dir.path().join(format!("{alg}.key"));
        let cert = dir.path().join(format!("{alg}.pem"));
        let args = [
            "keygen",
            "tls",
            "--alg",
            alg,
            "--out",
            s(&key),
            "--self-signed",
            s(&cert),
            "--name",
            "gw.example",
            "--name",
            "192.0.2.7",
        ];
        assert_eq!(pqgate_ok(&args), "");
        assert_eq!(mode(&key), 0o600, "{alg}");
        assert!(!pqgate(&args).status.success(), "{alg}: overwrote");
        // rustls loads the key and finds it matches the certificate.
        pqgate::tls::load_certified_key(&cert, &key, &provider)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        if !alg.starts_with("ml-dsa")
            && require_tools("tls_keys_of_every_algorithm_load_into_rustls", &["openssl"])
        {
            let text = sys::ok(&["openssl", "x509", "-in", s(&cert), "-noout", "-text"]);
            assert!(text.contains("DNS:gw.example"), "{alg}: {text}");
            assert!(text.contains("IP Address:192.0.2.7"), "{alg}: {text}");
            sys::ok(&["openssl", "pkey", "-in", s(&key), "-noout"]);
        }
    }
}

/// A CA directory made by `pqgate ca init`, and helpers to issue from it.
struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    fn init(root: &Path, alg: &str) -> Self {
        let dir = root.join(format!("ca-{alg}"));
        let printed = pqgate_ok(&["ca", "init", "--dir", s(&dir), "--alg", alg]);
        assert_eq!(printed, s(&dir.join("ca.pem")));
        assert_eq!(mode(&dir.join("ca.key")), 0o600);
        assert_eq!(mode(&dir), 0o700);
        Self { dir }
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues `name` with extra flags; returns (serial, Leaf).
    fn issue(&self, name: &str, flags: &[&str]) -> (String, Leaf) {
        let key = self.dir.join(format!("{name}.key"));
        let cert = self.dir.join(format!("{name}.pem"));
        let mut args = vec![
            "ca",
            "issue",
            "--dir",
            s(&self.dir),
            "--name",
            name,
            "--out-key",
            s(&key),
            "--out-cert",
            s(&cert),
        ];
        args.extend_from_slice(flags);
        let serial = pqgate_ok(&args);
        assert_eq!(mode(&key), 0o600);
        let cert_der = CertificateDer::from_pem_file(&cert).unwrap();
        let leaf = Leaf {
            cert,
            key,
            cert_der,
        };
        (serial, leaf)
    }

    fn roots(&self) -> Arc<rustls::RootCertStore> {
        pqgate::tls::load_roots(&self.ca_pem()).unwrap()
    }

    fn crl(&self) -> (PathBuf, CertificateRevocationListDer<'static>) {
        let path = self.dir.join("crl.pem");
        pqgate_ok(&["ca", "crl", "--dir", s(&self.dir), "--out", s(&path)]);
        let der = CertificateRevocationListDer::from_pem_file(&path).unwrap();
        (path, der)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_certificates_carry_a_real_mutual_tls_connection_to_a_pqgate_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::init(dir.path(), "ml-dsa-65");
    let other = TestCa::init(dir.path(), "ecdsa-p256");
    let (_, server) = ca.issue("gw-b", &["--dns", "localhost", "--ip", "127.0.0.1"]);
    let (_, client) = ca.issue("gw-a", &["--client"]);
    let (_, foreign) = other.issue("intruder", &["--client"]);
    let (_, server_only) = ca.issue("not-a-client", &["--server", "--dns", "localhost"]);
    let refused = pqgate(&[
        "ca",
        "issue",
        "--dir",
        s(&ca.dir),
        "--name",
        "bad name",
        "--out-key",
        s(&dir.path().join("x.key")),
        "--out-cert",
        s(&dir.path().join("x.pem")),
    ]);
    assert!(
        !refused.status.success(),
        "a server certificate without a usable name"
    );

    let backend = echo_backend().await;
    let port = free_port();
    let admin = admin_addr();
    let listener = listener_toml(
        "mtls",
        port,
        &backend.to_string(),
        &server,
        "hybrid-required",
    ) + &client_auth_toml(&ca.ca_pem(), "required");
    let _gw = Gateway::serve(dir.path(), admin, &listener);
    let addr = ([127, 0, 0, 1], port).into();
    let with = |roots, leaf| client_config(hybrid_required(), roots, leaf);
    // The client verifies the server's CA certificate chain (ML-DSA-65) and name, and
    // presents its own: the listener verifies it against the same CA.
    let (echo, group) = exchange_ok(addr, with(ca.roots(), Some(&client)), b"over mTLS").await;
    assert_eq!(echo, b"over mTLS");
    assert_eq!(group, Some(rustls::NamedGroup::X25519MLKEM768));
    for (what, leaf) in [
        ("no certificate", None),
        ("another CA's certificate", Some(&foreign)),
        ("a server-only certificate", Some(&server_only)),
    ] {
        let result = exchange(addr, with(ca.roots(), leaf), "localhost", b"x").await;
        assert!(result.is_err(), "{what} was admitted");
    }
    // A client trusting only the other CA refuses the listener.
    exchange_refused(addr, with(other.roots(), Some(&client))).await;
}

#[test]
fn revoked_certificates_are_in_the_crl_and_refused_by_webpki() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ["ml-dsa-44", "ecdsa-p384"] {
        let ca = TestCa::init(dir.path(), alg);
        let (good_serial, good) = ca.issue("peer-good", &["--client"]);
        let (bad_serial, bad) = ca.issue("peer-bad", &["--both"]);
        let (_, empty_crl) = ca.crl();
        let revoked = pqgate_ok(&[
            "ca",
            "revoke",
            "--dir",
            s(&ca.dir),
            "--serial",
            &bad_serial.to_uppercase(),
            "--reason",
            "key-compromise",
        ]);
        assert_eq!(revoked, format!("revoked {bad_serial} (peer-bad)"));
        let again = pqgate(&["ca", "revoke", "--dir", s(&ca.dir), "--serial", &bad_serial]);
        assert!(!again.status.success());
        let unknown = pqgate(&["ca", "revoke", "--dir", s(&ca.dir), "--serial", "01ab"]);
        assert!(!unknown.status.success());
        let (crl_path, crl) = ca.crl();
        let listing = pqgate_ok(&["ca", "list", "--dir", s(&ca.dir)]);
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(&bad_serial) && l.contains("revoked"))
        );
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(&good_serial) && l.contains("valid"))
        );

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verify = |crl: &CertificateRevocationListDer<'static>, leaf: &Leaf| {
            WebPkiClientVerifier::builder_with_provider(ca.roots(), provider.clone())
                .with_crls([crl.clone()])
                .build()
                .unwrap()
                .verify_client_cert(&leaf.cert_der, &[], UnixTime::now())
                .map(|_| ())
        };
        assert!(verify(&empty_crl, &bad).is_ok(), "{alg}: before revocation");
        assert!(verify(&crl, &good).is_ok(), "{alg}: unrevoked peer");
        let err = verify(&crl, &bad).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
            ),
            "{alg}: {err:?}"
        );
        // The revoked certificate also had server use: a client checking end-entity
        // revocation only (as the PQ PSK channel does) refuses it as a server.
        let server_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            ca.roots(),
            provider.clone(),
        )
        .with_crls([crl.clone()])
        .only_check_end_entity_revocation()
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("peer-bad").unwrap();
        let err = server_verifier
            .verify_server_cert(&bad.cert_der, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
            ),
            "{alg}: {err:?}"
        );

        if alg.starts_with("ecdsa")
            && require_tools(
                "revoked_certificates_are_in_the_crl_and_refused_by_webpki",
                &["openssl"],
            )
        {
            let text = sys::ok(&["openssl", "crl", "-in", s(&crl_path), "-noout", "-text"]);
            assert!(text.to_lowercase().contains(&bad_serial), "{text}");
            assert!(!text.to_lowercase().contains(&good_serial), "{text}");
            assert!(text.contains("Key Compromise"), "{text}");
            let verify = |cert: &Path| {
                let (ca_pem, crl, cert) = (s(&ca.ca_pem()).to_owned(), s(&crl_path), s(cert));
                sys::run(
                    20,
                    &[
                        "openssl",
                        "verify",
                        "-crl_check",
                        "-CAfile",
                        &ca_pem,
                        "-CRLfile",
                        crl,
                        cert,
                    ],
                )
            };
            let checked = verify(&bad.cert);
            assert!(!checked.status.success());
            assert!(
                String::from_utf8_lossy(&checked.stdout).contains("certificate revoked")
                    || String::from_utf8_lossy(&checked.stderr).contains("certificate revoked")
            );
            sys::stdout_of("openssl verify (good)", verify(&good.cert));
        }
    }
}

#[test]
fn classical_ca_certificates_pass_openssl_verify() {
    if !require_tools(
        "classical_ca_certificates_pass_openssl_verify",
        &["openssl"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for alg in ["ecdsa-p256", "ecdsa-p384", "ed25519"] {
        let ca = TestCa::init(dir.path(), alg);
        assert!(
            !pqgate(&["ca", "init", "--dir", s(&ca.dir), "--alg", alg])
                .status
                .success(),
            "{alg}: init over an existing CA"
        );
        let (serial, server) =
            ca.issue("gw.example", &["--ip", "192.0.2.1", "--dns", "gw.example"]);
        let (_, client) = ca.issue("peer", &["--client", "--alg", "ecdsa-p256"]);
        for (leaf, purpose) in [(&server, "sslserver"), (&client, "sslclient")] {
            let out = sys::ok(&[
                "openssl",
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                s(&ca.ca_pem()),
                s(&leaf.cert),
            ]);
            assert!(out.contains(": OK"), "{alg} {purpose}: {out}");
        }
        // The client certificate is not valid for server use.
        let wrong = sys::run(
            20,
            &[
                "openssl",
                "verify",
                "-purpose",
                "sslserver",
                "-CAfile",
                s(&ca.ca_pem()),
                s(&client.cert),
            ],
        );
        assert!(
            !wrong.status.success(),
            "{alg}: client cert passed as server"
        );
        let printed = sys::ok(&[
            "openssl",
            "x509",
            "-in",
            s(&server.cert),
            "-noout",
            "-serial",
        ]);
        let printed = printed.trim().trim_start_matches("serial=").to_lowercase();
        assert_eq!(
            printed.trim_start_matches('0'),
            serial.trim_start_matches('0')
        );
        // The issued key matches its certificate.
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        pqgate::tls::load_certified_key(&server.cert, &server.key, &provider).unwrap();
    }
}
