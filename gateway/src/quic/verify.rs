//! Verifies the remote QUIC listener the way a TLS connector verifies its remote: WebPKI
//! against the configured CA (when set), then the SubjectPublicKeyInfo SHA-256 pins (when set).
//! With pins alone, trust is in the key: names and dates are not checked, the handshake
//! signature is.

use std::sync::Arc;

use pqgate_core::spki;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// WebPKI and/or pins.
#[derive(Debug)]
pub struct RemoteVerifier {
    /// The CA check, when a CA is configured.
    pub webpki: Option<Arc<WebPkiServerVerifier>>,
    /// SHA-256 digests of accepted SubjectPublicKeyInfos.
    pub pins: Vec<[u8; 32]>,
    /// Signature algorithms of the provider.
    pub algorithms: WebPkiSupportedAlgorithms,
}

impl RemoteVerifier {
    fn pin_matches(&self, cert: &CertificateDer<'_>) -> bool {
        let Ok(spki) = spki::subject_public_key_info(cert) else {
            return false;
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
        self.pins.iter().any(|p| p[..] == *digest.as_ref())
    }
}

impl ServerCertVerifier for RemoteVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(webpki) = &self.webpki {
            webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        }
        if !self.pins.is_empty() && !self.pin_matches(end_entity) {
            return Err(CertificateError::ApplicationVerificationFailure.into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // QUIC is TLS 1.3 only.
        Err(rustls::Error::General(
            "TLS 1.2 is not used over QUIC".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
