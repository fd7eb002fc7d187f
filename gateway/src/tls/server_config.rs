//! Builds the immutable TLS side of a listener from its config: one prebuilt `ServerConfig` per
//! route (certificate and backend chosen by SNI), all from the policy's explicit provider.

use std::path::Path;
use std::sync::Arc;

use pqgate_agility::{Profile, Registry};
use pqgate_core::config::{Backend, ClientAuthConfig, ClientAuthMode, KxPolicy, ListenerConfig};
use pqgate_core::route::SniTable;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};

use super::material::{self, MaterialError};
use super::{BuildError, protocol_versions};

/// What a listener serves for one server name.
pub(crate) struct RouteTls {
    /// Handshake configuration for this route.
    pub config: Arc<ServerConfig>,
    /// Where this route's plaintext goes.
    pub backend: Backend,
}

/// The TLS side of a listener, rebuilt as a whole on reload.
pub(crate) struct ListenerTls {
    /// Used when no route matches the SNI.
    pub default: RouteTls,
    /// Routes, indexed like `sni`.
    pub routes: Vec<RouteTls>,
    /// SNI lookup.
    pub sni: SniTable,
    /// Policy, for the post-handshake check.
    pub policy: KxPolicy,
}

impl ListenerTls {
    /// The route for a ClientHello's server name.
    pub(crate) fn route(&self, sni: Option<&str>) -> &RouteTls {
        self.sni
            .select(sni)
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.default)
    }
}

/// A resolver that always presents one certificate.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Builds a listener's TLS state. `self_signed` supplies the (cert, key) paths when the listener
/// uses a generated certificate.
pub(crate) fn build_listener_tls(
    at: &str,
    l: &ListenerConfig,
    self_signed: Option<(&Path, &Path)>,
    registry: &Registry,
    profile: &Profile,
) -> Result<ListenerTls, BuildError> {
    let provider = super::endpoint_provider(at, l.policy, l.tls12, registry, profile)?;
    let versions = protocol_versions(l.tls12);
    let verifier = match &l.client_auth {
        Some(auth) => Some(client_verifier(at, auth, &provider)?),
        None => None,
    };
    let (cert, key) = match (&l.cert, &l.key, self_signed) {
        (Some(c), Some(k), _) => (c.as_path(), k.as_path()),
        (_, _, Some(pair)) => pair,
        _ => return Err(BuildError::missing(format!("{at}.cert"))),
    };
    let default_key = certified(&format!("{at}.cert"), cert, key, &provider)?;
    check_cert_scheme(&format!("{at}.cert"), &default_key, profile)?;
    let make = |key: Arc<CertifiedKey>, backend: &Backend| -> Result<RouteTls, BuildError> {
        let config = server_config(l, &provider, versions, verifier.clone(), key)
            .map_err(|e| BuildError::tls(at.to_owned(), e))?;
        Ok(RouteTls {
            config,
            backend: backend.clone(),
        })
    };
    let default = make(default_key.clone(), &l.backend)?;
    let mut routes = Vec::with_capacity(l.routes.len());
    for (i, r) in l.routes.iter().enumerate() {
        let key = match (&r.cert, &r.key) {
            (Some(c), Some(k)) => {
                let key_path = format!("{at}.route[{i}].cert");
                let key = certified(&key_path, c, k, &provider)?;
                check_cert_scheme(&key_path, &key, profile)?;
                key
            }
            _ => default_key.clone(),
        };
        routes.push(make(key, r.backend.as_ref().unwrap_or(&l.backend))?);
    }
    Ok(ListenerTls {
        default,
        routes,
        sni: SniTable::new(l.routes.iter().map(|r| r.sni.as_str())),
        policy: l.policy,
    })
}

/// Refuses a certificate whose key cannot sign with any scheme the profile demands.
pub(crate) fn check_cert_scheme(
    key_path: &str,
    key: &CertifiedKey,
    profile: &Profile,
) -> Result<(), BuildError> {
    if profile.cert_schemes.is_empty() || key.key.choose_scheme(&profile.cert_schemes).is_some() {
        return Ok(());
    }
    Err(BuildError::verifier(
        key_path.to_owned(),
        format!(
            "profile {} needs a certificate for one of {:?}",
            profile.name, profile.cert_schemes
        ),
    ))
}

fn certified(
    key_path: &str,
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, BuildError> {
    material::load_certified_key(cert, key, provider)
        .map_err(|e: MaterialError| BuildError::material(key_path.to_owned(), e))
}

fn client_verifier(
    at: &str,
    auth: &ClientAuthConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, BuildError> {
    let key = format!("{at}.client_auth.ca");
    let roots = material::load_roots(&auth.ca).map_err(|e| BuildError::material(key.clone(), e))?;
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    let builder = match auth.mode {
        ClientAuthMode::Required => builder,
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
    };
    builder
        .build()
        .map_err(|e| BuildError::verifier(key, e.to_string()))
}

fn server_config(
    l: &ListenerConfig,
    provider: &Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    key: Arc<CertifiedKey>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(FixedCert(key)));
    config.alpn_protocols = l.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Our cipher-suite order wins over the client's. (The key-exchange group follows the
    // client's preference among the groups the policy admits; under hybrid-required all of
    // them are post-quantum.)
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}
