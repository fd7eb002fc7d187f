//! Builds the quinn configs of a QUIC listener and a QUIC connector from their config: the
//! provider from the registry for the endpoint's policy and profile (never a process default),
//! wrapped to record what is negotiated; TLS 1.3 only; ALPN `pqgate-tcp/1`; client
//! authentication, certificates, CA and pins as for TLS endpoints; transport limits from
//! `limits`.
//!
//! Initial packets: RFC 9001 fixes their AEAD to AES-128-GCM (keys derived from the public
//! destination connection ID, so it protects nothing secret). It is taken from aws-lc-rs
//! separately from the profile's suites, so a profile without it (cnsa2: AES-256-GCM only)
//! still negotiates only its own suites for the handshake and 1-RTT keys.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pqgate_agility::{Profile, ProviderSpec, Registry};
use pqgate_core::config::{ClientAuthMode, ConnectorConfig, Limits, ListenerConfig};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{TransportConfig, VarInt};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use super::ALPN;
use super::record::{RecordingClient, RecordingServer, recording_provider};
use crate::tls::client_config::remote_verifier;
use crate::tls::server_config::check_cert_scheme;
use crate::tls::{BuildError, material};

/// Connection-wide receive window: bounds the memory one peer can make us buffer across all
/// its streams (quinn's default is unbounded).
const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Per-stream receive window: enough for a bulk stream at LAN rates (2 MiB at 1 ms RTT is
/// 16 Gbit/s), small enough that thousands of idle streams cost nothing until they burst.
const STREAM_WINDOW_BYTES: u32 = 2 * 1024 * 1024;
/// Send buffer across all streams of a connection.
const SEND_WINDOW_BYTES: u64 = 16 * 1024 * 1024;
/// Longest a silent peer is kept: the connection's idle timeout is `limits.idle_timeout_secs`
/// capped at this, so a dead remote gateway is noticed (and reconnected to) quickly even when
/// per-stream idle timeouts are long.
const MAX_DEAD_PEER: Duration = Duration::from_secs(30);
/// Keep-alives per idle-timeout period: three, so two lost in a row do not end the connection.
const KEEP_ALIVES_PER_IDLE: u32 = 3;

/// The Initial-packet suite (see the module doc).
fn initial_suite(at: &str) -> Result<rustls::quic::Suite, BuildError> {
    rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .ok_or_else(|| BuildError::verifier(at.to_owned(), "no QUIC initial suite".into()))
}

/// Transport settings; `peer_streams` is how many streams the peer may open at once.
fn transport(limits: &Limits, peer_streams: u32) -> Arc<TransportConfig> {
    let dead = Duration::from_secs(limits.idle_timeout_secs).min(MAX_DEAD_PEER);
    let mut t = TransportConfig::default();
    t.max_idle_timeout(dead.try_into().ok());
    t.keep_alive_interval(Some(dead / KEEP_ALIVES_PER_IDLE));
    t.max_concurrent_bidi_streams(VarInt::from_u32(peer_streams));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.receive_window(VarInt::from_u32(CONNECTION_WINDOW_BYTES));
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES));
    t.send_window(SEND_WINDOW_BYTES);
    Arc::new(t)
}

fn provider(
    at: &str,
    spec: ProviderSpec,
    registry: &Registry,
    profile: &Profile,
) -> Result<Arc<CryptoProvider>, BuildError> {
    let provider = registry
        .provider_for(spec, profile)
        .map_err(|e| BuildError::policy(format!("{at}.profile"), e))?;
    Ok(Arc::new(recording_provider(&provider)))
}

/// A resolver that always presents one certificate.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Builds a QUIC listener's server config. `self_signed` supplies the (cert, key) paths when
/// the listener uses the generated certificate.
pub(crate) fn server_config(
    at: &str,
    l: &ListenerConfig,
    self_signed: Option<(&Path, &Path)>,
    registry: &Registry,
    profile: &Profile,
) -> Result<quinn::ServerConfig, BuildError> {
    let spec = ProviderSpec {
        policy: l.policy,
        tls12: false,
    };
    let provider = provider(at, spec, registry, profile)?;
    let (cert, key) = match (&l.cert, &l.key, self_signed) {
        (Some(c), Some(k), _) => (c.as_path(), k.as_path()),
        (_, _, Some(pair)) => pair,
        _ => return Err(BuildError::missing(format!("{at}.cert"))),
    };
    let certified = material::load_certified_key(cert, key, &provider)
        .map_err(|e| BuildError::material(format!("{at}.cert"), e))?;
    check_cert_scheme(&format!("{at}.cert"), &certified, profile)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| BuildError::tls(at.to_owned(), e))?;
    let builder = match &l.client_auth {
        Some(auth) => {
            let key = format!("{at}.client_auth.ca");
            let roots =
                material::load_roots(&auth.ca).map_err(|e| BuildError::material(key.clone(), e))?;
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let v = match auth.mode {
                ClientAuthMode::Required => v,
                ClientAuthMode::Optional => v.allow_unauthenticated(),
            };
            let v = v
                .build()
                .map_err(|e| BuildError::verifier(key, e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let mut tls = builder.with_cert_resolver(Arc::new(FixedCert(certified)));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.ignore_client_order = true;
    let no_initial = |_| BuildError::verifier(at.to_owned(), "no QUIC initial suite".into());
    let quic =
        QuicServerConfig::with_initial(Arc::new(tls), initial_suite(at)?).map_err(no_initial)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(RecordingServer(Arc::new(quic))));
    server.transport_config(transport(&l.limits, l.limits.max_connections));
    Ok(server)
}

/// A QUIC connector's client config and the name it verifies.
pub(crate) struct ConnectorQuic {
    /// The quinn client config.
    pub client: quinn::ClientConfig,
    /// Server name sent and verified.
    pub server_name: String,
}

/// Builds a QUIC connector's client config.
pub(crate) fn client_config(
    at: &str,
    c: &ConnectorConfig,
    registry: &Registry,
    profile: &Profile,
) -> Result<ConnectorQuic, BuildError> {
    let spec = ProviderSpec {
        policy: c.policy,
        tls12: false,
    };
    let provider = provider(at, spec, registry, profile)?;
    let verifier = remote_verifier(at, c, &provider)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| BuildError::tls(at.to_owned(), e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut tls = match (&c.client_cert, &c.client_key) {
        (Some(cert), Some(key)) => {
            let key_path = format!("{at}.client_cert");
            let (chain, der) = (
                material::load_certs(cert, "certificate")
                    .map_err(|e| BuildError::material(key_path.clone(), e))?,
                material::load_key(key).map_err(|e| BuildError::material(key_path.clone(), e))?,
            );
            let ck = material::load_certified_key(cert, key, &provider)
                .map_err(|e| BuildError::material(key_path.clone(), e))?;
            check_cert_scheme(&key_path, &ck, profile)?;
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| BuildError::tls(key_path, e))?
        }
        _ => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let server_name = c
        .server_name
        .clone()
        .unwrap_or_else(|| c.remote.host.clone());
    rustls::pki_types::ServerName::try_from(server_name.as_str())
        .map_err(|e| BuildError::verifier(format!("{at}.server_name"), e.to_string()))?;
    let no_initial = |_| BuildError::verifier(at.to_owned(), "no QUIC initial suite".into());
    let quic =
        QuicClientConfig::with_initial(Arc::new(tls), initial_suite(at)?).map_err(no_initial)?;
    let mut client = quinn::ClientConfig::new(Arc::new(RecordingClient(Arc::new(quic))));
    // The listener never opens streams towards the connector.
    client.transport_config(transport(&c.limits, 0));
    Ok(ConnectorQuic {
        client,
        server_name,
    })
}
