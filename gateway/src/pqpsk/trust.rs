//! Re-checks of live channels: the peer-certificate verifiers of one TLS build (CA and CRLs as
//! read then), applied to the chain a connection's peer presented, with the current time, so a
//! reload that revokes a certificate (or drops its CA) can close the channels it no longer
//! trusts. Refusals map to the same failure reasons as a refused handshake.

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
pub struct Trust {
    /// Checks a peer that connected to this node (a TLS client).
    client: Arc<dyn ClientCertVerifier>,
    /// Checks a peer this node connected to (a TLS server).
    server: Arc<WebPkiServerVerifier>,
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
        if !crls.is_empty() {
            client = client
                .with_crls(crls.clone())
                .only_check_end_entity_revocation();
            server = server.with_crls(crls).only_check_end_entity_revocation();
        }
        Ok(Self {
            client: client.build().map_err(verifier_err)?,
            server: server.build().map_err(verifier_err)?,
        })
    }

    /// Whether a live channel's peer chain (leaf first) still passes: as a TLS server named
    /// `name` when this node connected to it (`peer_is_server`), else as a TLS client.
    pub fn check(
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
pub fn failure_of(e: &rustls::Error) -> Failure {
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
pub fn peer_chain(conn: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
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

        fn crl(&self, serials: &[u64]) -> CertificateRevocationListDer<'static> {
            let revoked = |s: &u64| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            };
            let params = CertificateRevocationListParams {
                this_update: rcgen::date_time_ymd(2024, 1, 1),
                next_update: rcgen::date_time_ymd(2100, 1, 1),
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
