//! Re-checks of live channels: the peer-certificate verifiers of one TLS build (CA and CRLs as
//! read then), applied to the chain a connection's peer presented, with the current time, so a
//! reload that revokes a certificate (or drops its CA) can close the channels it no longer
//! trusts. Refusals map to the same failure reasons as a refused handshake. The same verifiers
//! check this node's own chain before a reload swaps the material in (refusals name the config
//! key at fault), and tell whether a CRL covering it is past its nextUpdate.

use std::sync::Arc;

use pqgate_core::pqpsk::Failure;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};

use crate::tls::BuildError;

/// The peer-certificate checks of one TLS build (CA and CRLs as read then).
#[derive(Clone)]
pub(super) struct Trust {
    /// Checks a peer that connected to this node (a TLS client).
    client: Arc<dyn ClientCertVerifier>,
    /// Checks a peer this node connected to (a TLS server).
    server: Arc<WebPkiServerVerifier>,
    /// The same two, also refusing a CRL past its nextUpdate (only to warn about stale CRLs;
    /// `None` without CRLs).
    fresh: Option<(Arc<dyn ClientCertVerifier>, Arc<WebPkiServerVerifier>)>,
}

/// A name no certificate of this design carries: this node's own certificate is checked as a
/// TLS server without a name (a refusal for the name alone means the chain passed).
const NO_NAME: &str = "own-certificate.invalid";

/// Why this node's own certificate fails under new TLS material, by the config key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{what} under the CA and CRLs read: {source}")]
pub struct OwnCertError {
    /// `pqpsk.cert` (dates, or unusable), `pqpsk.ca` (not issued by the CA) or `pqpsk.crl`.
    pub key: &'static str,
    what: &'static str,
    #[source]
    source: rustls::Error,
}

impl OwnCertError {
    fn new(source: rustls::Error) -> Self {
        let (key, what) = match &source {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    ("pqpsk.cert", "is expired")
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    ("pqpsk.cert", "is not valid yet")
                }
                CertificateError::Revoked => ("pqpsk.crl", "is revoked"),
                CertificateError::UnknownRevocationStatus
                | CertificateError::ExpiredRevocationList
                | CertificateError::ExpiredRevocationListContext { .. } => {
                    ("pqpsk.crl", "has no revocation status")
                }
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    ("pqpsk.ca", "is not issued by the CA")
                }
                _ => ("pqpsk.cert", "is refused"),
            },
            _ => ("pqpsk.cert", "is refused"),
        };
        Self { key, what, source }
    }
}

fn is_purpose(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
        )
    )
}

fn is_name(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

/// Whether `chain` (this node's own, leaf first) passes `client` as a TLS client or, when its
/// extended key usage allows only the server role, `server` as a TLS server (any name).
fn check_own_with(
    client: &dyn ClientCertVerifier,
    server: &WebPkiServerVerifier,
    chain: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(rustls::Error::NoCertificatesPresented);
    };
    let as_client = client.verify_client_cert(leaf, intermediates, now);
    let e = match as_client {
        Ok(_) => return Ok(()),
        Err(e) if is_purpose(&e) => e,
        Err(e) => return Err(e),
    };
    let name = ServerName::try_from(NO_NAME).map_err(|_| e)?;
    match server.verify_server_cert(leaf, intermediates, &name, &[], now) {
        Ok(_) => Ok(()),
        Err(e) if is_name(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Trust {
    /// Verifiers for `roots` and `crls` (leaf revocation only; a leaf whose status no CRL covers
    /// is refused), signatures checked with `provider`'s algorithms.
    pub(super) fn new(
        roots: Arc<RootCertStore>,
        crls: Vec<CertificateRevocationListDer<'static>>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, BuildError> {
        let verifier_err = |e: rustls::server::VerifierBuilderError| {
            BuildError::verifier("pqpsk.ca".into(), e.to_string())
        };
        let mut client =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        let mut server = WebPkiServerVerifier::builder_with_provider(roots, provider.clone());
        let with_crls = !crls.is_empty();
        if with_crls {
            client = client
                .with_crls(crls.clone())
                .only_check_end_entity_revocation();
            server = server.with_crls(crls).only_check_end_entity_revocation();
        }
        let fresh = if with_crls {
            let client = client.clone().enforce_revocation_expiration();
            let server = server.clone().enforce_revocation_expiration();
            Some((
                client.build().map_err(verifier_err)?,
                server.build().map_err(verifier_err)?,
            ))
        } else {
            None
        };
        Ok(Self {
            client: client.build().map_err(verifier_err)?,
            server: server.build().map_err(verifier_err)?,
            fresh,
        })
    }

    /// Whether this node's own `chain` (leaf first) passes this material at `now`: its dates,
    /// the CA and the CRLs (both sides of a channel use the same CA in this design, so a node
    /// whose own certificate fails would be refused by every peer). Checked as a TLS client, or
    /// as a TLS server of any name when its extended key usage allows only that.
    pub(super) fn check_own(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), OwnCertError> {
        check_own_with(self.client.as_ref(), &self.server, chain, now).map_err(OwnCertError::new)
    }

    /// Whether a CRL that covers this node's own `chain` is past its nextUpdate at `now` (a
    /// warning: an old CRL still revokes what it lists, but misses later revocations). False
    /// without CRLs or when the chain fails for another reason.
    pub(super) fn own_crl_stale(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> bool {
        let Some((client, server)) = &self.fresh else {
            return false;
        };
        matches!(
            check_own_with(client.as_ref(), server, chain, now),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredRevocationList
                    | CertificateError::ExpiredRevocationListContext { .. }
            ))
        )
    }

    /// Whether a live channel's peer chain (leaf first) still passes: as a TLS server named
    /// `name` when this node connected to it (`peer_is_server`), else as a TLS client.
    pub(super) fn check(
        &self,
        chain: &[CertificateDer<'_>],
        peer_is_server: bool,
        name: &str,
        now: UnixTime,
    ) -> Result<(), Failure> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Failure::CertOther);
        };
        let res = if peer_is_server {
            let name = ServerName::try_from(name.to_owned()).map_err(|_| Failure::CertOther)?;
            self.server
                .verify_server_cert(leaf, intermediates, &name, &[], now)
                .map(|_| ())
        } else {
            self.client
                .verify_client_cert(leaf, intermediates, now)
                .map(|_| ())
        };
        res.map_err(|e| failure_of(&e))
    }
}

/// The failure reason of a refused certificate (the same reasons as a refused handshake).
pub(super) fn failure_of(e: &rustls::Error) -> Failure {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Revoked => Failure::CertRevoked,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Failure::CertExpired
            }
            CertificateError::UnknownIssuer => Failure::CertUnknownCa,
            _ => Failure::CertOther,
        },
        _ => Failure::CertOther,
    }
}

/// The certificate chain a connection's peer presented (leaf first).
pub(super) fn peer_chain(conn: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    let identity = conn.peer_identity()?;
    identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()
        .map(|chain| *chain)
}

impl Trust {
    /// The client-certificate verifier (for the server config).
    pub(super) fn client(&self) -> Arc<dyn ClientCertVerifier> {
        self.client.clone()
    }

    /// The server-certificate verifier (for the client config).
    pub(super) fn server(&self) -> Arc<WebPkiServerVerifier> {
        self.server.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };

    struct Ca(Issuer<'static, KeyPair>, CertificateDer<'static>);

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca(Issuer::new(params, key), cert.der().clone())
    }

    impl Ca {
        fn leaf(&self, name: &str, serial: u64, expired: bool) -> Vec<CertificateDer<'static>> {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.serial_number = Some(SerialNumber::from(serial));
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2020, 12, 31);
            }
            vec![params.signed_by(&key, &self.0).unwrap().der().clone()]
        }

        /// A leaf valid from 2090 on, or one for the server role only (extended key usage).
        fn odd_leaf(&self, serial: u64, future: bool) -> Vec<CertificateDer<'static>> {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
            params.serial_number = Some(SerialNumber::from(serial));
            if future {
                params.not_before = rcgen::date_time_ymd(2090, 1, 1);
                params.not_after = rcgen::date_time_ymd(2091, 1, 1);
            } else {
                params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            }
            vec![params.signed_by(&key, &self.0).unwrap().der().clone()]
        }

        fn crl(&self, serials: &[u64]) -> CertificateRevocationListDer<'static> {
            self.crl_until(serials, 2100)
        }

        fn crl_until(
            &self,
            serials: &[u64],
            next_year: i32,
        ) -> CertificateRevocationListDer<'static> {
            let revoked = |s: &u64| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            };
            let params = CertificateRevocationListParams {
                this_update: rcgen::date_time_ymd(2024, 1, 1),
                next_update: rcgen::date_time_ymd(next_year, 1, 1),
                crl_number: SerialNumber::from(2u64),
                issuing_distribution_point: None,
                revoked_certs: serials.iter().map(revoked).collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            };
            params.signed_by(&self.0).unwrap().der().clone()
        }

        fn trust(&self, crls: Vec<CertificateRevocationListDer<'static>>) -> Trust {
            let mut roots = RootCertStore::empty();
            roots.add(self.1.clone()).unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            Trust::new(Arc::new(roots), crls, &provider).unwrap()
        }
    }

    /// Both directions: the peer as a TLS server (this node connected) and as a client.
    fn check(t: &Trust, chain: &[CertificateDer<'_>], name: &str) -> [Result<(), Failure>; 2] {
        let now = UnixTime::now();
        [true, false].map(|server| t.check(chain, server, name, now))
    }

    #[test]
    fn a_chain_revoked_by_new_crls_fails_and_others_pass() {
        let ca = ca("one");
        let (b5, b6) = (
            ca.leaf("b.example", 5, false),
            ca.leaf("b.example", 6, false),
        );
        let before = ca.trust(vec![ca.crl(&[])]);
        assert_eq!(check(&before, &b5, "b.example"), [Ok(()), Ok(())]);
        let after = ca.trust(vec![ca.crl(&[5])]);
        let revoked = Err(Failure::CertRevoked);
        assert_eq!(check(&after, &b5, "b.example"), [revoked, revoked]);
        assert_eq!(check(&after, &b6, "b.example"), [Ok(()), Ok(())]);
        // Without CRLs, no revocation check at all.
        assert_eq!(
            check(&ca.trust(Vec::new()), &b5, "b.example"),
            [Ok(()), Ok(())]
        );
    }

    #[test]
    fn another_ca_expiry_wrong_name_and_empty_chain_fail_with_their_reason() {
        let (ca, other) = (ca("one"), ca("other"));
        let t = ca.trust(vec![ca.crl(&[])]);
        let foreign = other.leaf("b.example", 5, false);
        let unknown = Err(Failure::CertUnknownCa);
        assert_eq!(check(&t, &foreign, "b.example"), [unknown, unknown]);
        let expired = ca.leaf("b.example", 7, true);
        let exp = Err(Failure::CertExpired);
        assert_eq!(check(&t, &expired, "b.example"), [exp, exp]);
        // The name matters where this node connected (the server name it asked for).
        let good = ca.leaf("b.example", 8, false);
        let [as_server, as_client] = check(&t, &good, "c.example");
        assert_eq!((as_server, as_client), (Err(Failure::CertOther), Ok(())));
        assert_eq!(check(&t, &[], "b.example"), [Err(Failure::CertOther); 2]);
        assert_eq!(check(&t, &good, "not a name!")[0], Err(Failure::CertOther));
    }

    /// The config key a refusal of this node's own chain names, or "ok".
    fn own_key(t: &Trust, chain: &[CertificateDer<'_>]) -> &'static str {
        t.check_own(chain, UnixTime::now())
            .map_or_else(|e| e.key, |()| "ok")
    }

    #[test]
    fn own_certificate_refusals_name_the_file_at_fault() {
        let (ca, other) = (ca("one"), ca("other"));
        let t = ca.trust(vec![ca.crl(&[3])]);
        assert_eq!(own_key(&t, &ca.leaf("a.example", 1, false)), "ok");
        // Server-only extended key usage: refused as a client, so checked as a TLS server of
        // any name.
        let server_only = ca.odd_leaf(2, false);
        let as_client = t
            .client
            .verify_client_cert(&server_only[0], &[], UnixTime::now());
        assert!(as_client.is_err_and(|e| is_purpose(&e)));
        assert_eq!(own_key(&t, &server_only), "ok");
        assert_eq!(own_key(&t, &ca.leaf("a.example", 3, false)), "pqpsk.crl");
        assert_eq!(own_key(&t, &ca.leaf("a.example", 4, true)), "pqpsk.cert");
        assert_eq!(own_key(&t, &ca.odd_leaf(5, true)), "pqpsk.cert");
        assert_eq!(own_key(&t, &other.leaf("a.example", 6, false)), "pqpsk.ca");
        // A CRL of another CA only: this node's revocation status is unknown.
        let foreign_crl = ca.trust(vec![other.crl(&[])]);
        assert_eq!(
            own_key(&foreign_crl, &ca.leaf("a.example", 7, false)),
            "pqpsk.crl"
        );
        assert_eq!(own_key(&t, &[]), "pqpsk.cert");
        let e = t.check_own(&ca.leaf("a.example", 3, false), UnixTime::now());
        let text = e.unwrap_err().to_string();
        assert!(text.starts_with("is revoked"), "{text}");
    }

    #[test]
    fn a_crl_past_its_next_update_is_stale_but_still_applies() {
        let ca = ca("one");
        let (good, revoked) = (
            ca.leaf("a.example", 1, false),
            ca.leaf("a.example", 2, false),
        );
        let now = UnixTime::now();
        let old = ca.trust(vec![ca.crl_until(&[2], 2025)]);
        assert!(old.check_own(&good, now).is_ok());
        assert!(old.own_crl_stale(&good, now));
        assert_eq!(own_key(&old, &revoked), "pqpsk.crl");
        let fresh = ca.trust(vec![ca.crl_until(&[2], 2100)]);
        assert!(!fresh.own_crl_stale(&good, now));
        assert!(!ca.trust(Vec::new()).own_crl_stale(&good, now));
    }

    #[test]
    fn rustls_errors_map_to_failure_reasons() {
        let cert = |c| rustls::Error::InvalidCertificate(c);
        assert_eq!(
            failure_of(&cert(CertificateError::Revoked)),
            Failure::CertRevoked
        );
        assert_eq!(
            failure_of(&cert(CertificateError::Expired)),
            Failure::CertExpired
        );
        assert_eq!(
            failure_of(&cert(CertificateError::UnknownIssuer)),
            Failure::CertUnknownCa
        );
        assert_eq!(
            failure_of(&cert(CertificateError::BadSignature)),
            Failure::CertOther
        );
        assert_eq!(
            failure_of(&rustls::Error::General("x".into())),
            Failure::CertOther
        );
    }
}
