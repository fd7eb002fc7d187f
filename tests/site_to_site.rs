//! The site-to-site pair: app -> gateway A (connector: plaintext in, PQ TLS out) -> gateway B
//! (listener: PQ TLS in, plaintext out) -> server, with mutual TLS between the gateways.

use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256};
use rustls::pki_types::pem::PemObject;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes moved end to end.
const TRANSFER_BYTES: usize = 256 * 1024 * 1024;

struct Pair {
    _a: Gateway,
    b: Gateway,
    app_port: u16,
}

async fn start_pair(dir: &std::path::Path, server: std::net::SocketAddr, verify: &str) -> Pair {
    let pki = Pki::new(dir, "site");
    let b_leaf = pki.issue("gw-b", &["gw-b.test"], &rcgen::PKCS_ML_DSA_65);
    let a_leaf = pki.issue("gw-a", &["gw-a.test"], &rcgen::PKCS_ECDSA_P384_SHA384);
    let (b_port, app_port) = (free_port(), free_port());
    let (admin_a, admin_b) = (admin_addr(), admin_addr());
    let cfg_b = admin_toml(admin_b)
        + &listener_toml(
            "from-site-a",
            b_port,
            &server.to_string(),
            &b_leaf,
            "hybrid-required",
        )
        + &format!(
            "[listener.client_auth]\nca = \"{}\"\n",
            pki.ca_path("site").display()
        );
    let b = Gateway::start(dir, "gw-b", &cfg_b, admin_b);
    let verify = match verify {
        "ca" => format!("ca = \"{}\"\n", pki.ca_path("site").display()),
        _ => {
            let pin = pqgate::tls::spki_pin(&b_leaf.cert_der).unwrap();
            format!("pin_sha256 = [\"{pin}\"]\n")
        }
    };
    let cfg_a = admin_toml(admin_a)
        + &format!(
            "[[connector]]\nname = \"to-site-b\"\nlisten = \"127.0.0.1:{app_port}\"\n\
             remote = \"127.0.0.1:{b_port}\"\nserver_name = \"gw-b.test\"\n{verify}\
             client_cert = \"{}\"\nclient_key = \"{}\"\n",
            a_leaf.cert.display(),
            a_leaf.key.display()
        );
    let a = Gateway::start(dir, "gw-a", &cfg_a, admin_a);
    Pair { _a: a, b, app_port }
}

#[tokio::test(flavor = "multi_thread")]
async fn site_to_site_moves_256_mib_byte_exact_over_x25519mlkem768() {
    let dir = tempfile::tempdir().unwrap();
    let server = hashing_backend().await;
    let pair = start_pair(dir.path(), server, "ca").await;

    let mut app = TcpStream::connect(("127.0.0.1", pair.app_port))
        .await
        .unwrap();
    let mut sent = Context::new(&SHA256);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = TRANSFER_BYTES;
    while left > 0 {
        let n = left.min(buf.len());
        fill(&mut state, &mut buf[..n]);
        sent.update(&buf[..n]);
        app.write_all(&buf[..n]).await.unwrap();
        left -= n;
    }
    app.shutdown().await.unwrap();
    let mut digest = Vec::new();
    tokio::time::timeout(Duration::from_secs(300), app.read_to_end(&mut digest))
        .await
        .expect("the digest did not come back")
        .unwrap();
    assert_eq!(digest, sent.finish().as_ref(), "bytes changed in transit");

    let m = pair.b.metrics();
    assert!(
        metric_value(
            &m,
            "pqgate_tls_sessions_total{listener=\"from-site-a\",group=\"X25519MLKEM768\""
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "pqgate_bytes_total{listener=\"from-site-a\",direction=\"client_to_backend\"}"
        ),
        TRANSFER_BYTES as f64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connector_with_a_pinned_key_connects_and_a_wrong_pin_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = echo_backend().await;
    let pair = start_pair(dir.path(), server, "pin").await;
    let mut app = TcpStream::connect(("127.0.0.1", pair.app_port))
        .await
        .unwrap();
    app.write_all(b"pinned").await.unwrap();
    let mut got = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(10), app.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"pinned");

    // Same setup, but the pin names another key: the connector refuses the remote.
    let dir2 = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir2.path(), "other");
    let leaf = pki.server("srv");
    let (port, app_port, admin_b, admin_a) = (free_port(), free_port(), admin_addr(), admin_addr());
    let cfg_b = admin_toml(admin_b)
        + &listener_toml("b", port, &server.to_string(), &leaf, "hybrid-required");
    let _b = Gateway::start(dir2.path(), "b", &cfg_b, admin_b);
    let cfg_a = admin_toml(admin_a)
        + &format!(
            "[[connector]]\nname = \"a\"\nlisten = \"127.0.0.1:{app_port}\"\nremote = \"127.0.0.1:{port}\"\n\
             server_name = \"localhost\"\npin_sha256 = [\"{}\"]\n",
            "00".repeat(32)
        );
    let a = Gateway::start(dir2.path(), "a", &cfg_a, admin_a);
    let mut app = TcpStream::connect(("127.0.0.1", app_port)).await.unwrap();
    let _ = app.write_all(b"x").await;
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(10), app.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "data passed a connector whose pin did not match");
    a.assert_log("ApplicationVerificationFailure", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn connector_refuses_a_classical_only_remote_under_hybrid_required() {
    let Site { dir, pki, leaf, .. } = Site::new("legacy", "legacy");
    // A classical-only TLS server (X25519 and P-256 only), like an unupgraded peer.
    let chain = vec![leaf.cert_der.clone()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(classical())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
    let legacy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let legacy_addr = legacy.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = legacy.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let _ = tls.write_all(b"classical").await;
                }
            });
        }
    });
    let (app_port, admin) = (free_port(), admin_addr());
    let cfg = admin_toml(admin)
        + &format!(
            "[[connector]]\nname = \"strict\"\nlisten = \"127.0.0.1:{app_port}\"\n\
             remote = \"{legacy_addr}\"\nserver_name = \"localhost\"\nca = \"{}\"\n",
            pki.ca_path("legacy").display()
        );
    let gw = Gateway::start(dir.path(), "a", &cfg, admin);
    let mut app = TcpStream::connect(("127.0.0.1", app_port)).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), app.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "data passed from a classical-only remote");
    let refusals = "pqgate_policy_refusals_total{listener=\"strict\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while gw.metric(refusals) < 1.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.metric(refusals), 1.0, "{}", gw.metrics());
}
