//! The PQ PSK channel driver: a quinn QUIC endpoint, mutually authenticated against a configured
//! CA (and CRLs), runs the sans-IO rotation machine of `pqgate_core::pqpsk` per WireGuard peer
//! and hands each derived PSK to a [`PskSink`] (the WireGuard engine, or a fake in tests).

mod channel;
mod crypto;
mod leaf;
mod node;
mod peer;
mod tls;
mod trust;

use std::path::PathBuf;

pub use leaf::Summary as CertSummary;
pub use node::{Node, TlsReload};
pub use pqgate_core::pqpsk::{Failure, PeerStatus, Psk, WgKey};
pub use trust::OwnCertError;

/// The channel's TLS exporter: `(label, context, out)`, false when it failed.
pub type Exporter<'a> = dyn Fn(&[u8], &[u8], &mut [u8]) -> bool + 'a;

/// Where derived PSKs go: the WireGuard engine for the peer with this public key.
pub trait PskSink: Send + Sync + 'static {
    /// Sets the peer's PSK for its next handshake; the running session keeps its keys.
    fn install(&self, peer: WgKey, psk: Psk, epoch: u64);
    /// Starts a handshake with the peer now (the initiator, once both sides hold the new PSK).
    fn force_handshake(&self, peer: WgKey);
    /// pq-required: the last PQ PSK expired; the peer must carry no more data until a new one.
    fn expire(&self, peer: WgKey);
    /// pq-preferred: the last PQ PSK expired; the peer's next handshake uses its static PSK (or
    /// none) and its agile keys go. The running session is kept (WireGuard's own rekey moves it
    /// over; both sides degrade at about the same time since expiry follows the epoch). The
    /// default does nothing: the peer keeps its last PSK.
    fn fall_back(&self, _peer: WgKey) {}
    /// After `install` of `epoch`: agile tunnel keys for the peer, if it is configured for them.
    /// `export(label, context, out)` fills `out` from the channel's TLS exporter (false on
    /// failure); `initiator` says which side of the channel this node is.
    fn install_agile(&self, _peer: WgKey, _epoch: u64, _initiator: bool, _export: &Exporter<'_>) {}
}

/// Why the channel could not start. Every variant names the config key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PqPskError {
    /// The configuration is invalid (see `pqgate_core::pqpsk::config::validate`).
    #[error("{key}: {message}")]
    Config {
        /// Config key path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Certificates, keys, CA or CRL files are unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::BuildError),
    /// A CRL file could not be read.
    #[error("cannot read CRL {}: {source}", path.display())]
    Crl {
        /// The file.
        path: PathBuf,
        /// The PEM decoder's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// This node's own certificate fails under the material read (expired, not yet valid,
    /// issued by another CA, revoked): every peer would refuse it.
    #[error("this node's certificate {} {source}", path.display())]
    OwnCert {
        /// The certificate file.
        path: PathBuf,
        /// What fails, and the config key at fault.
        #[source]
        source: Box<trust::OwnCertError>,
    },
    /// A second KEM failed its self-test or key generation.
    #[error("{key}: {source}")]
    Kem {
        /// Config key path.
        key: String,
        /// The registry's reason.
        #[source]
        source: pqgate_agility::plugin::PluginError,
    },
    /// The UDP socket could not be bound.
    #[error("cannot bind the QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl PqPskError {
    /// The config key this error is about (`pqpsk.cert`, `pqpsk.crl`, ...).
    pub fn key(&self) -> &str {
        match self {
            Self::Config { key, .. } | Self::Kem { key, .. } => key,
            Self::Tls(e) => e.key(),
            Self::Crl { .. } => "pqpsk.crl",
            Self::OwnCert { source, .. } => source.key,
            Self::Bind { .. } => "pqpsk.listen",
        }
    }
}
