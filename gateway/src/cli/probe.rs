//! `pqgate probe HOST:PORT`: one TLS handshake with a remote server through the registry's
//! `pq-hybrid` provider (post-quantum groups offered first, classical ones accepted, so the
//! answer shows what the server chose), then close_notify. Reports protocol, suite, group and
//! whether the key exchange is post-quantum. Blocking IO, every step under one timeout.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pqgate_agility::{AgilityError, KxPolicy, ProviderSpec, Registry, builtin_profile};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use serde::Serialize;

use crate::tls::SessionFacts;
use crate::tls::client_config::RemoteVerifier;
use crate::tls::material::{self, MaterialError};

/// The profile the probe offers: the default one, hybrid groups first.
const PROBE_PROFILE: &str = "pq-hybrid";

/// Command-line arguments of `pqgate probe`.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// Server to probe: HOST:PORT or [V6]:PORT.
    pub target: String,
    /// Accept any certificate (the handshake signature is still verified).
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// PEM CA bundle to verify the server's certificate and name against.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Name to send as SNI and verify (default: the target's host).
    #[arg(long)]
    pub sni: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when the negotiated key exchange is not post-quantum.
    #[arg(long)]
    pub require_pq: bool,
    /// Seconds allowed to connect, and for each handshake read or write.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

/// Runs `pqgate probe`: prints the report; exit 1 when `--require-pq` is not met.
pub(crate) fn cli(args: &ProbeArgs) -> Result<ExitCode, ProbeError> {
    let registry = Registry::power_on();
    let opts = ProbeOptions {
        target: args.target.clone(),
        server_name: args.sni.clone(),
        ca: args.ca.clone(),
        insecure: args.insecure,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
    };
    let report = probe(&registry, &opts)?;
    match args.json {
        true => println!("{}", render_json(&report)),
        false => print!("{}", render_text(&report)),
    }
    match args.require_pq && !report.post_quantum {
        true => {
            eprintln!(
                "pqgate probe: {} negotiated {}, not post-quantum",
                report.target, report.group
            );
            Ok(ExitCode::FAILURE)
        }
        false => Ok(ExitCode::SUCCESS),
    }
}

/// What to probe and how to trust it.
#[derive(Clone, Debug)]
pub(crate) struct ProbeOptions {
    /// `HOST:PORT` or `[V6]:PORT`.
    pub target: String,
    /// Name sent as SNI and verified; the target's host when absent.
    pub server_name: Option<String>,
    /// PEM roots to verify the server against (WebPKI: chain, name, dates).
    pub ca: Option<PathBuf>,
    /// Accept any certificate (the handshake signature is still checked).
    pub insecure: bool,
    /// Bound on connecting, and separately on the handshake's reads and writes.
    pub timeout: Duration,
}

/// What one handshake negotiated.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ProbeReport {
    /// The target as given.
    pub target: String,
    /// The address connected to.
    pub address: SocketAddr,
    /// The name sent as SNI (none for an IP address) and verified.
    pub server_name: String,
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: &'static str,
    /// Cipher suite.
    pub suite: &'static str,
    /// Key-exchange group.
    pub group: &'static str,
    /// Whether the group is post-quantum (hybrid or pure ML-KEM).
    pub post_quantum: bool,
    /// Negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// Whether the certificate was verified (false with `--insecure`).
    pub verified: bool,
    /// Connect plus handshake, in milliseconds (informational).
    pub elapsed_ms: f64,
}

/// Why a probe failed, by blame: the caller's input, the network, or the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ProbeError {
    /// Neither `--ca` nor `--insecure` was given.
    #[error("no trust anchor: pass --ca FILE to verify the server, or --insecure")]
    NoTrust,
    /// The target is not `HOST:PORT` or does not resolve.
    #[error("target {target:?} is not a resolvable HOST:PORT")]
    Target {
        /// The target.
        target: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The SNI name is not a DNS name or IP address.
    #[error("server name {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
    /// The CA file is unusable.
    #[error("CA file")]
    Ca(#[source] Box<MaterialError>),
    /// The registry has no usable provider (self-tests disabled every group or suite).
    #[error("building the client provider")]
    Provider(#[source] AgilityError),
    /// rustls refused the configuration.
    #[error("building the client configuration: {0}")]
    Config(String),
    /// No resolved address accepted a TCP connection.
    #[error("connecting to {target}")]
    Connect {
        /// The target.
        target: String,
        /// The last connect error.
        #[source]
        source: io::Error,
    },
    /// The handshake failed (the server refused, timed out, or sent something invalid).
    #[error("TLS handshake with {address}")]
    Handshake {
        /// The address.
        address: SocketAddr,
        /// The failure; a `rustls::Error` inside for protocol failures.
        #[source]
        source: io::Error,
    },
}

/// Connects to `opts.target`, completes one handshake and reports what was negotiated.
pub(crate) fn probe(registry: &Registry, opts: &ProbeOptions) -> Result<ProbeReport, ProbeError> {
    let config = client_config(registry, opts)?;
    let host = host_part(&opts.target);
    let name_text = opts.server_name.clone().unwrap_or_else(|| host.to_owned());
    let server_name = ServerName::try_from(name_text.clone())
        .map_err(|_| ProbeError::ServerName(name_text.clone()))?;
    let addrs: Vec<SocketAddr> = opts
        .target
        .to_socket_addrs()
        .map_err(|source| ProbeError::Target {
            target: opts.target.clone(),
            source,
        })?
        .collect();
    let started = Instant::now();
    let (mut sock, address) = connect_any(&opts.target, &addrs, opts.timeout)?;
    let handshake_err = |source| ProbeError::Handshake { address, source };
    sock.set_read_timeout(Some(opts.timeout))
        .and_then(|()| sock.set_write_timeout(Some(opts.timeout)))
        .map_err(handshake_err)?;
    let mut conn = ClientConnection::new(config, server_name)
        .map_err(|e| handshake_err(io::Error::other(e)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(handshake_err)?;
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let facts = SessionFacts::of(&conn);
    conn.send_close_notify();
    // The session is already judged; a server that resets instead of reading is not an error.
    let _ = conn.complete_io(&mut sock);
    Ok(ProbeReport {
        target: opts.target.clone(),
        address,
        server_name: name_text,
        protocol: facts.version,
        suite: facts.suite,
        group: facts.group,
        post_quantum: facts.post_quantum,
        alpn: facts.alpn.map(|a| String::from_utf8_lossy(&a).into_owned()),
        verified: !opts.insecure,
        elapsed_ms,
    })
}

/// The report as one JSON object.
pub(crate) fn render_json(r: &ProbeReport) -> String {
    // A struct of strings, numbers and booleans always serialises.
    serde_json::to_string(r).unwrap_or_default()
}

/// The report as aligned `key value` lines.
pub(crate) fn render_text(r: &ProbeReport) -> String {
    let verified = match r.verified {
        true => "verified",
        false => "not verified (--insecure)",
    };
    format!(
        "target       {} ({})\nserver name  {}\nprotocol     {}\nsuite        {}\n\
         group        {}\npost-quantum {}\nalpn         {}\ncertificate  {verified}\n",
        r.target,
        r.address,
        r.server_name,
        r.protocol,
        r.suite,
        r.group,
        if r.post_quantum { "yes" } else { "no" },
        r.alpn.as_deref().unwrap_or("-"),
    )
}

/// The host of `HOST:PORT` or `[V6]:PORT`, brackets removed; the whole string without a port.
fn host_part(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn connect_any(
    target: &str,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ProbeError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok((s, *addr)),
            Err(e) => last = e,
        }
    }
    Err(ProbeError::Connect {
        target: target.to_owned(),
        source: last,
    })
}

fn client_config(
    registry: &Registry,
    opts: &ProbeOptions,
) -> Result<Arc<ClientConfig>, ProbeError> {
    let spec = ProviderSpec {
        policy: KxPolicy::HybridPreferred,
        tls12: true,
    };
    let profile = builtin_profile(PROBE_PROFILE)
        .ok_or(ProbeError::Provider(AgilityError::NoDefaultProfile))?;
    let provider = registry
        .provider_for(spec, &profile)
        .map_err(ProbeError::Provider)?;
    let verifier: Arc<dyn ServerCertVerifier> = match (&opts.ca, opts.insecure) {
        (Some(ca), _) => {
            let roots = material::load_roots(ca).map_err(|e| ProbeError::Ca(Box::new(e)))?;
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| ProbeError::Config(e.to_string()))?
        }
        // `--insecure`: any certificate is accepted, but the handshake signature must still
        // verify with the certificate's key (so the server holds the key it presents).
        (None, true) => Arc::new(RemoteVerifier {
            webpki: None,
            pins: Vec::new(),
            algorithms: provider.signature_verification_algorithms,
        }),
        (None, false) => return Err(ProbeError::NoTrust),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| ProbeError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn host_of_targets() {
        assert_eq!(host_part("gw.example:8443"), "gw.example");
        assert_eq!(host_part("127.0.0.1:443"), "127.0.0.1");
        assert_eq!(host_part("[::1]:8443"), "::1");
        assert_eq!(host_part("gw.example"), "gw.example");
    }
}
