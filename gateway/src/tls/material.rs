//! Loads certificates, private keys and CA bundles from PEM files, checking that each key matches
//! its certificate. Every error names the file it is about.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why key material could not be used; the operator's file is to blame in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaterialError {
    /// The file could not be read or holds no valid PEM of the expected kind.
    #[error("cannot read {what} from {}: {source}", path.display())]
    Pem {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM decoder's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The file parsed but held nothing of the expected kind.
    #[error("{} holds no {what}", path.display())]
    Empty {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The private key's algorithm is unsupported or the key is malformed.
    #[error("private key {} is not usable: {source}", path.display())]
    KeyRejected {
        /// The key file.
        path: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The private key does not belong to the certificate.
    #[error("private key {} does not match certificate {}: {source}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// A CA certificate could not be added to a trust store.
    #[error("CA bundle {} has an unusable certificate: {source}", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: rustls::Error,
    },
}

/// Reads every certificate in a PEM file, in order.
pub(crate) fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let pem_err = |source| MaterialError::Pem {
        what,
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if certs.is_empty() {
        return Err(MaterialError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, MaterialError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => MaterialError::Empty {
            what: "private key",
            path: path.to_owned(),
        },
        source => MaterialError::Pem {
            what: "private key",
            path: path.to_owned(),
            source,
        },
    })
}

/// Loads a certificate chain and its key, refusing a key that does not match the certificate.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, MaterialError> {
    let chain = load_certs(cert, "certificate")?;
    let der = load_key(key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(der)
        .map_err(|source| MaterialError::KeyRejected {
            path: key.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|source| MaterialError::KeyMismatch {
            key: key.to_owned(),
            cert: cert.to_owned(),
            source,
        })?;
    Ok(Arc::new(certified))
}

/// Builds a trust store from a PEM CA bundle; every certificate in it must be usable.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, MaterialError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "CA certificate")? {
        roots.add(cert).map_err(|source| MaterialError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(Arc::new(roots))
}
