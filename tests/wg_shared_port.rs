//! The tunnel port shared with QUIC (gateway/src/wg/shared_port.rs): a quinn server runs on a
//! `SharedPort` fed the way the engine feeds it (datagrams whose first byte has the QUIC fixed
//! bit), while WireGuard-typed datagrams on the same port never reach it; a stock quinn client
//! completes a post-quantum handshake (X25519MLKEM768) and echoes a stream byte for byte.
//! Loopback only.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use pqgate::wg::{SharedPort, is_quic};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use support::{Pki, hybrid_first, provider_with};

fn server_config(pki: &Pki) -> quinn::ServerConfig {
    let leaf = pki.server("srv");
    let certs = vec![CertificateDer::from_pem_file(&leaf.cert).expect("cert")];
    let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("key");
    // Only the hybrid group: a completed handshake is a post-quantum one.
    let hybrid_only = provider_with(&[rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768]);
    let mut tls = rustls::ServerConfig::builder_with_provider(hybrid_only)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server cert");
    tls.alpn_protocols = vec![b"test".to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC server");
    quinn::ServerConfig::with_crypto(Arc::new(quic))
}

fn client_config(pki: &Pki) -> quinn::ClientConfig {
    let mut tls = rustls::ClientConfig::builder_with_provider(hybrid_first())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"test".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC client");
    quinn::ClientConfig::new(Arc::new(quic))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_and_wireguard_share_one_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path(), "shared");
    // The "tunnel socket": a blocking socket read by a thread, as the engine does.
    let tunnel = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    tunnel
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let port_addr = tunnel.local_addr().expect("addr");
    let (shared, sender) = SharedPort::new(tunnel.try_clone().expect("dup")).expect("port");
    let stop = Arc::new(AtomicBool::new(false));
    let wireguard_typed = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, wg) = (stop.clone(), wireguard_typed.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, src)) = tunnel.recv_from(&mut buf) else {
                    continue;
                };
                match buf.first() {
                    Some(&b) if is_quic(b) => {
                        let _ = sender.try_send((BytesMut::from(&buf[..n]), src));
                    }
                    _ => {
                        wg.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // Never advertise grease_quic_bit (RFC 9287): the peer must keep the fixed bit set, or
    // its packets would be taken for WireGuard's.
    let mut endpoint_config = quinn::EndpointConfig::default();
    endpoint_config.grease_quic_bit(false);
    let server = quinn::Endpoint::new_with_abstract_socket(
        endpoint_config,
        Some(server_config(&pki)),
        Arc::new(shared),
        Arc::new(quinn::TokioRuntime),
    )
    .expect("server endpoint");
    let echo = tokio::spawn(async move {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("accepted");
        let (mut send, mut recv) = conn.accept_bi().await.expect("stream");
        let data = recv.read_to_end(1 << 20).await.expect("read");
        send.write_all(&data).await.expect("write");
        send.finish().expect("finish");
        let _ = send.stopped().await;
        server.wait_idle().await;
    });
    // WireGuard-typed datagrams (types 1 and 4) on the same port, from a plain socket.
    let wg = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    for t in [1u8, 4, 4, 1] {
        let mut d = vec![0u8; 148];
        d[0] = t;
        wg.send_to(&d, port_addr).expect("send");
    }
    let mut client =
        quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("client");
    client.set_default_client_config(client_config(&pki));
    let conn = client
        .connect(port_addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake over the shared port");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (mut send, mut recv) = conn.open_bi().await.expect("open");
    send.write_all(&payload).await.expect("write");
    send.finish().expect("finish");
    let back = recv.read_to_end(1 << 20).await.expect("echo");
    assert_eq!(back, payload, "echo over the shared port differs");
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(5), echo).await;
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    assert_eq!(
        wireguard_typed.load(Ordering::Relaxed),
        4,
        "WireGuard datagrams misrouted"
    );
}
