//! The channel's QUIC TLS configs: mutual TLS against the configured CA and CRLs, key exchange
//! and suites from the profile (post-quantum groups only), the provider from the registry (never
//! a process default), TLS 1.3 only, one ALPN. Also the subject-name check of a client
//! certificate, done after the Hello names the peer.

use std::sync::Arc;
use std::time::Duration;

use pqgate_agility::{KxPolicy, ProviderSpec, Registry, builtin_profile};
use pqgate_core::pqpsk::KdfHash;
use pqgate_core::pqpsk::config::PqPskConfig;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};

use super::PqPskError;
use super::trust::{Trust, peer_chain};
use crate::tls::{BuildError, material};

/// The channel's ALPN protocol id.
pub(super) const ALPN: &[u8] = b"pqgate-psk/1";

/// Keep-alive bounds on an idle channel. Keep-alives cost more CPU than the rotations
/// themselves (benches/results/pqpsk-rotation-*.md: ~1.7% of a core per side for 1,000 channels
/// at 2 s), so the interval grows with the rotation interval: an eighth of it, 2-15 s.
const KEEP_ALIVE_MIN: Duration = Duration::from_secs(2);
const KEEP_ALIVE_MAX: Duration = Duration::from_secs(15);

/// A channel silent for this many keep-alive intervals is lost (a cut link is noticed within
/// that time: 10 s at short intervals, 75 s at the default 120 s, well inside a PSK's lifetime).
const IDLE_KEEP_ALIVES: u32 = 5;

/// The keep-alive interval for a rotation interval.
fn keep_alive(rotation_interval_secs: u64) -> Duration {
    Duration::from_secs(rotation_interval_secs / 8).clamp(KEEP_ALIVE_MIN, KEEP_ALIVE_MAX)
}

/// The QUIC configs of one node.
pub(super) struct ChannelTls {
    /// Accepting side (client certificates required).
    pub server: quinn::ServerConfig,
    /// Connecting side (server certificate checked against the CA, CRLs and the peer's name).
    pub client: quinn::ClientConfig,
    /// The derivation hash of the profile.
    pub hash: KdfHash,
    /// The verifiers inside `server` and `client`, to re-check live channels after a reload.
    pub trust: Trust,
    /// Serial and expiry of this node's own certificate, for log lines.
    pub leaf: Option<super::leaf::Summary>,
    /// This node's own chain (leaf first), for [`ChannelTls::check_own`].
    own: Vec<CertificateDer<'static>>,
    /// Its file, for errors.
    own_path: std::path::PathBuf,
}

impl ChannelTls {
    /// Refuses material under which this node's own certificate fails at `now` (expired or not
    /// yet valid: `pqpsk.cert`; not issued by the CA: `pqpsk.ca`; revoked, or no CRL covers
    /// it: `pqpsk.crl`), which every peer would refuse. `Ok(true)` when it passes but a CRL
    /// covering it is past its nextUpdate (worth a warning, not a refusal).
    pub(super) fn check_own(&self, now: UnixTime) -> Result<bool, PqPskError> {
        self.trust
            .check_own(&self.own, now)
            .map_err(|source| PqPskError::OwnCert {
                path: self.own_path.clone(),
                source: Box::new(source),
            })?;
        Ok(self.trust.own_crl_stale(&self.own, now))
    }
}

fn load_crls(c: &PqPskConfig) -> Result<Vec<CertificateRevocationListDer<'static>>, PqPskError> {
    let mut crls = Vec::new();
    for path in &c.crl {
        let crl_err = |source| PqPskError::Crl {
            path: path.clone(),
            source,
        };
        let bytes =
            std::fs::read(path).map_err(|e| crl_err(rustls_pki_types::pem::Error::Io(e)))?;
        // DER starts with a SEQUENCE tag; anything else is read as PEM.
        if bytes.first() == Some(&0x30) {
            crls.push(CertificateRevocationListDer::from(bytes));
            continue;
        }
        let before = crls.len();
        for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
            crls.push(crl.map_err(crl_err)?);
        }
        if crls.len() == before {
            return Err(crl_err(rustls_pki_types::pem::Error::NoItemsFound));
        }
    }
    Ok(crls)
}

/// The initial-packet suite RFC 9001 fixes (AES-128-GCM), kept apart from the negotiated suites
/// so a profile without it (cnsa2: AES-256-GCM only) still works.
fn initial_suite() -> Option<rustls::quic::Suite> {
    rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()?
        .quic_suite()
}

fn transport(rotation_interval_secs: u64) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let keep_alive = keep_alive(rotation_interval_secs);
    t.keep_alive_interval(Some(keep_alive));
    t.max_idle_timeout((keep_alive * IDLE_KEEP_ALIVES).try_into().ok());
    // One control stream per connection, opened by the initiator.
    t.max_concurrent_bidi_streams(1u8.into());
    t.max_concurrent_uni_streams(0u8.into());
    Arc::new(t)
}

fn provider(c: &PqPskConfig, registry: &Registry) -> Result<Arc<CryptoProvider>, PqPskError> {
    let profile = builtin_profile(&c.profile).ok_or_else(|| PqPskError::Config {
        key: "pqpsk.profile".into(),
        message: format!("unknown profile {:?}", c.profile),
    })?;
    let spec = ProviderSpec {
        policy: KxPolicy::HybridRequired,
        tls12: false,
    };
    registry
        .provider_for(spec, &profile)
        .map_err(|e| BuildError::policy("pqpsk.profile".into(), e).into())
}

/// Builds both sides' configs for `c`.
pub(super) fn build(c: &PqPskConfig, registry: &Registry) -> Result<ChannelTls, PqPskError> {
    let provider = provider(c, registry)?;
    let roots =
        material::load_roots(&c.ca).map_err(|e| BuildError::material("pqpsk.ca".into(), e))?;
    let crls = load_crls(c)?;
    let trust = Trust::new(roots, crls, &provider)?;
    let certs = material::load_certs(&c.cert, "certificate")
        .map_err(|e| BuildError::material("pqpsk.cert".into(), e))?;
    let key =
        material::load_key(&c.key).map_err(|e| BuildError::material("pqpsk.key".into(), e))?;
    // A key that does not match the certificate is named here (rustls would refuse it too,
    // but without saying which file).
    material::load_certified_key(&c.cert, &c.key, &provider)
        .map_err(|e| BuildError::material("pqpsk.key".into(), e))?;
    let leaf = certs.first().and_then(|der| super::leaf::summary(der));
    let tls_err = |e| PqPskError::from(BuildError::tls("pqpsk".into(), e));
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(trust.client())
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(tls_err)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_webpki_verifier(trust.server())
        .with_client_auth_cert(certs.clone(), key)
        .map_err(tls_err)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    let no_initial = || BuildError::verifier("pqpsk".into(), "no QUIC initial suite".into());
    let initial = initial_suite().ok_or_else(no_initial)?;
    let server =
        QuicServerConfig::with_initial(Arc::new(server), initial).map_err(|_| no_initial())?;
    let client =
        QuicClientConfig::with_initial(Arc::new(client), initial).map_err(|_| no_initial())?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
    server.transport_config(transport(c.rotation_interval_secs));
    let mut client = quinn::ClientConfig::new(Arc::new(client));
    client.transport_config(transport(c.rotation_interval_secs));
    let hash = if c.profile == "cnsa2" {
        KdfHash::Sha384
    } else {
        KdfHash::Sha256
    };
    Ok(ChannelTls {
        server,
        client,
        hash,
        trust,
        leaf,
        own: certs,
        own_path: c.cert.clone(),
    })
}

/// Whether the end-entity certificate a client presented is valid for `name` (the chain, dates
/// and revocation were checked in the handshake).
pub(super) fn client_cert_matches(conn: &quinn::Connection, name: &str) -> bool {
    let Some(chain) = peer_chain(conn) else {
        return false;
    };
    let (Some(leaf), Ok(name)) = (chain.first(), ServerName::try_from(name)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|cert| cert.verify_is_valid_for_subject_name(&name))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_follows_the_rotation_interval_within_bounds() {
        assert_eq!(keep_alive(1), Duration::from_secs(2));
        assert_eq!(keep_alive(2), Duration::from_secs(2));
        assert_eq!(keep_alive(80), Duration::from_secs(10));
        assert_eq!(keep_alive(120), Duration::from_secs(15));
        assert_eq!(keep_alive(3600), Duration::from_secs(15));
    }

    fn config_with_crls(crl: Vec<std::path::PathBuf>) -> PqPskConfig {
        PqPskConfig {
            ca: "ca.pem".into(),
            crl,
            cert: "c.pem".into(),
            key: "k.pem".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            rotation_interval_secs: 120,
            mode: Default::default(),
            second_kem: Default::default(),
            profile: "pq-hybrid".into(),
            peer: Vec::new(),
        }
    }

    fn make_crl() -> rcgen::CertificateRevocationList {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(params, key);
        rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: rcgen::SerialNumber::from(7u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .unwrap()
    }

    #[test]
    fn crls_load_from_pem_and_der_and_garbage_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let crl = make_crl();
        let pem = dir.join("crl.pem");
        let der = dir.join("crl.der");
        let junk = dir.join("junk.pem");
        std::fs::write(&pem, crl.pem().unwrap()).unwrap();
        std::fs::write(&der, crl.der()).unwrap();
        std::fs::write(&junk, "not a CRL").unwrap();
        let loaded = load_crls(&config_with_crls(vec![pem, der.clone()])).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].as_ref(), loaded[1].as_ref());
        assert!(matches!(
            load_crls(&config_with_crls(vec![junk])),
            Err(PqPskError::Crl { .. })
        ));
        assert!(matches!(
            load_crls(&config_with_crls(vec![dir.join("missing.pem")])),
            Err(PqPskError::Crl { .. })
        ));
    }

    /// Readable material under which this node's own certificate fails builds, but
    /// `check_own` refuses it by the key at fault (what a reload reports).
    #[test]
    fn own_certificate_failing_the_material_is_refused_by_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            (
                write(&format!("{name}.pem"), &cert.pem()),
                rcgen::Issuer::new(params, key),
            )
        };
        let ((ca_path, issuer), (other_path, _)) = (ca("main"), ca("other"));
        let mut c = config_with_crls(Vec::new());
        c.ca = ca_path;
        let mut own = |expired: bool| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2020, 12, 31);
            }
            let cert = params.signed_by(&key, &issuer).unwrap();
            c.cert = write("c.pem", &cert.pem());
            c.key = write("k.pem", &key.serialize_pem());
            c.clone()
        };
        let registry = pqgate_agility::Registry::power_on();
        let now = UnixTime::now();
        let key_of = |c: &PqPskConfig| match build(c, &registry).unwrap().check_own(now) {
            Ok(stale) => format!("ok stale={stale}"),
            Err(e) => e.key().to_owned(),
        };
        let good = own(false);
        assert_eq!(key_of(&good), "ok stale=false");
        let mut foreign_ca = good.clone();
        foreign_ca.ca = other_path;
        assert_eq!(key_of(&foreign_ca), "pqpsk.ca");
        assert_eq!(key_of(&own(true)), "pqpsk.cert");
    }

    /// Every unusable file is named by its key: what a reload reports.
    #[test]
    fn each_unusable_file_names_its_config_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let mut c = config_with_crls(Vec::new());
        c.ca = write("ca.pem", &ca.pem());
        c.cert = write("c.pem", &leaf.pem());
        c.key = write("k.pem", &leaf_key.serialize_pem());
        let registry = pqgate_agility::Registry::power_on();
        let built = build(&c, &registry).unwrap();
        let summary = built.leaf.expect("the leaf's serial and expiry");
        assert!(!summary.serial.is_empty() && summary.not_after.ends_with('Z'));
        let key_of = |c: &PqPskConfig| match build(c, &registry) {
            Ok(_) => "built".to_owned(),
            Err(e) => e.key().to_owned(),
        };
        let mut bad = c.clone();
        bad.cert = write("corrupt.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
        assert_eq!(key_of(&bad), "pqpsk.cert");
        let mut bad = c.clone();
        bad.key = write("other.key", &other_key.serialize_pem());
        assert_eq!(key_of(&bad), "pqpsk.key");
        let mut bad = c.clone();
        bad.ca = dir.join("missing.pem");
        assert_eq!(key_of(&bad), "pqpsk.ca");
        let mut bad = c.clone();
        bad.crl = vec![write("junk.crl", "junk")];
        assert_eq!(key_of(&bad), "pqpsk.crl");
    }
}
