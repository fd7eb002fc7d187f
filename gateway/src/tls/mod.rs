//! TLS termination and origination: building configs from the registry's providers, running
//! handshakes under the listener's limits, and classifying how they end.

pub(crate) mod client_config;
pub(crate) mod connector;
pub(crate) mod listener;
pub(crate) mod material;
pub(crate) mod server_config;

pub use client_config::spki_pin;
pub use material::{load_certified_key, load_roots};

use std::io;

use pqgate_core::metrics::HandshakeOutcome;
use rustls::{AlertDescription, Error as TlsError, PeerIncompatible, SupportedProtocolVersion};

use material::MaterialError;

/// Why a listener's or connector's TLS state could not be built; each names its config key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A certificate, key or CA file is unusable.
    #[error("{source}")]
    Material {
        /// Config key path.
        key: String,
        /// The file problem.
        #[source]
        source: Box<MaterialError>,
    },
    /// The policy and the options contradict each other.
    #[error("{source}")]
    Policy {
        /// Config key path.
        key: String,
        /// The registry's reason.
        #[source]
        source: pqgate_agility::AgilityError,
    },
    /// rustls refused the assembled configuration.
    #[error("{source}")]
    Tls {
        /// Config key path.
        key: String,
        /// rustls's reason.
        #[source]
        source: Box<rustls::Error>,
    },
    /// A verifier or server name could not be built.
    #[error("{message}")]
    Verifier {
        /// Config key path.
        key: String,
        /// The reason.
        message: String,
    },
    /// A certificate source was expected but none was given.
    #[error("no certificate configured")]
    Missing {
        /// Config key path.
        key: String,
    },
}

impl BuildError {
    pub(crate) fn material(key: String, source: MaterialError) -> Self {
        Self::Material {
            key,
            source: Box::new(source),
        }
    }
    pub(crate) fn policy(key: String, source: pqgate_agility::AgilityError) -> Self {
        Self::Policy { key, source }
    }
    pub(crate) fn tls(key: String, source: rustls::Error) -> Self {
        Self::Tls {
            key,
            source: Box::new(source),
        }
    }
    pub(crate) fn verifier(key: String, message: String) -> Self {
        Self::Verifier { key, message }
    }
    pub(crate) fn missing(key: String) -> Self {
        Self::Missing { key }
    }

    /// The config key path this error is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Material { key, .. }
            | Self::Policy { key, .. }
            | Self::Tls { key, .. }
            | Self::Verifier { key, .. }
            | Self::Missing { key } => key,
        }
    }
}

/// A handshake that ran under its timeout, counted on `record`: the stream, or the outcome and
/// log detail to end the connection with (the error's class, or "handshake timeout").
pub(crate) fn handshake_outcome<T>(
    result: Result<io::Result<T>, tokio::time::error::Elapsed>,
    record: &crate::proxy::record::ConnectionRecord<'_>,
    started: tokio::time::Instant,
) -> Result<T, (pqgate_core::metrics::ConnectionOutcome, Option<String>)> {
    use pqgate_core::metrics::ConnectionOutcome::HandshakeFailed;
    match result {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => {
            let outcome = classify_handshake_error(&e);
            record.handshake_done(outcome, started.elapsed());
            Err((HandshakeFailed, Some(format!("{}: {e}", outcome.label()))))
        }
        Err(_) => {
            record.handshake_done(HandshakeOutcome::Timeout, started.elapsed());
            Err((HandshakeFailed, Some("handshake timeout".into())))
        }
    }
}

/// The provider the registry assembles for an endpoint at key path `at` with this key-exchange
/// policy, TLS 1.2 switch and profile; a refusal names `{at}.profile`.
pub fn endpoint_provider(
    at: &str,
    policy: pqgate_agility::KxPolicy,
    tls12: bool,
    registry: &pqgate_agility::Registry,
    profile: &pqgate_agility::Profile,
) -> Result<std::sync::Arc<rustls::crypto::CryptoProvider>, BuildError> {
    registry
        .provider_for(pqgate_agility::ProviderSpec { policy, tls12 }, profile)
        .map_err(|e| BuildError::policy(format!("{at}.profile"), e))
}

/// TLS 1.3 only, or TLS 1.3 and 1.2 when the endpoint opted in.
pub fn protocol_versions(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static TLS13_AND_12: &[&SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    if tls12 { TLS13_AND_12 } else { TLS13_ONLY }
}

/// Maps a failed handshake's IO error to a bounded outcome.
pub fn classify_handshake_error(err: &io::Error) -> HandshakeOutcome {
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<TlsError>()) else {
        return HandshakeOutcome::Failed;
    };
    match tls {
        TlsError::PeerIncompatible(PeerIncompatible::NoKxGroupsInCommon)
        | TlsError::AlertReceived(AlertDescription::HandshakeFailure) => {
            HandshakeOutcome::PolicyRefused
        }
        TlsError::NoCertificatesPresented
        | TlsError::InvalidCertificate(_)
        | TlsError::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
            | AlertDescription::CertificateUnknown,
        ) => HandshakeOutcome::PeerCertRefused,
        _ => HandshakeOutcome::Failed,
    }
}

/// Facts about an established session, for logs, metrics and the info page.
#[derive(Clone, Debug)]
pub struct SessionFacts {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// Cipher suite label.
    pub suite: &'static str,
    /// Key-exchange group label.
    pub group: &'static str,
    /// Whether the group is post-quantum.
    pub post_quantum: bool,
    /// Negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// Whether the peer presented a (verified) certificate.
    pub peer_cert: bool,
}

impl SessionFacts {
    /// Reads the facts off a connection's common state.
    pub fn of(conn: &rustls::CommonState) -> Self {
        let group = conn.negotiated_key_exchange_group().map(|g| g.name());
        let info = group.and_then(pqgate_agility::group_info);
        Self {
            version: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "other",
            },
            suite: pqgate_agility::suite_label(conn.negotiated_cipher_suite().map(|s| s.suite())),
            group: pqgate_agility::group_label(group),
            post_quantum: info.is_some_and(|i| i.post_quantum),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            peer_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        }
    }
}
