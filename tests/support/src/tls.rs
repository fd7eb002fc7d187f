//! TLS clients as the tests' peers: providers offering chosen key-exchange groups, TLS 1.3
//! client configs (optionally with a client certificate), a handshake, and a request/response
//! exchange whose TLS alerts surface as errors.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Leaf;

/// A provider whose only groups are `groups`.
pub fn provider_with(groups: &[&'static dyn SupportedKxGroup]) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: groups.to_vec(),
        ..aws_lc_rs::default_provider()
    })
}

/// Classical-only groups, as OpenSSL 3.0 or curl would offer.
pub fn classical() -> Arc<CryptoProvider> {
    provider_with(&[aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1])
}

/// A hybrid-first client, as Chromium would offer.
pub fn hybrid_first() -> Arc<CryptoProvider> {
    provider_with(&[
        aws_lc_rs::kx_group::X25519MLKEM768,
        aws_lc_rs::kx_group::X25519,
    ])
}

/// A TLS 1.3 client config trusting `roots`, optionally with a client certificate.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    client: Option<&Leaf>,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => {
            let chain = CertificateDer::pem_file_iter(&leaf.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects and completes a TLS handshake with `server_name`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// Completes a handshake, sends `request`, half-closes (close_notify) and reads to the end;
/// TLS errors (alerts) surface on the read.
pub async fn exchange(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
    request: &[u8],
) -> std::io::Result<(Vec<u8>, Option<rustls::NamedGroup>)> {
    let mut tls = tls_connect(addr, config, server_name).await?;
    let group = tls
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .map(|g| g.name());
    tls.write_all(request).await?;
    tls.shutdown().await?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok((out, group))
}

/// Reads a TLS stream to its end; an alert or reset is an error.
pub async fn read_to_end(tls: &mut TlsStream<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(out)
}

/// A hybrid-required client provider, as pqgate itself builds one (X25519MLKEM768 only).
pub fn hybrid_required() -> Arc<CryptoProvider> {
    pqgate_agility::build_provider(pqgate_agility::ProviderSpec {
        policy: pqgate_agility::KxPolicy::HybridRequired,
        tls12: false,
    })
    .unwrap()
}

/// One test's loopback site: a temp dir, a CA (`NAME-ca.pem`), a localhost server leaf, a free
/// listener port and an admin address.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub pki: crate::Pki,
    pub leaf: Leaf,
    pub port: u16,
    pub admin: SocketAddr,
}

impl Site {
    /// The CA named `ca`, the server leaf written as `leaf-cert.pem`/`leaf-key.pem`.
    pub fn new(ca: &str, leaf: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::Pki::new(dir.path(), ca);
        let leaf = pki.server(leaf);
        Site {
            dir,
            pki,
            leaf,
            port: crate::free_port(),
            admin: crate::admin_addr(),
        }
    }
}

impl Site {
    /// The listener's address, 127.0.0.1:`port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A client trusting this site's CA, offering `provider`'s groups, no client certificate.
    pub fn client(&self, provider: Arc<CryptoProvider>) -> Arc<ClientConfig> {
        client_config(provider, self.pki.roots(), None)
    }

    /// Starts the gateway `gw`: `[admin]` and one listener `name` on `port` with the site's
    /// leaf, in front of `backend` under `policy`, `extra` (keys, sub-tables) appended.
    pub fn serve(&self, name: &str, backend: &str, policy: &str, extra: &str) -> crate::Gateway {
        let listener = crate::listener_toml(name, self.port, backend, &self.leaf, policy) + extra;
        crate::Gateway::serve(self.dir.path(), self.admin, &listener)
    }
}

/// A listener's `[listener.client_auth]` table: client certificates from `ca`, `mode`
/// (`required` or `optional`).
pub fn client_auth_toml(ca: &std::path::Path, mode: &str) -> String {
    format!(
        "[listener.client_auth]\nca = \"{}\"\nmode = \"{mode}\"\n",
        ca.display()
    )
}

/// [`exchange`] with `localhost` that must succeed: the reply and the negotiated group.
pub async fn exchange_ok(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    request: &[u8],
) -> (Vec<u8>, Option<rustls::NamedGroup>) {
    exchange(addr, config, "localhost", request)
        .await
        .unwrap_or_else(|e| panic!("exchange with {addr}: {e}"))
}

/// [`exchange`] of `x` with `localhost` that must fail (refused handshake, alert, or a
/// certificate the client does not accept): the error.
pub async fn exchange_refused(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Error {
    match exchange(addr, config, "localhost", b"x").await {
        Ok((reply, group)) => panic!("{addr} served {reply:?} over {group:?}, expected a refusal"),
        Err(e) => e,
    }
}

/// The TLS error (such as a received alert) an I/O error carries, if any.
pub fn tls_error(err: &std::io::Error) -> Option<rustls::Error> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned()
}
