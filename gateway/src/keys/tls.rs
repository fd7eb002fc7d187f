//! TLS signing keys for certificates: the algorithms `pqgate keygen tls` and the CA offer, key
//! generation (PKCS#8 PEM, returned in a buffer wiped on drop), loading a key back for signing
//! (rcgen cannot load ML-DSA keys, so those go through aws-lc-rs directly), and self-signed
//! certificates.

use std::net::IpAddr;

use aws_lc_rs::signature::{
    KeyPair as _, ML_DSA_44_SIGNING, ML_DSA_65_SIGNING, ML_DSA_87_SIGNING, PqdsaKeyPair,
    PqdsaSigningAlgorithm,
};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Certificates start this long before "now", so a peer whose clock is a little behind
/// accepts a certificate issued a moment ago.
pub(crate) const BACKDATE: time::Duration = time::Duration::hours(1);

/// Why a key or certificate could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TlsKeyError {
    /// rcgen refused the parameters or failed to sign (bad name, key generation).
    #[error("{action}: {source}")]
    Rcgen {
        /// What was being done.
        action: &'static str,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },
    /// The key file is not a PKCS#8 private key of the expected algorithm (operator's file).
    #[error("the private key is not a PKCS#8 {expected} key")]
    WrongKey {
        /// The algorithm the key should have.
        expected: KeyAlg,
    },
    /// A name is neither a DNS name nor an IP address (operator's input).
    #[error("{0:?} is not a DNS name or IP address")]
    BadName(String),
    /// A validity period in days out of range (operator's input).
    #[error("validity of {0} days is out of range (1 to 36500)")]
    BadDays(u32),
    /// The system RNG failed (not the caller's fault).
    #[error("the system random number generator failed")]
    Rng,
}

/// A signature algorithm for TLS and CA keys.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub(crate) enum KeyAlg {
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ecdsa-p256")]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    #[value(name = "ecdsa-p384")]
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    /// Ed25519.
    #[value(name = "ed25519")]
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ML-DSA-44 (FIPS 204).
    #[value(name = "ml-dsa-44")]
    #[serde(rename = "ml-dsa-44")]
    MlDsa44,
    /// ML-DSA-65 (FIPS 204).
    #[value(name = "ml-dsa-65")]
    #[serde(rename = "ml-dsa-65")]
    MlDsa65,
    /// ML-DSA-87 (FIPS 204).
    #[value(name = "ml-dsa-87")]
    #[serde(rename = "ml-dsa-87")]
    MlDsa87,
}

impl KeyAlg {
    /// Every algorithm, classical first.
    #[cfg(test)]
    pub(crate) const ALL: [KeyAlg; 6] = [
        KeyAlg::EcdsaP256,
        KeyAlg::EcdsaP384,
        KeyAlg::Ed25519,
        KeyAlg::MlDsa44,
        KeyAlg::MlDsa65,
        KeyAlg::MlDsa87,
    ];

    /// The command-line and index-file name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyAlg::EcdsaP256 => "ecdsa-p256",
            KeyAlg::EcdsaP384 => "ecdsa-p384",
            KeyAlg::Ed25519 => "ed25519",
            KeyAlg::MlDsa44 => "ml-dsa-44",
            KeyAlg::MlDsa65 => "ml-dsa-65",
            KeyAlg::MlDsa87 => "ml-dsa-87",
        }
    }

    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlg::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlg::Ed25519 => &rcgen::PKCS_ED25519,
            KeyAlg::MlDsa44 => &rcgen::PKCS_ML_DSA_44,
            KeyAlg::MlDsa65 => &rcgen::PKCS_ML_DSA_65,
            KeyAlg::MlDsa87 => &rcgen::PKCS_ML_DSA_87,
        }
    }

    fn ml_dsa(self) -> Option<&'static PqdsaSigningAlgorithm> {
        match self {
            KeyAlg::MlDsa44 => Some(&ML_DSA_44_SIGNING),
            KeyAlg::MlDsa65 => Some(&ML_DSA_65_SIGNING),
            KeyAlg::MlDsa87 => Some(&ML_DSA_87_SIGNING),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// A private key that can sign certificates and CRLs.
pub(crate) enum Signer {
    /// A classical key held by rcgen.
    Classical(KeyPair),
    /// An ML-DSA key held by aws-lc-rs (rcgen has no loader for these).
    MlDsa {
        /// The key pair.
        key: PqdsaKeyPair,
        /// Its rcgen algorithm, for the certificate's algorithm identifiers.
        alg: &'static SignatureAlgorithm,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl PublicKeyData for Signer {
    fn der_bytes(&self) -> &[u8] {
        match self {
            Signer::Classical(k) => k.der_bytes(),
            Signer::MlDsa { key, .. } => key.public_key().as_ref(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            Signer::Classical(k) => k.algorithm(),
            Signer::MlDsa { alg, .. } => alg,
        }
    }
}

impl SigningKey for Signer {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            Signer::Classical(k) => k.sign(msg),
            Signer::MlDsa { key, .. } => {
                let mut signature = vec![0; key.algorithm().signature_len()];
                let len = key
                    .sign(msg, &mut signature)
                    .map_err(|_| rcgen::Error::RingUnspecified)?;
                signature.truncate(len);
                Ok(signature)
            }
        }
    }
}

/// A new key: its signer and its PKCS#8 PEM (to be written 0600).
pub(crate) fn generate(alg: KeyAlg) -> Result<(Signer, Zeroizing<String>), TlsKeyError> {
    let rcgen_err = |source| TlsKeyError::Rcgen {
        action: "generating the key",
        source,
    };
    let pair = match alg {
        // PKCS#8 v1 (RFC 5208): OpenSSL 3.0 cannot read the v2 encoding rcgen would write.
        KeyAlg::Ed25519 => {
            let v1 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .map_err(|_| TlsKeyError::Rng)?;
            let der = Zeroizing::new(v1.as_ref().to_vec());
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_slice()),
                alg.rcgen(),
            )
            .map_err(rcgen_err)?
        }
        _ => KeyPair::generate_for(alg.rcgen()).map_err(rcgen_err)?,
    };
    let pem = Zeroizing::new(pair.serialize_pem());
    let signer = match alg.ml_dsa() {
        Some(_) => load(&pem, alg)?,
        None => Signer::Classical(pair),
    };
    Ok((signer, pem))
}

/// Loads a PKCS#8 PEM private key that must be of algorithm `alg`.
pub(crate) fn load(pem: &str, alg: KeyAlg) -> Result<Signer, TlsKeyError> {
    let wrong = || TlsKeyError::WrongKey { expected: alg };
    if let Some(signing) = alg.ml_dsa() {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| wrong())?;
        let key = PqdsaKeyPair::from_pkcs8(signing, der.secret_pkcs8_der()).map_err(|_| wrong())?;
        return Ok(Signer::MlDsa {
            key,
            alg: alg.rcgen(),
        });
    }
    let pair = KeyPair::from_pem(pem).map_err(|_| wrong())?;
    match pair.algorithm() == alg.rcgen() {
        true => Ok(Signer::Classical(pair)),
        false => Err(wrong()),
    }
}

/// Subject alternative names from DNS names and IP addresses; a name that parses as an IP
/// address becomes an IP SAN.
pub(crate) fn subject_alt_names(
    names: &[String],
    ips: &[IpAddr],
) -> Result<Vec<SanType>, TlsKeyError> {
    let mut sans = Vec::with_capacity(names.len() + ips.len());
    for name in names {
        if let Ok(ip) = name.parse::<IpAddr>() {
            sans.push(SanType::IpAddress(ip));
            continue;
        }
        if rustls_pki_types::DnsName::try_from(name.as_str()).is_err() {
            return Err(TlsKeyError::BadName(name.clone()));
        }
        let ia5 = name
            .as_str()
            .try_into()
            .map_err(|_| TlsKeyError::BadName(name.clone()))?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    Ok(sans)
}

/// `[now - BACKDATE, now + days]`, refusing a nonsensical number of days.
pub(crate) fn validity(
    now: OffsetDateTime,
    days: u32,
) -> Result<(OffsetDateTime, OffsetDateTime), TlsKeyError> {
    /// A hundred years: beyond that a date is a typo.
    const MAX_DAYS: u32 = 36_500;
    if days == 0 || days > MAX_DAYS {
        return Err(TlsKeyError::BadDays(days));
    }
    Ok((now - BACKDATE, now + time::Duration::days(i64::from(days))))
}

/// A random positive 16-byte serial number (about 126 bits of entropy; RFC 5280 allows 20
/// bytes), its first byte non-zero so the DER encoding keeps all 16 bytes.
pub(crate) fn random_serial() -> Result<rcgen::SerialNumber, TlsKeyError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TlsKeyError::Rng)?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// A self-signed end-entity certificate for `names` (the first is also the common name), for
/// both server and client authentication; PEM.
pub(crate) fn self_signed(
    signer: &Signer,
    names: &[String],
    now: OffsetDateTime,
    days: u32,
) -> Result<String, TlsKeyError> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = subject_alt_names(names, &[])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cn = names.first().map_or("pqgate", String::as_str);
    params.distinguished_name.push(DnType::CommonName, cn);
    (params.not_before, params.not_after) = validity(now, days)?;
    params.serial_number = Some(random_serial()?);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(signer)
        .map_err(|source| TlsKeyError::Rcgen {
            action: "signing the certificate",
            source,
        })?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_loads_and_is_checked() {
        for alg in KeyAlg::ALL {
            let (_, pem) = generate(alg).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{alg}");
            let loaded = load(&pem, alg).unwrap();
            assert_eq!(loaded.algorithm(), alg.rcgen(), "{alg}");
            // The same key under another algorithm is refused.
            let other = match alg {
                KeyAlg::EcdsaP256 => KeyAlg::MlDsa65,
                _ => KeyAlg::EcdsaP256,
            };
            assert!(load(&pem, other).is_err(), "{alg} loaded as {other}");
        }
    }

    #[test]
    fn names_and_days_are_checked() {
        let sans = subject_alt_names(
            &["gw.example".into(), "10.0.0.1".into()],
            &["::1".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(sans.len(), 3);
        assert!(matches!(sans[1], SanType::IpAddress(_)));
        assert!(subject_alt_names(&["bad name".into()], &[]).is_err());
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert!(validity(now, 0).is_err());
        assert!(validity(now, 40_000).is_err());
        let (from, to) = validity(now, 2).unwrap();
        assert_eq!((to - from).whole_hours(), 49);
    }
}
