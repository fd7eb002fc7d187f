//! TLS termination against a real pqgate process: policy, SNI routes, mTLS, PROXY v2, backend
//! faults and hostile clients.

use std::time::Duration;

use rustls::NamedGroup;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts one listener `name` of a fresh site in front of an echo backend under `policy`,
/// `extra` appended to it.
async fn echo_site(name: &str, policy: &str, extra: &str) -> (Site, Gateway) {
    let site = Site::new("main", "server");
    let backend = echo_backend().await;
    let gw = site.serve(name, &backend.to_string(), policy, extra);
    (site, gw)
}

/// A site with a `[listener.client_auth]` of `mode` over the CA `main`, its echo listener
/// `name`, a client certificate of that CA and one of a foreign CA (both for client.test).
async fn client_auth_site(
    name: &str,
    mode: &str,
    good: &'static rcgen::SignatureAlgorithm,
) -> (Site, Gateway, Leaf, Leaf) {
    let site = Site::new("main", "server");
    let foreign = Pki::new(site.dir.path(), "foreign");
    let good = site.pki.issue("client", &["client.test"], good);
    let bad = foreign.issue("intruder", &["client.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let backend = echo_backend().await;
    let auth = client_auth_toml(&site.pki.ca_path("main"), mode);
    let gw = site.serve(name, &backend.to_string(), "hybrid-required", &auth);
    (site, gw, good, bad)
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_client_negotiates_x25519mlkem768_and_classical_is_refused() {
    let (site, gw) = echo_site("edge", "hybrid-required", "").await;
    let addr = site.addr();

    let (echo, group) = exchange_ok(addr, site.client(hybrid_required()), b"ping").await;
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));
    assert_eq!(echo, b"ping");

    // A client that prefers the hybrid but also offers X25519 still gets the hybrid.
    let (_, group) = exchange_ok(addr, site.client(hybrid_first()), b"x").await;
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));

    // Classical-only: refused with a handshake_failure alert.
    let err = exchange_refused(addr, site.client(classical())).await;
    assert_eq!(
        tls_error(&err),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure
        )),
        "{err}"
    );

    // The listener keeps serving, and the refusal is counted and logged.
    let (echo, _) = exchange_ok(addr, site.client(hybrid_required()), b"again").await;
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
    gw.assert_log("NoKxGroupsInCommon", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_preferred_accepts_and_counts_classical() {
    let (site, gw) = echo_site("mixed", "hybrid-preferred", "").await;
    let addr = site.addr();

    let (echo, group) = exchange_ok(addr, site.client(classical()), b"old").await;
    assert_eq!(
        (echo.as_slice(), group),
        (&b"old"[..], Some(NamedGroup::X25519))
    );
    let (_, group) = exchange_ok(addr, site.client(hybrid_first()), b"new").await;
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
    let site = Site::new("main", "default");
    let api_leaf = site.pki.issue("api", &["api.test"], &rcgen::PKCS_ML_DSA_65);
    let (default_backend, api_backend, wild_backend) = (
        tag_backend("default").await,
        tag_backend("api").await,
        tag_backend("wild").await,
    );
    let routes = format!(
        "[[listener.route]]\nsni = \"api.test\"\nbackend = \"{api_backend}\"\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[listener.route]]\nsni = \"*.wild.test\"\nbackend = \"{wild_backend}\"\n",
        api_leaf.cert.display(),
        api_leaf.key.display()
    );
    let _gw = site.serve(
        "sni",
        &default_backend.to_string(),
        "hybrid-required",
        &routes,
    );
    let addr = site.addr();
    let client = site.client(hybrid_required());

    let (reply, _) = exchange_ok(addr, client.clone(), b"hi").await;
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
    let (site, gw, good_client, bad_client) =
        client_auth_site("mtls", "required", &rcgen::PKCS_ED25519).await;
    let addr = site.addr();
    let with = |leaf: Option<&Leaf>| client_config(hybrid_required(), site.pki.roots(), leaf);

    let (echo, _) = exchange_ok(addr, with(Some(&good_client)), b"me").await;
    assert_eq!(echo, b"me");
    // In TLS 1.3 the client learns of the refusal after its Finished: on the first read.
    exchange_refused(addr, with(None)).await;
    exchange_refused(addr, with(Some(&bad_client))).await;
    let refused = "pqgate_tls_handshakes_total{listener=\"mtls\",group=\"none\",outcome=\"peer_cert_refused\"}";
    gw.wait_metric(refused, 2.0, Duration::from_secs(5));
    assert_eq!(gw.metric(refused), 2.0, "{}", gw.metrics());
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_protocol_v2_header_reaches_the_backend() {
    let site = Site::new("main", "server");
    let port = site.port;
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let _gw = site.serve(
        "pp",
        &backend_addr.to_string(),
        "hybrid-required",
        "proxy_protocol = true\nalpn = [\"h2\", \"http/1.1\"]\n",
    );
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
    let mut config = (*site.client(hybrid_required())).clone();
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
    let site = Site::new("main", "server");
    let backend_port = free_port();
    let gw = site.serve(
        "b",
        &format!("127.0.0.1:{backend_port}"),
        "hybrid-required",
        "",
    );
    let addr = site.addr();

    // No backend: the handshake completes, then the connection ends with close_notify (a clean
    // EOF for the client, not a reset or a truncation error).
    let mut tls = tls_connect(addr, site.client(hybrid_required()), "localhost")
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
    let (reply, _) = exchange_ok(addr, site.client(hybrid_required()), b"hello").await;
    assert_eq!(reply, b"back");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_stalls_and_floods_are_bounded() {
    let (site, gw) = echo_site(
        "hostile",
        "hybrid-required",
        "[listener.limits]\nmax_connections = 200\nhandshake_timeout_secs = 2\n",
    )
    .await;
    let addr = site.addr();

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
    let rejected = "pqgate_connections_rejected_total{listener=\"hostile\"}";
    gw.wait_metric(rejected, 1.0, Duration::from_secs(10));
    assert!(gw.metric(rejected) >= 1.0);
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
    let (echo, _) = exchange_ok(addr, site.client(hybrid_required()), b"still here").await;
    assert_eq!(echo, b"still here");
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_client_auth_admits_anonymous_and_verifies_presented_certificates() {
    let (site, _gw, good, bad) =
        client_auth_site("opt", "optional", &rcgen::PKCS_ECDSA_P256_SHA256).await;
    let addr = site.addr();
    let with = |leaf: Option<&Leaf>| client_config(hybrid_first(), site.pki.roots(), leaf);
    assert_eq!(exchange_ok(addr, with(None), b"anon").await.0, b"anon");
    assert_eq!(exchange_ok(addr, with(Some(&good)), b"me").await.0, b"me");
    exchange_refused(addr, with(Some(&bad))).await;
}
