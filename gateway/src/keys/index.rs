//! The CA's record of itself and of every certificate it issued (`index.toml` in the CA
//! directory): name and algorithm (the issuer is rebuilt from them), the last CRL number, and
//! per certificate its serial, subject, usage, expiry and revocation. Holds no secret.

use std::path::Path;

use super::tls::KeyAlg;

/// File name of the index inside the CA directory.
pub(crate) const FILE: &str = "index.toml";
/// Format version written and accepted.
pub(crate) const VERSION: u32 = 1;

/// Why the index could not be read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum IndexError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The index file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid index (edited by hand, or another tool's).
    #[error("{} is not a pqgate CA index: {source}", path.display())]
    Parse {
        /// The index file.
        path: std::path::PathBuf,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// A version this build does not know.
    #[error("{} has format version {found}, this pqgate reads {VERSION}", path.display())]
    Version {
        /// The index file.
        path: std::path::PathBuf,
        /// The version found.
        found: u32,
    },
    /// Serialising the index failed (a bug).
    #[error("writing the CA index: {0}")]
    Serialize(#[from] toml::ser::Error),
}

/// What a certificate may be used for (its extended key usages).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Usage {
    /// TLS server authentication.
    Server,
    /// TLS client authentication.
    Client,
    /// Both (a gateway that listens and connects with one certificate).
    Both,
}

impl Usage {
    /// Whether the certificate may authenticate a server.
    pub(crate) fn server(self) -> bool {
        matches!(self, Usage::Server | Usage::Both)
    }

    /// Whether the certificate may authenticate a client.
    pub(crate) fn client(self) -> bool {
        matches!(self, Usage::Client | Usage::Both)
    }
}

/// Why a certificate was revoked (RFC 5280 section 5.3.1 reason codes).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Reason {
    /// No reason given.
    Unspecified,
    /// The private key leaked or may have.
    KeyCompromise,
    /// The subject's name or affiliation changed.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
    /// The subject may no longer use it.
    PrivilegeWithdrawn,
}

impl Reason {
    /// rcgen's code for it.
    pub(crate) fn rcgen(self) -> rcgen::RevocationReason {
        match self {
            Reason::Unspecified => rcgen::RevocationReason::Unspecified,
            Reason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            Reason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            Reason::Superseded => rcgen::RevocationReason::Superseded,
            Reason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            Reason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// One issued certificate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// Subject common name.
    pub name: String,
    /// Extended key usages.
    pub usage: Usage,
    /// Key algorithm.
    pub alg: KeyAlg,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// When it was revoked, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// The whole index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Index {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The CA's common name: the issuer name of everything it signs.
    pub name: String,
    /// The CA key's algorithm.
    pub alg: KeyAlg,
    /// End of the CA certificate's validity, Unix seconds (leaves never outlive it).
    pub not_after: i64,
    /// Number of the last CRL generated (0: none yet).
    pub crl_number: u64,
    /// Issued certificates, oldest first.
    #[serde(default, rename = "cert")]
    pub certs: Vec<Entry>,
}

impl Index {
    /// Reads and checks `dir/index.toml`.
    pub(crate) fn read(dir: &Path) -> Result<Self, IndexError> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| IndexError::Read {
            path: path.clone(),
            source,
        })?;
        let index: Index = toml::from_str(&text).map_err(|source| IndexError::Parse {
            path: path.clone(),
            source,
        })?;
        if index.version != VERSION {
            return Err(IndexError::Version {
                path,
                found: index.version,
            });
        }
        Ok(index)
    }

    /// The TOML text to write.
    pub(crate) fn to_toml(&self) -> Result<String, IndexError> {
        let body = toml::to_string(self)?;
        Ok(format!(
            "# pqgate CA index: written by `pqgate ca`, do not edit.\n{body}"
        ))
    }

    /// The entry whose serial equals `serial` (hex, any case, colons and leading zeros
    /// ignored).
    pub(crate) fn find_mut(&mut self, serial: &str) -> Option<&mut Entry> {
        let wanted = normalize_serial(serial)?;
        self.certs
            .iter_mut()
            .find(|e| normalize_serial(&e.serial).as_deref() == Some(wanted.as_str()))
    }
}

/// Lowercase hex without colons or leading zeros; None when it is not hex.
pub(crate) fn normalize_serial(serial: &str) -> Option<String> {
    let hex: String = serial
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = hex.trim_start_matches('0');
    Some(match trimmed.is_empty() {
        true => "0".to_owned(),
        false => trimmed.to_owned(),
    })
}

/// Lowercase hex of serial bytes.
pub(crate) fn serial_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serial bytes from hex written by [`serial_hex`].
pub(crate) fn serial_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(serial: &str) -> Entry {
        Entry {
            serial: serial.into(),
            name: "gw".into(),
            usage: Usage::Both,
            alg: KeyAlg::MlDsa65,
            not_after: 1_900_000_000,
            revoked_at: None,
            reason: None,
        }
    }

    #[test]
    fn round_trips_and_finds_serials_in_any_spelling() {
        let mut index = Index {
            version: VERSION,
            name: "pqgate CA".into(),
            alg: KeyAlg::EcdsaP384,
            not_after: 2_000_000_000,
            crl_number: 3,
            certs: vec![entry("0a1b2c"), entry("7f00")],
        };
        index.certs[1].revoked_at = Some(5);
        index.certs[1].reason = Some(Reason::KeyCompromise);
        let text = index.to_toml().unwrap();
        assert!(text.contains("reason = \"key-compromise\""), "{text}");
        let back: Index = toml::from_str(&text).unwrap();
        assert_eq!(back, index);
        let mut index = back;
        assert_eq!(index.find_mut("0A:1B:2C").unwrap().serial, "0a1b2c");
        assert_eq!(index.find_mut("A1B2C").unwrap().serial, "0a1b2c");
        assert!(index.find_mut("7f").is_none());
        assert!(index.find_mut("xyz").is_none());
    }

    #[test]
    fn serial_hex_round_trips() {
        let bytes = [0x01, 0xab, 0x00, 0xff];
        assert_eq!(serial_bytes(&serial_hex(&bytes)).unwrap(), bytes);
        assert!(serial_bytes("abc").is_none());
        assert!(serial_bytes("zz").is_none());
    }
}
