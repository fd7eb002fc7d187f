//! Reload and drain: SIGHUP swaps certificates and listeners without dropping established
//! connections and rejects a bad config whole; SIGTERM stops accepting, lets open connections
//! finish, then exits.

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client(pki: &Pki) -> std::sync::Arc<rustls::ClientConfig> {
    client_config(hybrid_first(), pki.roots(), None)
}

async fn echo_once<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, msg);
}

async fn served_cert(addr: std::net::SocketAddr, pki: &Pki) -> Vec<u8> {
    let tls = tls_connect(addr, client(pki), "localhost").await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reload_keeps_connections_and_rejects_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "ca");
    let (first, second, other) = (
        pki.server("first"),
        pki.server("second"),
        pki.server("other"),
    );
    let backend = echo_backend().await;
    let (port, extra_port, admin) = (free_port(), free_port(), admin_addr());
    let config = |leaf: &Leaf| {
        admin_toml(admin)
            + &listener_toml("web", port, &backend.to_string(), leaf, "hybrid-required")
    };
    let gw = Gateway::start(dir.path(), "gw", &config(&first), admin);
    let addr = ([127, 0, 0, 1], port).into();
    assert_eq!(served_cert(addr, &pki).await, first.cert_der.to_vec());

    let mut established = tls_connect(addr, client(&pki), "localhost").await.unwrap();
    echo_once(&mut established, b"before").await;

    // New certificate plus a new listener: applied, and the open connection is untouched.
    let extra = listener_toml(
        "extra",
        extra_port,
        &backend.to_string(),
        &second,
        "hybrid-preferred",
    );
    std::fs::write(&gw.config, config(&second) + "\n" + &extra).unwrap();
    gw.signal("HUP");
    gw.assert_log("configuration reloaded", Duration::from_secs(10));
    echo_once(&mut established, b"during").await;
    assert_eq!(served_cert(addr, &pki).await, second.cert_der.to_vec());
    let extra_addr = ([127, 0, 0, 1], extra_port).into();
    let (echo, _) = exchange(extra_addr, client(&pki), "localhost", b"new listener")
        .await
        .unwrap();
    assert_eq!(echo, b"new listener");

    // A key that does not match its certificate: the whole reload is rejected.
    let broken = config(&second).replace(
        &second.key.display().to_string(),
        &other.key.display().to_string(),
    );
    std::fs::write(&gw.config, broken).unwrap();
    gw.signal("HUP");
    gw.assert_log("reload rejected", Duration::from_secs(10));
    assert!(
        gw.log_text().contains("does not match certificate"),
        "{}",
        gw.log_text()
    );
    assert_eq!(served_cert(addr, &pki).await, second.cert_der.to_vec());
    let (echo, _) = exchange(extra_addr, client(&pki), "localhost", b"still")
        .await
        .unwrap();
    assert_eq!(echo, b"still", "the rejected config removed a listener");
    echo_once(&mut established, b"after").await;
    assert_eq!(
        gw.metric("pqgate_config_reloads_total{outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        gw.metric("pqgate_config_reloads_total{outcome=\"rejected\"}"),
        1.0
    );

    // Dropping the extra listener in a good config stops it.
    std::fs::write(&gw.config, config(&second)).unwrap();
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.metric("pqgate_config_reloads_total{outcome=\"ok\"}") < 2.0 {
        assert!(std::time::Instant::now() < deadline, "{}", gw.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(tokio::net::TcpStream::connect(extra_addr).await.is_err());

    // Renaming a listener on the same address swaps it in place (no second bind).
    std::fs::write(
        &gw.config,
        config(&second).replace("name = \"web\"", "name = \"www\""),
    )
    .unwrap();
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.metric("pqgate_config_reloads_total{outcome=\"ok\"}") < 3.0 {
        assert!(std::time::Instant::now() < deadline, "{}", gw.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (echo, _) = exchange(addr, client(&pki), "localhost", b"renamed")
        .await
        .unwrap();
    assert_eq!(echo, b"renamed");
    assert!(gw.metrics().contains("listener=\"www\""));
    echo_once(&mut established, b"end").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_open_connections_then_exits() {
    let site = Site::new("ca", "srv");
    let (pki, admin) = (&site.pki, site.admin);
    let backend = echo_backend().await;
    let mut gw = site.serve("web", &backend.to_string(), "hybrid-required", "");
    let addr = site.addr();
    let mut open = tls_connect(addr, client(pki), "localhost").await.unwrap();
    echo_once(&mut open, b"hello").await;

    gw.signal("TERM");
    gw.assert_log("draining", Duration::from_secs(10));
    let health = http_get(admin, "/healthz").unwrap_or_default();
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting while draining"
    );
    // The open connection still works until its client closes it.
    echo_once(&mut open, b"during drain").await;
    assert_eq!(
        gw.wait_exit(Duration::from_millis(300)),
        None,
        "exited before the drain ended"
    );
    open.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest).await;
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(true),
        "{}",
        gw.log_text()
    );
    assert!(
        gw.log_text().contains("all connections closed"),
        "{}",
        gw.log_text()
    );
}
