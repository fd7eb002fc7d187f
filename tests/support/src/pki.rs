//! A throwaway PKI made with rcgen: a CA (ECDSA P-256 unless asked otherwise) whose files go
//! into one directory as `NAME-ca.pem`, the leaves it issues as `FILE-cert.pem`/`FILE-key.pem`
//! (optionally with a chosen serial or a validity in the past), and CRLs as `NAME-crl.pem`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber, SignatureAlgorithm,
};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A CA and what it issued, written as PEM files into a directory.
pub struct Pki {
    pub dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
}

/// A leaf certificate's files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_der: CertificateDer<'static>,
}

impl Pki {
    /// A new ECDSA P-256 CA named `name`, its certificate written to `dir/NAME-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self::with_alg(dir, name, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// A new CA named `name` whose key is of algorithm `alg` (it may sign certificates and CRLs).
    pub fn with_alg(dir: &Path, name: &str, alg: &'static SignatureAlgorithm) -> Self {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        std::fs::write(dir.join(format!("{name}-ca.pem")), &ca_pem).unwrap();
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            issuer: Issuer::new(params, key),
            ca_pem,
        }
    }

    /// `dir/NAME-ca.pem` (any CA made in the same directory, by its name).
    pub fn ca_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// This CA's certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.ca_path(&self.name)
    }

    /// Issues a leaf for `names` with key algorithm `alg`, written as `file-cert.pem`/`-key.pem`.
    pub fn issue(&self, file: &str, names: &[&str], alg: &'static SignatureAlgorithm) -> Leaf {
        self.issue_with_key(file, names, KeyPair::generate_for(alg).unwrap())
    }

    /// Issues a leaf for `names` with a given key pair.
    pub fn issue_with_key(&self, file: &str, names: &[&str], key: KeyPair) -> Leaf {
        self.issue_full(file, names, key, Validity::default())
    }

    /// An ECDSA P-256 leaf for `name` with serial number `serial`, valid only in 2020 when
    /// `expired` (for revocation and expiry tests).
    pub fn issue_serial(&self, file: &str, name: &str, serial: u64, expired: bool) -> Leaf {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let validity = Validity {
            serial: Some(serial),
            expired,
        };
        self.issue_full(file, &[name], key, validity)
    }

    fn issue_full(&self, file: &str, names: &[&str], key: KeyPair, validity: Validity) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.serial_number = validity.serial.map(SerialNumber::from);
        if validity.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}-cert.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
            cert_der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// An ECDSA P-256 server certificate for localhost and 127.0.0.1.
    pub fn server(&self, file: &str) -> Leaf {
        self.issue(
            file,
            &["localhost", "127.0.0.1"],
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        Arc::new(roots)
    }

    /// A CRL of this CA revoking `serials` (valid 2024 to 2100), written to `dir/NAME-crl.pem`.
    pub fn crl(&self, serials: &[u64]) -> PathBuf {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).unwrap();
        let path = self.dir.join(format!("{}-crl.pem", self.name));
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }
}

/// A leaf's serial number (rcgen's random one when `None`) and whether it lies in the past.
#[derive(Default)]
struct Validity {
    serial: Option<u64>,
    expired: bool,
}
