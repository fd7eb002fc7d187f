//! TCP over QUIC between two `pqgate run` processes on loopback: app -> gateway A (connector,
//! `transport = "quic"`) -> one PQ QUIC connection -> gateway B (listener, `transport = "quic"`,
//! hybrid-required, client certificates required) -> backend. Bulk and concurrent transfers
//! byte-exact over one handshake, half-close both ways, backend down and back, gateway B
//! restarted, refused QUIC clients (classical-only, wrong certificate) built here with quinn,
//! and garbage datagrams.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256};
use rustls::crypto::aws_lc_rs as provider;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BULK_BYTES: usize = 64 * 1024 * 1024;
const CONCURRENT: usize = 50;
const PER_CONNECTION_BYTES: usize = 512 * 1024;
/// Generous bound for any single exchange (debug build, shared machine).
const EXCHANGE_LIMIT: Duration = Duration::from_secs(120);

/// Sends `len` bytes from `seed` through `port`, half-closes, and checks the digest returned.
async fn hashed_roundtrip(port: u16, seed: u64, len: usize) -> Result<(), String> {
    let mut app = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut sent = Context::new(&SHA256);
    let (mut state, mut left) = (seed | 1, len);
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let n = left.min(buf.len());
        fill(&mut state, &mut buf[..n]);
        sent.update(&buf[..n]);
        app.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        left -= n;
    }
    app.shutdown().await.map_err(|e| e.to_string())?;
    let mut digest = Vec::new();
    tokio::time::timeout(EXCHANGE_LIMIT, app.read_to_end(&mut digest))
        .await
        .map_err(|_| "no digest in time".to_owned())?
        .map_err(|e| e.to_string())?;
    if digest != sent.finish().as_ref() {
        return Err(format!("digest differs ({} bytes back)", digest.len()));
    }
    Ok(())
}

struct Pair {
    pki: Pki,
    a: Gateway,
    b: Gateway,
    app_port: u16,
    b_port: u16,
    cfg_b: String,
    admin_b: SocketAddr,
}

const LISTENER: &str = "from-a";
const CONNECTOR: &str = "to-b";

/// Starts B (QUIC listener to `backend`) then A (QUIC connector to B), profile `pq-hybrid`.
fn start_pair(dir: &std::path::Path, backend: SocketAddr) -> Pair {
    start_pair_with(
        dir,
        backend,
        "pq-hybrid",
        &rcgen::PKCS_ML_DSA_65,
        Verify::Ca,
    )
}

/// How connector A verifies listener B.
enum Verify {
    /// The site CA.
    Ca,
    /// The SPKI pin of B's certificate (no CA).
    Pin,
    /// A pin of some other key (no CA): must fail.
    WrongPin,
}

fn start_pair_with(
    dir: &std::path::Path,
    backend: SocketAddr,
    profile: &str,
    b_alg: &'static rcgen::SignatureAlgorithm,
    verify: Verify,
) -> Pair {
    start_pair_full(dir, backend, profile, b_alg, verify, ("", ""))
}

/// As [`start_pair_with`], with extra keys for B's `[listener.limits]` and A's
/// `[connector.limits]` (each line ending in a newline).
fn start_pair_full(
    dir: &std::path::Path,
    backend: SocketAddr,
    profile: &str,
    b_alg: &'static rcgen::SignatureAlgorithm,
    verify: Verify,
    (b_limits, a_limits): (&str, &str),
) -> Pair {
    let pki = Pki::new(dir, "site");
    let b_leaf = pki.issue("gw-b", &["gw-b.test"], b_alg);
    let a_leaf = pki.issue("gw-a", &["gw-a.test"], &rcgen::PKCS_ECDSA_P384_SHA384);
    let (b_port, app_port) = (free_port(), free_port());
    let (admin_a, admin_b) = (admin_addr(), admin_addr());
    let cfg_b = admin_toml(admin_b)
        + &listener_toml(
            LISTENER,
            b_port,
            &backend.to_string(),
            &b_leaf,
            "hybrid-required",
        )
        + &format!(
            "transport = \"quic\"\nprofile = \"{profile}\"\n[listener.client_auth]\nca = \"{}\"\n\
             [listener.limits]\n{b_limits}",
            pki.ca_path("site").display()
        );
    let b = Gateway::start(dir, "gw-b", &cfg_b, admin_b);
    let verify = match verify {
        Verify::Ca => format!("ca = \"{}\"\n", pki.ca_path("site").display()),
        Verify::Pin => {
            let pin = pqgate::tls::spki_pin(&b_leaf.cert_der).unwrap();
            format!("pin_sha256 = [\"{pin}\"]\n")
        }
        Verify::WrongPin => {
            let pin = pqgate::tls::spki_pin(&a_leaf.cert_der).unwrap();
            format!("pin_sha256 = [\"{pin}\"]\n")
        }
    };
    // A short idle timeout: a restarted B is noticed within seconds.
    let cfg_a = admin_toml(admin_a)
        + &format!(
            "[[connector]]\nname = \"{CONNECTOR}\"\nlisten = \"127.0.0.1:{app_port}\"\n\
             remote = \"127.0.0.1:{b_port}\"\nserver_name = \"gw-b.test\"\n\
             policy = \"hybrid-required\"\ntransport = \"quic\"\nprofile = \"{profile}\"\n\
             {verify}\
             client_cert = \"{}\"\nclient_key = \"{}\"\n\
             [connector.limits]\nidle_timeout_secs = 5\n{a_limits}",
            a_leaf.cert.display(),
            a_leaf.key.display()
        );
    let a = Gateway::start(dir, "gw-a", &cfg_a, admin_a);
    Pair {
        pki,
        a,
        b,
        app_port,
        b_port,
        cfg_b,
        admin_b,
    }
}

fn handshakes(gw: &Gateway, name: &str, outcome: &str) -> f64 {
    let m = gw.metrics();
    m.lines()
        .filter(|l| l.starts_with("pqgate_tls_handshakes_total{"))
        .filter(|l| l.contains(&format!("listener=\"{name}\"")))
        .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_and_50_concurrent_connections_share_one_pq_quic_connection() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(hashing_server(backend));
    let pair = start_pair(dir.path(), backend_addr);

    hashed_roundtrip(pair.app_port, 7, BULK_BYTES)
        .await
        .unwrap_or_else(|e| panic!("bulk: {e}\n{}", pair.a.log_text()));
    let tasks: Vec<_> = (0..CONCURRENT as u64)
        .map(|i| {
            tokio::spawn(hashed_roundtrip(
                pair.app_port,
                1000 + i,
                PER_CONNECTION_BYTES,
            ))
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        if let Err(e) = t.await.unwrap() {
            panic!("connection {i}: {e}\n{}", pair.b.log_text());
        }
    }

    for (gw, name) in [(&pair.a, CONNECTOR), (&pair.b, LISTENER)] {
        let m = gw.metrics();
        assert_eq!(handshakes(gw, name, "ok"), 1.0, "one QUIC handshake: {m}");
        let sessions =
            format!("pqgate_tls_sessions_total{{listener=\"{name}\",group=\"X25519MLKEM768\"");
        assert_eq!(metric_value(&m, &sessions), 1.0, "{m}");
        let completed =
            format!("pqgate_connections_total{{listener=\"{name}\",outcome=\"completed\"}}");
        // A stream is recorded once the peer acknowledged its last byte: poll (bounded).
        let done = wait_metric(gw, &completed, (CONCURRENT + 1) as f64);
        assert_eq!(done, (CONCURRENT + 1) as f64, "{}", gw.metrics());
        let up =
            format!("pqgate_bytes_total{{listener=\"{name}\",direction=\"client_to_backend\"}}");
        let expected = BULK_BYTES + CONCURRENT * PER_CONNECTION_BYTES;
        // The listener counts what it relays to the backend; the connector counts the app's
        // bytes (the stream preamble is not payload on either side).
        assert_eq!(metric_value(&m, &up), expected as f64, "{m}");
    }
    // The negotiated suite was recorded (quinn does not expose it; see quic/record.rs).
    let log = pair.b.log_text();
    assert!(
        log.contains("QUIC connection up") && log.contains("suite=\"TLS13_"),
        "{log}"
    );
}

/// cnsa2 offers only TLS13_AES_256_GCM_SHA384, yet QUIC Initial packets need AES-128-GCM
/// (RFC 9001): the Initial suite is kept apart, and the session negotiates cnsa2's own.
#[tokio::test(flavor = "multi_thread")]
async fn cnsa2_profile_negotiates_mlkem1024_and_aes_256() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(hashing_server(backend));
    let pair = start_pair_with(
        dir.path(),
        backend_addr,
        "cnsa2",
        &rcgen::PKCS_ECDSA_P384_SHA384,
        Verify::Ca,
    );
    hashed_roundtrip(pair.app_port, 21, 1024 * 1024)
        .await
        .unwrap_or_else(|e| panic!("cnsa2: {e}\n{}", pair.a.log_text()));
    for (gw, name) in [(&pair.a, CONNECTOR), (&pair.b, LISTENER)] {
        let m = gw.metrics();
        let want = format!(
            "pqgate_tls_sessions_total{{listener=\"{name}\",group=\"MLKEM1024\",suite=\"TLS13_AES_256_GCM_SHA384\""
        );
        assert_eq!(metric_value(&m, &want), 1.0, "{m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_close_passes_both_ways_and_server_speaks_first() {
    let dir = tempfile::tempdir().unwrap();
    // The backend greets first, closes its sending side, then counts what the client sends.
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(1);
    tokio::spawn(async move {
        let (mut s, _) = backend.accept().await.unwrap();
        s.write_all(b"220 hello\r\n").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        tx.send(got.len()).await.unwrap();
    });
    let pair = start_pair(dir.path(), backend_addr);

    let mut app = TcpStream::connect(("127.0.0.1", pair.app_port))
        .await
        .unwrap();
    let mut greeting = Vec::new();
    tokio::time::timeout(EXCHANGE_LIMIT, app.read_to_end(&mut greeting))
        .await
        .expect("greeting and FIN in time")
        .unwrap();
    assert_eq!(greeting, b"220 hello\r\n");
    // Our sending side is still open after the server's FIN.
    let payload = vec![0x5au8; 100_000];
    app.write_all(&payload).await.unwrap();
    app.shutdown().await.unwrap();
    let n = tokio::time::timeout(EXCHANGE_LIMIT, rx.recv())
        .await
        .expect("backend saw our FIN")
        .unwrap();
    assert_eq!(n, payload.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_down_closes_the_stream_then_recovers_and_survives_a_listener_restart() {
    let dir = tempfile::tempdir().unwrap();
    let backend_port = free_port();
    let backend_addr = SocketAddr::from(([127, 0, 0, 1], backend_port));
    let pair = start_pair(dir.path(), backend_addr);

    // Nothing listens on the backend port: the client sees its connection closed.
    let mut app = TcpStream::connect(("127.0.0.1", pair.app_port))
        .await
        .unwrap();
    let _ = app.write_all(b"anyone?").await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(EXCHANGE_LIMIT, app.read_to_end(&mut buf))
        .await
        .expect("the client's connection was closed");
    assert!(
        read.is_err() || buf.is_empty(),
        "no data from a dead backend"
    );
    let m = pair.b.metrics();
    assert!(
        metric_value(
            &m,
            "pqgate_backend_connect_failures_total{listener=\"from-a\"}"
        ) >= 1.0,
        "{m}"
    );

    // The backend comes up: the same QUIC connection carries the next one.
    let backend = TcpListener::bind(backend_addr).await.unwrap();
    tokio::spawn(hashing_server(backend));
    hashed_roundtrip(pair.app_port, 3, 64 * 1024)
        .await
        .unwrap_or_else(|e| panic!("after recovery: {e}\n{}", pair.b.log_text()));
    assert_eq!(handshakes(&pair.b, LISTENER, "ok"), 1.0);

    // Gateway B restarts: A notices (idle timeout) and reconnects with backoff.
    let Pair {
        a,
        b,
        cfg_b,
        admin_b,
        app_port,
        ..
    } = pair;
    drop(b);
    let b = Gateway::start(dir.path(), "gw-b2", &cfg_b, admin_b);
    let mut last = String::new();
    let mut ok = false;
    for _ in 0..60 {
        match hashed_roundtrip(app_port, 5, 64 * 1024).await {
            Ok(()) => {
                ok = true;
                break;
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ok, "no recovery after restart: {last}\n{}", a.log_text());
    assert!(handshakes(&a, CONNECTOR, "ok") >= 2.0, "{}", a.metrics());
    assert_eq!(handshakes(&b, LISTENER, "ok"), 1.0, "{}", b.metrics());
    assert!(http_get(a.admin, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")));
}

/// Polls (bounded) until the metric `prefix` reaches `want`; returns its last value.
fn wait_metric(gw: &Gateway, prefix: &str, want: f64) -> f64 {
    let mut got = gw.metric(prefix);
    for _ in 0..100 {
        if got >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        got = gw.metric(prefix);
    }
    got
}

/// Polls (bounded) until the listener counted at least `n` handshakes with `outcome`: the
/// server's side of a refused handshake may end a moment after the client's.
fn wait_handshakes(gw: &Gateway, outcome: &str, n: f64) -> bool {
    for _ in 0..100 {
        if handshakes(gw, LISTENER, outcome) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A quinn client with the given groups and optional client certificate, trusting `pki`.
fn quic_client(
    pki: &Pki,
    groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
    cert: Option<&Leaf>,
) -> quinn::ClientConfig {
    let tls = client_config(provider_with(groups), pki.roots(), cert);
    let mut tls = Arc::unwrap_or_clone(tls);
    tls.alpn_protocols = vec![b"pqgate-tcp/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(quic))
}

/// One connection attempt from a fresh client endpoint; Ok when the handshake completed.
async fn quic_attempt(port: u16, config: quinn::ClientConfig) -> Result<(), String> {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let connecting = endpoint
        .connect_with(config, addr, "gw-b.test")
        .map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    // A client certificate is checked after the client's Finished: wait for the verdict.
    let verdict = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    match verdict {
        Ok(reason) => Err(reason.to_string()),
        Err(_) => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_classical_quic_clients_and_foreign_certificates_and_ignores_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(hashing_server(backend));
    let pair = start_pair(dir.path(), backend_addr);
    let good = pair.pki.issue(
        "client-ok",
        &["client.test"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = Pki::new(&other_dir, "other");
    let foreign = other.issue(
        "client-foreign",
        &["client.test"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let hybrid = [
        provider::kx_group::X25519MLKEM768,
        provider::kx_group::X25519,
    ];
    let classical = [provider::kx_group::X25519, provider::kx_group::SECP256R1];

    // The control: a hybrid client with a certificate from the site CA gets in.
    quic_attempt(pair.b_port, quic_client(&pair.pki, &hybrid, Some(&good)))
        .await
        .unwrap_or_else(|e| panic!("control client refused: {e}\n{}", pair.b.log_text()));
    let before_ok = handshakes(&pair.b, LISTENER, "ok");

    let e = quic_attempt(pair.b_port, quic_client(&pair.pki, &classical, Some(&good)))
        .await
        .expect_err("a classical-only client must be refused");
    assert!(
        e.contains("40") || e.to_lowercase().contains("handshake"),
        "{e}"
    );
    assert!(
        wait_handshakes(&pair.b, "policy_refused", 1.0),
        "{}\n{}",
        pair.b.metrics(),
        pair.b.log_text()
    );

    let e = quic_attempt(pair.b_port, quic_client(&pair.pki, &hybrid, Some(&foreign)))
        .await
        .expect_err("a certificate from another CA must be refused");
    assert!(!e.is_empty());
    let e = quic_attempt(pair.b_port, quic_client(&pair.pki, &hybrid, None))
        .await
        .expect_err("no client certificate must be refused");
    assert!(!e.is_empty());
    assert!(
        wait_handshakes(&pair.b, "peer_cert_refused", 2.0),
        "{}\n{}",
        pair.b.metrics(),
        pair.b.log_text()
    );
    assert_eq!(handshakes(&pair.b, LISTENER, "ok"), before_ok);

    // The tunnel's own connection is up before the garbage arrives.
    hashed_roundtrip(pair.app_port, 10, 1024).await.unwrap();
    let before_ok = handshakes(&pair.b, LISTENER, "ok");
    // Garbage datagrams, including ones shaped like QUIC long-header Initials.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = SocketAddr::from(([127, 0, 0, 1], pair.b_port));
    let mut state = 0x1234_5678_9abc_def1u64;
    for i in 0..2000usize {
        let mut d = vec![0u8; 1 + (i * 37) % 1400];
        fill(&mut state, &mut d);
        if i % 2 == 0 && d.len() >= 1200 {
            d[0] = 0xc0 | (d[0] & 0x0f);
            d[1..5].copy_from_slice(&1u32.to_be_bytes());
        }
        let _ = udp.send_to(&d, target);
    }
    hashed_roundtrip(pair.app_port, 11, 256 * 1024)
        .await
        .unwrap_or_else(|e| panic!("after garbage: {e}\n{}", pair.b.log_text()));
    assert_eq!(
        handshakes(&pair.a, CONNECTOR, "ok"),
        1.0,
        "the tunnel's connection survived"
    );
    assert_eq!(handshakes(&pair.b, LISTENER, "ok"), before_ok);
    assert!(http_get(pair.admin_b, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")));
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_keeps_the_listener_connection_and_renews_the_connector_link() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(hashing_server(backend));
    let pair = start_pair(dir.path(), backend_addr);
    hashed_roundtrip(pair.app_port, 31, 64 * 1024)
        .await
        .unwrap();

    // B reloads: its UDP socket and the open QUIC connection stay.
    pair.b.signal("HUP");
    assert!(
        pair.b
            .wait_log("configuration reloaded", Duration::from_secs(20)),
        "{}",
        pair.b.log_text()
    );
    hashed_roundtrip(pair.app_port, 32, 64 * 1024)
        .await
        .unwrap_or_else(|e| panic!("after B's reload: {e}\n{}", pair.b.log_text()));
    assert_eq!(
        handshakes(&pair.a, CONNECTOR, "ok"),
        1.0,
        "{}",
        pair.a.log_text()
    );

    // A reloads: its new state brings a new link (one more handshake), the old one closes.
    pair.a.signal("HUP");
    assert!(
        pair.a
            .wait_log("configuration reloaded", Duration::from_secs(20)),
        "{}",
        pair.a.log_text()
    );
    hashed_roundtrip(pair.app_port, 33, 64 * 1024)
        .await
        .unwrap_or_else(|e| panic!("after A's reload: {e}\n{}", pair.a.log_text()));
    assert_eq!(
        handshakes(&pair.a, CONNECTOR, "ok"),
        2.0,
        "{}",
        pair.a.log_text()
    );
    assert_eq!(
        handshakes(&pair.b, LISTENER, "ok"),
        2.0,
        "{}",
        pair.b.log_text()
    );
    // The replaced link's connection is closed: B holds one QUIC connection again.
    let gauge = "pqgate_quic_connections{listener=\"from-a\"}";
    let mut open = f64::NAN;
    for _ in 0..100 {
        open = pair.b.metric(gauge);
        if open == 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(open, 1.0, "{}", pair.b.metrics());
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_drain_lets_an_open_stream_finish() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(hashing_server(backend));
    let mut pair = start_pair(dir.path(), backend_addr);

    let mut app = TcpStream::connect(("127.0.0.1", pair.app_port))
        .await
        .unwrap();
    let mut sent = Context::new(&SHA256);
    let first = vec![0x11u8; 1024 * 1024];
    app.write_all(&first).await.unwrap();
    sent.update(&first);
    // Wait until B relays this stream, then ask it to stop.
    assert!(
        pair.b
            .wait_log("QUIC connection up", Duration::from_secs(20)),
        "{}",
        pair.b.log_text()
    );
    pair.b.signal("TERM");
    assert!(
        pair.b.wait_log("draining", Duration::from_secs(20)),
        "{}",
        pair.b.log_text()
    );
    let second = vec![0x22u8; 1024 * 1024];
    app.write_all(&second).await.unwrap();
    sent.update(&second);
    app.shutdown().await.unwrap();
    let mut digest = Vec::new();
    tokio::time::timeout(EXCHANGE_LIMIT, app.read_to_end(&mut digest))
        .await
        .expect("digest in time")
        .unwrap();
    assert_eq!(digest, sent.finish().as_ref(), "{}", pair.b.log_text());
    assert_eq!(
        pair.b.wait_exit(Duration::from_secs(20)),
        Some(true),
        "{}",
        pair.b.log_text()
    );
    assert!(
        pair.b
            .log_text()
            .contains("drained: all connections closed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connector_verifies_the_listener_by_pin() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(hashing_server(backend));
    let good_dir = dir.path().join("good");
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir_all(&good_dir).unwrap();
    std::fs::create_dir_all(&bad_dir).unwrap();
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let good = start_pair_with(&good_dir, backend_addr, "pq-hybrid", alg, Verify::Pin);
    hashed_roundtrip(good.app_port, 41, 64 * 1024)
        .await
        .unwrap_or_else(|e| panic!("pinned: {e}\n{}", good.a.log_text()));

    let bad = start_pair_with(&bad_dir, backend_addr, "pq-hybrid", alg, Verify::WrongPin);
    let r = hashed_roundtrip(bad.app_port, 42, 1024).await;
    assert!(r.is_err(), "a wrong pin must not carry data");
    let m = bad.a.metrics();
    assert!(
        handshakes(&bad.a, CONNECTOR, "peer_cert_refused") >= 1.0,
        "{m}"
    );
    assert_eq!(handshakes(&bad.a, CONNECTOR, "ok"), 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_max_connections_caps_concurrent_streams() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(hashing_server(backend));
    let limits = ("max_connections = 2\n", "connect_timeout_secs = 1\n");
    let alg = &rcgen::PKCS_ML_DSA_65;
    let pair = start_pair_full(
        dir.path(),
        backend_addr,
        "pq-hybrid",
        alg,
        Verify::Ca,
        limits,
    );

    // Two streams open and held (no FIN yet).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", pair.app_port))
            .await
            .unwrap();
        s.write_all(b"held").await.unwrap();
        held.push(s);
    }
    let streams = "pqgate_quic_active_streams{listener=\"from-a\"}";
    assert_eq!(
        wait_metric(&pair.b, streams, 2.0),
        2.0,
        "{}",
        pair.b.metrics()
    );
    // A third gets no stream credit: the connector gives up after connect_timeout_secs.
    let r = hashed_roundtrip(pair.app_port, 51, 1024).await;
    assert!(r.is_err(), "a third concurrent stream must not be carried");
    assert_eq!(pair.b.metric(streams), 2.0, "{}", pair.b.metrics());
    // One held connection ends: the next one is carried.
    let mut first = held.remove(0);
    first.shutdown().await.unwrap();
    let mut digest = Vec::new();
    tokio::time::timeout(EXCHANGE_LIMIT, first.read_to_end(&mut digest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(digest.len(), 32);
    // The listener returns the stream credit once its side of that stream is fully closed and
    // acknowledged, which can take longer than one connect timeout on a loaded machine: a few
    // bounded attempts.
    let mut last = None;
    for attempt in 0..10u32 {
        match hashed_roundtrip(pair.app_port, 52 + u64::from(attempt), 1024).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
    }
    panic!(
        "after a slot freed, no stream in 10 attempts: {last:?}\n{}",
        pair.a.log_text()
    );
}
