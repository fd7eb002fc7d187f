//! The backend side of a proxied connection: connecting to `host:port` under a time limit
//! (each resolved address in turn), and the PROXY protocol v2 header that tells the backend who
//! the client is and what its TLS session negotiated.

use std::net::SocketAddr;
use std::time::Duration;

use pqgate_core::config::HostPort;
use pqgate_core::proxy_v2;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::tls::SessionFacts;

/// The PROXY v2 header for a terminated connection from `peer` to `local` (the listener's
/// address; unspecified when unknown).
pub(crate) fn proxy_header(
    peer: SocketAddr,
    local: Option<SocketAddr>,
    facts: &SessionFacts,
    sni: Option<&str>,
) -> Vec<u8> {
    let local = local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    proxy_v2::encode(
        peer,
        local,
        &proxy_v2::TlsFacts {
            sni,
            alpn: facts.alpn.as_deref(),
            version: facts.version,
            cipher: facts.suite,
            client_cert: facts.peer_cert,
        },
    )
}

/// Connects to `host:port` (resolving names) within `limit`, trying each address in turn.
pub(crate) async fn connect(target: &HostPort, limit: Duration) -> std::io::Result<TcpStream> {
    let attempt = async {
        let mut last = None;
        for addr in tokio::net::lookup_host((target.host.as_str(), target.port)).await? {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("name resolved to no address")))
    };
    timeout(limit, attempt)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}
