//! The built-in CA for gateway mutual TLS: a directory holding `ca.key` (0600), `ca.pem` and
//! `index.toml`; issuing server/client certificates, revoking them and signing CRLs. Every
//! change to the index happens under an exclusive lock on `DIR/.lock`. Private keys are
//! returned to the caller in buffers wiped on drop and never logged.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData,
    RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::file::{self, FileError};
use super::index::{self, Entry, Index, IndexError, Reason, Usage};
use super::tls::{self, KeyAlg, Signer, TlsKeyError};

/// The CA's private key file in its directory.
pub(crate) const KEY_FILE: &str = "ca.key";
/// The CA certificate file in its directory.
pub(crate) const CERT_FILE: &str = "ca.pem";
const LOCK_FILE: &str = ".lock";

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CaError {
    /// Writing or locking a file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The index is unreadable or invalid.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A key or certificate could not be made or loaded.
    #[error(transparent)]
    Key(#[from] TlsKeyError),
    /// A CA file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `ca.key` is not the key of `ca.pem` (files mixed up).
    #[error("{} does not hold the key of {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// rcgen failed to sign (a bug or an RNG failure).
    #[error("{action}: {source}")]
    Sign {
        /// What was being signed.
        action: &'static str,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },
    /// A server certificate without any name to match (operator's input).
    #[error("a server certificate needs a name: give --dns or --ip ({0:?} is not a DNS name)")]
    NoServerName(String),
    /// No certificate with that serial in the index (operator's input).
    #[error("no certificate with serial {0} in this CA's index")]
    UnknownSerial(String),
    /// The certificate is already revoked.
    #[error("certificate {0} is already revoked")]
    AlreadyRevoked(String),
}

/// What to issue.
#[derive(Debug, Clone)]
pub(crate) struct IssueRequest {
    /// Subject common name; also the DNS name when neither `dns` nor `ips` is given.
    pub name: String,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// IP subject alternative names.
    pub ips: Vec<IpAddr>,
    /// Server, client or both.
    pub usage: Usage,
    /// Validity in days (capped at the CA's own expiry).
    pub days: u32,
    /// Key algorithm; the CA's when unset.
    pub alg: Option<KeyAlg>,
}

/// An issued certificate: the key (to be written 0600) and the certificate.
pub(crate) struct Issued {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// PKCS#8 PEM private key, wiped on drop.
    pub key_pem: Zeroizing<String>,
    /// PEM certificate.
    pub cert_pem: String,
}

/// An exclusive lock on the CA directory, released on drop (with the file descriptor).
struct Lock(#[allow(dead_code)] File);

fn lock(dir: &Path) -> Result<Lock, CaError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let io = |action, source| {
        CaError::File(FileError::Io {
            action,
            path: path.clone(),
            source,
        })
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(file::PRIVATE)
        .open(&path)
        .map_err(|e| io("opening the lock", e))?;
    file.lock().map_err(|e| io("locking", e))?;
    Ok(Lock(file))
}

/// The CA certificate's parameters, from which both `ca.pem` and the issuer of every later
/// certificate are built (so the issuer name always matches the certificate's subject).
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    // Path length 0: this CA signs end-entity certificates only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// Creates a CA in `dir` (made 0700 if missing); refuses if any of its files exist.
pub(crate) fn init(
    dir: &Path,
    name: &str,
    alg: KeyAlg,
    days: u32,
    now: OffsetDateTime,
) -> Result<(), CaError> {
    file::create_dir(dir, 0o700)?;
    let _lock = lock(dir)?;
    for f in [KEY_FILE, CERT_FILE, index::FILE] {
        file::check_absent(&dir.join(f), false)?;
    }
    let (signer, key_pem) = tls::generate(alg)?;
    let mut params = ca_params(name);
    (params.not_before, params.not_after) = tls::validity(now, days)?;
    params.serial_number = Some(tls::random_serial()?);
    let cert = params
        .self_signed(&signer)
        .map_err(|source| CaError::Sign {
            action: "signing the CA certificate",
            source,
        })?;
    let index = Index {
        version: index::VERSION,
        name: name.to_owned(),
        alg,
        not_after: params.not_after.unix_timestamp(),
        crl_number: 0,
        certs: Vec::new(),
    };
    file::write_atomic(
        &dir.join(KEY_FILE),
        key_pem.as_bytes(),
        file::PRIVATE,
        false,
    )?;
    file::write_atomic(
        &dir.join(CERT_FILE),
        cert.pem().as_bytes(),
        file::PUBLIC,
        false,
    )?;
    write_index(dir, &index)
}

fn write_index(dir: &Path, index: &Index) -> Result<(), CaError> {
    let text = index.to_toml()?;
    file::write_atomic(&dir.join(index::FILE), text.as_bytes(), file::PUBLIC, true)?;
    Ok(())
}

fn read(path: &Path) -> Result<Zeroizing<String>, CaError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| CaError::Read {
            path: path.to_owned(),
            source,
        })
}

/// The CA's index and its issuer (key checked against `ca.pem`).
fn open(dir: &Path) -> Result<(Index, Issuer<'static, Signer>), CaError> {
    let index = Index::read(dir)?;
    let key_path = dir.join(KEY_FILE);
    let cert_path = dir.join(CERT_FILE);
    let signer = tls::load(&read(&key_path)?, index.alg)?;
    let certs = crate::tls::material::load_certs(&cert_path, "CA certificate").map_err(|e| {
        CaError::Read {
            path: cert_path.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    let spki = super::x509::subject_public_key_info(&certs[0]).ok();
    if spki != Some(signer.subject_public_key_info().as_slice()) {
        return Err(CaError::KeyMismatch {
            key: key_path,
            cert: cert_path,
        });
    }
    let issuer = Issuer::new(ca_params(&index.name), signer);
    Ok((index, issuer))
}

/// The leaf's parameters: names, usages, validity within the CA's.
fn leaf_params(
    req: &IssueRequest,
    index: &Index,
    now: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, req.name.as_str());
    let mut dns = req.dns.clone();
    if dns.is_empty()
        && req.ips.is_empty()
        && tls::subject_alt_names(std::slice::from_ref(&req.name), &[]).is_ok()
    {
        dns.push(req.name.clone());
    }
    params.subject_alt_names = tls::subject_alt_names(&dns, &req.ips)?;
    if req.usage.server() && params.subject_alt_names.is_empty() {
        return Err(CaError::NoServerName(req.name.clone()));
    }
    (params.not_before, params.not_after) = tls::validity(now, req.days)?;
    if let Ok(ca_end) = OffsetDateTime::from_unix_timestamp(index.not_after) {
        params.not_after = params.not_after.min(ca_end);
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = [
        (req.usage.server(), ExtendedKeyUsagePurpose::ServerAuth),
        (req.usage.client(), ExtendedKeyUsagePurpose::ClientAuth),
    ]
    .into_iter()
    .filter_map(|(on, eku)| on.then_some(eku))
    .collect();
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Issues a certificate and records it in the index (before returning it, so every
/// certificate that can exist can be revoked).
pub(crate) fn issue(
    dir: &Path,
    req: &IssueRequest,
    now: OffsetDateTime,
) -> Result<Issued, CaError> {
    let _lock = lock(dir)?;
    let (mut index, issuer) = open(dir)?;
    let alg = req.alg.unwrap_or(index.alg);
    let mut params = leaf_params(req, &index, now)?;
    let serial = tls::random_serial()?;
    params.serial_number = Some(serial.clone());
    let (signer, key_pem) = tls::generate(alg)?;
    let cert = params
        .signed_by(&signer, &issuer)
        .map_err(|source| CaError::Sign {
            action: "signing the certificate",
            source,
        })?;
    let serial = index::serial_hex(serial.as_ref());
    index.certs.push(Entry {
        serial: serial.clone(),
        name: req.name.clone(),
        usage: req.usage,
        alg,
        not_after: params.not_after.unix_timestamp(),
        revoked_at: None,
        reason: None,
    });
    write_index(dir, &index)?;
    Ok(Issued {
        serial,
        key_pem,
        cert_pem: cert.pem(),
    })
}

/// Marks the certificate with `serial` revoked; returns its entry. A CRL made after this
/// lists it.
pub(crate) fn revoke(
    dir: &Path,
    serial: &str,
    reason: Option<Reason>,
    now: OffsetDateTime,
) -> Result<Entry, CaError> {
    let _lock = lock(dir)?;
    let mut index = Index::read(dir)?;
    let entry = index
        .find_mut(serial)
        .ok_or_else(|| CaError::UnknownSerial(serial.to_owned()))?;
    if entry.revoked_at.is_some() {
        return Err(CaError::AlreadyRevoked(entry.serial.clone()));
    }
    entry.revoked_at = Some(now.unix_timestamp());
    entry.reason = reason;
    let entry = entry.clone();
    write_index(dir, &index)?;
    Ok(entry)
}

/// Signs a CRL listing every revoked certificate, valid from `now` for `days`, with the next
/// CRL number (recorded in the index); PEM.
pub(crate) fn crl(dir: &Path, now: OffsetDateTime, days: u32) -> Result<String, CaError> {
    let _lock = lock(dir)?;
    let (mut index, issuer) = open(dir)?;
    let (_, next_update) = tls::validity(now, days)?;
    let revoked_certs = index
        .certs
        .iter()
        .filter_map(|e| Some((e, e.revoked_at?)))
        .map(|(e, at)| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    &index::serial_bytes(&e.serial)
                        .ok_or_else(|| CaError::UnknownSerial(e.serial.clone()))?,
                ),
                revocation_time: OffsetDateTime::from_unix_timestamp(at).unwrap_or(now),
                reason_code: e.reason.map(Reason::rcgen),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, CaError>>()?;
    index.crl_number += 1;
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update,
        crl_number: SerialNumber::from(index.crl_number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer).map_err(|source| CaError::Sign {
        action: "signing the CRL",
        source,
    })?;
    let pem = crl.pem().map_err(|source| CaError::Sign {
        action: "encoding the CRL",
        source,
    })?;
    write_index(dir, &index)?;
    Ok(pem)
}

/// The index, for listing.
pub(crate) fn list(dir: &Path) -> Result<Index, CaError> {
    Ok(Index::read(dir)?)
}
