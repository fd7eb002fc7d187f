//! Builds a connector's `ClientConfig`: the remote is verified against a CA bundle, a set of
//! SubjectPublicKeyInfo pins, or both; an optional client certificate gives mutual TLS.

use std::sync::Arc;

use pqgate_agility::{Profile, Registry};
use pqgate_core::config::ConnectorConfig;
use pqgate_core::hex;
use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::material;
use super::{BuildError, protocol_versions};
use crate::keys::x509;

/// A connector's TLS state, rebuilt as a whole on reload.
pub(crate) struct ConnectorTls {
    /// Handshake configuration.
    pub config: Arc<ClientConfig>,
    /// Name sent as SNI and verified.
    pub server_name: ServerName<'static>,
}

/// Builds the TLS side of connector `at`.
pub(crate) fn build_connector_tls(
    at: &str,
    c: &ConnectorConfig,
    registry: &Registry,
    profile: &Profile,
) -> Result<ConnectorTls, BuildError> {
    let provider = super::endpoint_provider(at, c.policy, c.tls12, registry, profile)?;
    let verifier = remote_verifier(at, c, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(protocol_versions(c.tls12))
        .map_err(|e| BuildError::tls(at.to_owned(), e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&c.client_cert, &c.client_key) {
        (Some(cert), Some(key)) => {
            let ck = material::load_certified_key(cert, key, &provider)
                .map_err(|e| BuildError::material(format!("{at}.client_cert"), e))?;
            super::server_config::check_cert_scheme(&format!("{at}.client_cert"), &ck, profile)?;
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(ck)))
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = c.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let name = c
        .server_name
        .clone()
        .unwrap_or_else(|| c.remote.host.clone());
    let server_name = ServerName::try_from(name)
        .map_err(|e| BuildError::verifier(format!("{at}.server_name"), e.to_string()))?;
    Ok(ConnectorTls {
        config: Arc::new(config),
        server_name,
    })
}

/// The verifier of connector `c` (at key path `at`): its CA (WebPKI) and/or its SPKI pins,
/// over `provider`'s signature algorithms.
pub(crate) fn remote_verifier(
    at: &str,
    c: &ConnectorConfig,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<RemoteVerifier>, BuildError> {
    let webpki = match &c.ca {
        Some(ca) => {
            let roots = material::load_roots(ca)
                .map_err(|e| BuildError::material(format!("{at}.ca"), e))?;
            let v = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| BuildError::verifier(format!("{at}.ca"), e.to_string()))?;
            Some(v)
        }
        None => None,
    };
    let pins = c
        .pin_sha256
        .iter()
        .filter_map(|p| hex::decode(p)?.try_into().ok())
        .collect();
    Ok(Arc::new(RemoteVerifier {
        webpki,
        pins,
        algorithms: provider.signature_verification_algorithms,
    }))
}

/// Verifies the remote with WebPKI (when a CA is configured) and then the SPKI pins (when any
/// are configured). With pins alone, trust is in the key, as with SSH: names and dates are not
/// checked, the handshake signature is.
/// Shared by the TLS and the QUIC connectors.
#[derive(Debug)]
pub(crate) struct RemoteVerifier {
    /// The CA check, when a CA is configured.
    pub webpki: Option<Arc<WebPkiServerVerifier>>,
    /// SHA-256 digests of accepted SubjectPublicKeyInfos.
    pub pins: Vec<[u8; 32]>,
    /// Signature algorithms of the provider.
    pub algorithms: WebPkiSupportedAlgorithms,
}

impl RemoteVerifier {
    fn pin_matches(&self, cert: &CertificateDer<'_>) -> bool {
        let Ok(spki) = x509::subject_public_key_info(cert) else {
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
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(webpki) = &self.webpki {
            webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?;
        }
        if !self.pins.is_empty() && !self.pin_matches(end_entity) {
            return Err(CertificateError::ApplicationVerificationFailure.into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
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

/// The SHA-256 pin (hex) of a certificate's SubjectPublicKeyInfo.
pub fn spki_pin(cert: &CertificateDer<'_>) -> Result<String, x509::CertError> {
    let spki = x509::subject_public_key_info(cert)?;
    Ok(hex::encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki).as_ref(),
    ))
}

/// Presents one client certificate whenever the server asks.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
