//! TLS termination against a real pqgate process: policy, SNI routes, mTLS, PROXY v2, backend
//! faults and hostile clients.

use std::time::Duration;

use rustls::NamedGroup;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn hybrid_required_client(pki: &Pki) -> std::sync::Arc<rustls::ClientConfig> {
    let provider = pqgate_agility::build_provider(pqgate_agility::ProviderSpec {
        policy: pqgate_agility::KxPolicy::HybridRequired,
        tls12: false,
    })
    .unwrap();
    client_config(provider, pki.roots(), None)
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_client_negotiates_x25519mlkem768_and_classical_is_refused() {
    let Site {
        dir,
        pki,
        leaf,
        port,
        admin,
    } = Site::new("main", "server");
    let backend = echo_backend().await;
    let cfg = admin_toml(admin)
        + &listener_toml("edge", port, &backend.to_string(), &leaf, "hybrid-required");
    let gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr = ([127, 0, 0, 1], port).into();

    let (echo, group) = exchange(addr, hybrid_required_client(&pki), "localhost", b"ping")
        .await
        .unwrap();
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));
    assert_eq!(echo, b"ping");

    // A client that prefers the hybrid but also offers X25519 still gets the hybrid.
    let (_, group) = exchange(
        addr,
        client_config(hybrid_first(), pki.roots(), None),
        "localhost",
        b"x",
    )
    .await
    .unwrap();
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));

    // Classical-only: refused with a handshake_failure alert.
    let err = exchange(
        addr,
        client_config(classical(), pki.roots(), None),
        "localhost",
        b"x",
    )
    .await
    .unwrap_err();
    let tls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    assert_eq!(
        tls_err,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure
        )),
        "{err}"
    );

    // The listener keeps serving, and the refusal is counted and logged.
    let (echo, _) = exchange(addr, hybrid_required_client(&pki), "localhost", b"again")
        .await
        .unwrap();
    assert_eq!(echo, b"again");
    let m = gw.metrics();
    assert_eq!(
        metric_value(&m, "pqgate_policy_refusals_total{listener=\"edge\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "pqgate_tls_handshakes_total{listener=\"edge\",group=\"X25519MLKEM768\",outcome=\"ok\"}"
        ),
        3.0,
        "{m}"
    );
    assert!(
        gw.wait_log("NoKxGroupsInCommon", Duration::from_secs(5)),
        "{}",
        gw.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_preferred_accepts_and_counts_classical() {
    let Site {
        dir,
        pki,
        leaf,
        port,
        admin,
    } = Site::new("main", "server");
    let backend = echo_backend().await;
    let cfg = admin_toml(admin)
        + &listener_toml(
            "mixed",
            port,
            &backend.to_string(),
            &leaf,
            "hybrid-preferred",
        );
    let gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr = ([127, 0, 0, 1], port).into();

    let (echo, group) = exchange(
        addr,
        client_config(classical(), pki.roots(), None),
        "localhost",
        b"old",
    )
    .await
    .unwrap();
    assert_eq!(
        (echo.as_slice(), group),
        (&b"old"[..], Some(NamedGroup::X25519))
    );
    let (_, group) = exchange(
        addr,
        client_config(hybrid_first(), pki.roots(), None),
        "localhost",
        b"new",
    )
    .await
    .unwrap();
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));

    let m = gw.metrics();
    assert_eq!(
        metric_value(
            &m,
            "pqgate_tls_sessions_total{listener=\"mixed\",group=\"X25519\""
        ),
        1.0,
        "{m}"
    );
    assert!(m.contains("pq=\"false\""), "{m}");
    assert!(gw.wait_log("post_quantum=false", Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_routes_choose_backend_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let default_leaf = pki.server("default");
    let api_leaf = pki.issue("api", &["api.test"], &rcgen::PKCS_ML_DSA_65);
    let (default_backend, api_backend, wild_backend) = (
        tag_backend("default").await,
        tag_backend("api").await,
        tag_backend("wild").await,
    );
    let port = free_port();
    let admin = admin_addr();
    let cfg = admin_toml(admin)
        + &listener_toml(
            "sni",
            port,
            &default_backend.to_string(),
            &default_leaf,
            "hybrid-required",
        )
        + &format!(
            "[[listener.route]]\nsni = \"api.test\"\nbackend = \"{api_backend}\"\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [[listener.route]]\nsni = \"*.wild.test\"\nbackend = \"{wild_backend}\"\n",
            api_leaf.cert.display(),
            api_leaf.key.display()
        );
    let _gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr = ([127, 0, 0, 1], port).into();
    let client = hybrid_required_client(&pki);

    let (reply, _) = exchange(addr, client.clone(), "localhost", b"hi")
        .await
        .unwrap();
    assert_eq!(reply, b"default");
    // api.test is served with its own ML-DSA-65 certificate (the client verifies the name).
    let tls = tls_connect(addr, client.clone(), "api.test").await.unwrap();
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(peer, api_leaf.cert_der);
    drop(tls);
    let (reply, _) = exchange(addr, client.clone(), "api.test", b"hi")
        .await
        .unwrap();
    assert_eq!(reply, b"api");
    // The wildcard route has no certificate of its own: the default one (localhost) is used,
    // so a client verifying "a.wild.test" must refuse it.
    assert!(exchange(addr, client, "a.wild.test", b"hi").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_required_refuses_missing_and_foreign_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let foreign = Pki::new(dir.path(), "foreign");
    let leaf = pki.server("server");
    let good_client = pki.issue("client", &["client.test"], &rcgen::PKCS_ED25519);
    let bad_client = foreign.issue("intruder", &["client.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let backend = echo_backend().await;
    let port = free_port();
    let admin = admin_addr();
    let cfg = admin_toml(admin)
        + &listener_toml("mtls", port, &backend.to_string(), &leaf, "hybrid-required")
        + &format!(
            "[listener.client_auth]\nca = \"{}\"\nmode = \"required\"\n",
            pki.ca_path("main").display()
        );
    let gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr = ([127, 0, 0, 1], port).into();
    let hybrid = hybrid_required;

    let (echo, _) = exchange(
        addr,
        client_config(hybrid(), pki.roots(), Some(&good_client)),
        "localhost",
        b"me",
    )
    .await
    .unwrap();
    assert_eq!(echo, b"me");
    // In TLS 1.3 the client learns of the refusal after its Finished: on the first read.
    assert!(
        exchange(
            addr,
            client_config(hybrid(), pki.roots(), None),
            "localhost",
            b"x"
        )
        .await
        .is_err()
    );
    assert!(
        exchange(
            addr,
            client_config(hybrid(), pki.roots(), Some(&bad_client)),
            "localhost",
            b"x"
        )
        .await
        .is_err()
    );
    let refused = "pqgate_tls_handshakes_total{listener=\"mtls\",group=\"none\",outcome=\"peer_cert_refused\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while gw.metric(refused) < 2.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.metric(refused), 2.0, "{}", gw.metrics());
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_protocol_v2_header_reaches_the_backend() {
    let Site { dir, pki, leaf, .. } = Site::new("main", "server");
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let port = free_port();
    let admin = admin_addr();
    let cfg = admin_toml(admin)
        + &listener_toml(
            "pp",
            port,
            &backend_addr.to_string(),
            &leaf,
            "hybrid-required",
        )
        + "proxy_protocol = true\nalpn = [\"h2\", \"http/1.1\"]\n";
    let _gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let capture = tokio::spawn(async move {
        let (mut s, _) = backend.accept().await.unwrap();
        let mut head = [0u8; 16];
        s.read_exact(&mut head).await.unwrap();
        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        s.write_all(b"ok").await.unwrap();
        (head, body)
    });
    let mut config = (*hybrid_required_client(&pki)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"x").await.unwrap();
    let (head, body) = tokio::time::timeout(Duration::from_secs(10), capture)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&head[..12], &pqgate_core::proxy_v2::SIGNATURE);
    assert_eq!((head[12], head[13]), (0x21, 0x11));
    assert_eq!(&body[0..4], &[127, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([body[8], body[9]]), client_port);
    assert_eq!(u16::from_be_bytes([body[10], body[11]]), port);
    let tlvs = &body[12..];
    assert!(tlvs.windows(8).any(|w| w == b"http/1.1"));
    assert!(tlvs.windows(9).any(|w| w == b"localhost"));
    assert!(tlvs.windows(7).any(|w| w == b"TLSv1.3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_down_closes_cleanly_counts_and_recovers() {
    let Site { dir, pki, leaf, .. } = Site::new("main", "server");
    let backend_port = free_port();
    let port = free_port();
    let admin = admin_addr();
    let cfg = admin_toml(admin)
        + &listener_toml(
            "b",
            port,
            &format!("127.0.0.1:{backend_port}"),
            &leaf,
            "hybrid-required",
        );
    let gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr = ([127, 0, 0, 1], port).into();

    // No backend: the handshake completes, then the connection ends with close_notify (a clean
    // EOF for the client, not a reset or a truncation error).
    let mut tls = tls_connect(addr, hybrid_required_client(&pki), "localhost")
        .await
        .unwrap();
    assert!(read_to_end(&mut tls).await.unwrap().is_empty());
    assert_eq!(
        gw.metric("pqgate_backend_connect_failures_total{listener=\"b\"}"),
        1.0
    );

    // The backend comes up: service resumes without touching the gateway.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", backend_port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"back").await;
        }
    });
    let (reply, _) = exchange(addr, hybrid_required_client(&pki), "localhost", b"hello")
        .await
        .unwrap();
    assert_eq!(reply, b"back");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_stalls_and_floods_are_bounded() {
    let Site {
        dir,
        pki,
        leaf,
        port,
        admin,
    } = Site::new("main", "server");
    let backend = echo_backend().await;
    let cfg = admin_toml(admin)
        + &listener_toml(
            "hostile",
            port,
            &backend.to_string(),
            &leaf,
            "hybrid-required",
        )
        + "[listener.limits]\nmax_connections = 200\nhandshake_timeout_secs = 2\n";
    let gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    // Garbage instead of a ClientHello: answered with an alert or a close, never a hang.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), junk.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(n < 64, "expected at most an alert, got {n} bytes");

    // A thousand stalled clients (half a ClientHello each): at most max_connections are held,
    // the rest are closed at once, and all are gone after the handshake timeout.
    let rss_before = gw.rss_kib();
    let mut stalled = Vec::new();
    for _ in 0..1000 {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
            stalled.push(s);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.metric("pqgate_connections_rejected_total{listener=\"hostile\"}") < 1.0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.metric("pqgate_connections_rejected_total{listener=\"hostile\"}") >= 1.0);
    assert!(gw.metric("pqgate_active_connections{listener=\"hostile\"}") <= 200.0);
    let rss_during = gw.rss_kib();
    assert!(
        rss_during < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_during} KiB"
    );
    // Every stalled connection is closed by the gateway within the handshake timeout (+ slack).
    for s in &mut stalled {
        let r = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await;
        assert!(r.is_ok(), "a stalled connection was not closed");
    }
    drop(stalled);
    let timeouts = gw.metric(
        "pqgate_tls_handshakes_total{listener=\"hostile\",group=\"none\",outcome=\"timeout\"}",
    );
    assert!(timeouts >= 1.0, "{}", gw.metrics());
    // And real clients are served again.
    let (echo, _) = exchange(
        addr,
        hybrid_required_client(&pki),
        "localhost",
        b"still here",
    )
    .await
    .unwrap();
    assert_eq!(echo, b"still here");
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_client_auth_admits_anonymous_and_verifies_presented_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "main");
    let foreign = Pki::new(dir.path(), "foreign");
    let leaf = pki.server("server");
    let good = pki.issue("client", &["client.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let bad = foreign.issue("intruder", &["client.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let backend = echo_backend().await;
    let (port, admin) = (free_port(), admin_addr());
    let cfg = admin_toml(admin)
        + &listener_toml("opt", port, &backend.to_string(), &leaf, "hybrid-required")
        + &format!(
            "[listener.client_auth]\nca = \"{}\"\nmode = \"optional\"\n",
            pki.ca_path("main").display()
        );
    let _gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let addr = ([127, 0, 0, 1], port).into();
    let with = |leaf: Option<&Leaf>| client_config(hybrid_first(), pki.roots(), leaf);
    assert_eq!(
        exchange(addr, with(None), "localhost", b"anon")
            .await
            .unwrap()
            .0,
        b"anon"
    );
    assert_eq!(
        exchange(addr, with(Some(&good)), "localhost", b"me")
            .await
            .unwrap()
            .0,
        b"me"
    );
    assert!(
        exchange(addr, with(Some(&bad)), "localhost", b"x")
            .await
            .is_err()
    );
}
