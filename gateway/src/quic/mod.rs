//! TCP over QUIC between two gateways: a connector with `transport = "quic"` keeps one mutually
//! authenticated, post-quantum QUIC connection to a listener with `transport = "quic"` and
//! carries each accepted TCP connection as one bidirectional stream, which the listener relays
//! to its backend. TCP FIN and stream FIN map onto each other (half-close); a failed stream is
//! reset, never silently finished.
//!
//! Wire: every stream starts with the one-byte [`STREAM_PREAMBLE`] (it also makes the stream
//! visible to the listener before the client sends anything, for server-speaks-first
//! protocols), then the raw TCP bytes. ALPN [`ALPN`]. Stream reset codes are in [`code`].

pub(crate) mod connector;
pub(crate) mod listener;
pub(crate) mod record;
pub(crate) mod stream;
pub(crate) mod tls;

use pqgate_core::metrics::HandshakeOutcome;
use quinn::{ConnectionError, TransportErrorCode};

pub(crate) use connector::QuicConnectorState;
pub(crate) use listener::{QuicListenerState, QuicListeners};

/// The ALPN protocol id both sides require.
pub(crate) const ALPN: &[u8] = b"pqgate-tcp/1";

/// First byte of every stream: the stream protocol's version.
pub(crate) const STREAM_PREAMBLE: u8 = 1;

/// QUIC connections per endpoint that are up now, by `listener` (listener or connector name).
pub(crate) const QUIC_CONNECTIONS: &str = "pqgate_quic_connections";
/// Streams open now, by `listener` (one per tunnelled TCP connection).
pub(crate) const QUIC_ACTIVE_STREAMS: &str = "pqgate_quic_active_streams";
/// Connector reconnect attempts after a failure or a lost connection, by `listener`.
pub(crate) const QUIC_RECONNECTS: &str = "pqgate_quic_reconnects_total";

/// Application error codes: stream resets (`RESET_STREAM` / `STOP_SENDING`) and connection
/// closes.
pub(crate) mod code {
    /// Orderly close (connector or listener stopped).
    pub(crate) const DONE: u32 = 0;
    /// The listener could not reach its backend.
    pub(crate) const BACKEND_UNAVAILABLE: u32 = 1;
    /// The listener is at `max_connections`.
    pub(crate) const REFUSED: u32 = 2;
    /// The stream did not start with [`super::STREAM_PREAMBLE`], or ALPN was wrong.
    pub(crate) const PROTOCOL: u32 = 3;
    /// The relay failed on one side (IO error): the other side is aborted too.
    pub(crate) const ABORTED: u32 = 4;
    /// The negotiated key exchange is outside the listener's policy.
    pub(crate) const POLICY: u32 = 5;
}

/// Maps a failed QUIC handshake to the bounded outcomes TLS handshakes use: a TLS alert is
/// carried as transport error code 0x100 + alert (RFC 9001, section 4.8).
pub(crate) fn classify(err: &ConnectionError) -> HandshakeOutcome {
    let code = match err {
        ConnectionError::TransportError(e) => e.code,
        ConnectionError::ConnectionClosed(c) => c.error_code,
        ConnectionError::TimedOut => return HandshakeOutcome::Timeout,
        _ => return HandshakeOutcome::Failed,
    };
    let alert = |a: rustls::AlertDescription| TransportErrorCode::crypto(u8::from(a));
    use rustls::AlertDescription as A;
    if code == alert(A::HandshakeFailure) || code == alert(A::InsufficientSecurity) {
        HandshakeOutcome::PolicyRefused
    } else if [
        A::BadCertificate,
        A::UnknownCA,
        A::CertificateRequired,
        A::CertificateUnknown,
        A::DecryptError,
        // rustls's alert for a failed pin (ApplicationVerificationFailure).
        A::AccessDenied,
    ]
    .into_iter()
    .any(|a| code == alert(a))
    {
        HandshakeOutcome::PeerCertRefused
    } else {
        HandshakeOutcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn_proto::TransportError;

    fn local(code: TransportErrorCode) -> ConnectionError {
        ConnectionError::TransportError(TransportError {
            code,
            frame: None,
            reason: String::new(),
        })
    }

    #[test]
    fn tls_alerts_map_to_handshake_outcomes() {
        let alert = |a: rustls::AlertDescription| local(TransportErrorCode::crypto(u8::from(a)));
        use rustls::AlertDescription as A;
        assert_eq!(
            classify(&alert(A::HandshakeFailure)),
            HandshakeOutcome::PolicyRefused
        );
        for a in [A::UnknownCA, A::BadCertificate, A::CertificateRequired] {
            assert_eq!(classify(&alert(a)), HandshakeOutcome::PeerCertRefused);
        }
        assert_eq!(classify(&alert(A::DecodeError)), HandshakeOutcome::Failed);
        assert_eq!(
            classify(&local(TransportErrorCode::PROTOCOL_VIOLATION)),
            HandshakeOutcome::Failed
        );
        assert_eq!(
            classify(&ConnectionError::TimedOut),
            HandshakeOutcome::Timeout
        );
    }
}
