//! The daemon's one X.509 reader (RFC 5280 section 4.1, through `x509-parser`): parses a DER
//! certificate into its fields and never panics; malformed or truncated input is a [`CertError`].
//! Nothing is verified here (rustls and webpki do that): callers read names, dates and keys.

use x509_parser::certificate::X509CertificateParser;
use x509_parser::error::X509Error;
use x509_parser::nom::{self, Parser};

pub(crate) use x509_parser::certificate::X509Certificate;

/// Why bytes are not a DER X.509 certificate.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CertError {
    /// The input ends inside the certificate.
    #[error("malformed certificate DER: truncated")]
    Truncated,
    /// A field does not parse.
    #[error("malformed certificate DER")]
    Malformed {
        /// The field and what is wrong with it.
        #[source]
        source: X509Error,
    },
}

/// Parses one DER certificate (bytes after it are ignored). Extensions are split but not
/// decoded: no caller reads them, and one odd extension should not hide the rest.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
    {
        Ok((_, cert)) => Ok(cert),
        Err(nom::Err::Incomplete(_)) => Err(CertError::Truncated),
        Err(nom::Err::Error(source) | nom::Err::Failure(source)) => {
            Err(CertError::Malformed { source })
        }
    }
}

/// The DER bytes (tag and length included) of the certificate's SubjectPublicKeyInfo: what a
/// key pin hashes.
pub(crate) fn subject_public_key_info(der: &[u8]) -> Result<&[u8], CertError> {
    Ok(parse(der)?.tbs_certificate.subject_pki.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    /// Builds a DER TLV.
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if body.len() < 0x80 {
            out.push(body.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    fn key() -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    }

    fn generated(key: &rcgen::KeyPair) -> Vec<u8> {
        rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .self_signed(key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn finds_spki_of_a_generated_certificate() {
        let key = key();
        let cert = generated(&key);
        assert_eq!(
            subject_public_key_info(&cert).unwrap(),
            &key.subject_public_key_info()[..]
        );
    }

    #[test]
    fn finds_spki_with_and_without_version() {
        let spki = key().subject_public_key_info();
        // ecdsa-with-SHA256
        let alg = tlv(
            0x30,
            &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
        );
        let mut validity = tlv(0x17, b"250101000000Z");
        validity.extend(tlv(0x17, b"300101000000Z"));
        for version in [Some(tlv(0xa0, &tlv(0x02, &[2]))), None] {
            let mut tbs = version.unwrap_or_default();
            tbs.extend(tlv(0x02, &[1; 20]));
            tbs.extend(&alg);
            tbs.extend(tlv(0x30, &[]));
            tbs.extend(tlv(0x30, &validity));
            tbs.extend(tlv(0x30, &[]));
            tbs.extend(&spki);
            let mut body = tlv(0x30, &tbs);
            body.extend(&alg);
            body.extend(tlv(0x03, &[0]));
            let cert = tlv(0x30, &body);
            assert_eq!(subject_public_key_info(&cert).unwrap(), &spki[..]);
        }
    }

    #[test]
    fn malformed_or_truncated_input_is_an_error_not_a_panic() {
        let good = generated(&key());
        assert!(parse(&good).is_ok());
        for cut in 0..good.len() {
            let err = parse(&good[..cut]).unwrap_err();
            assert!(
                err.to_string().starts_with("malformed certificate DER"),
                "cut at {cut}: {err}"
            );
        }
        assert_eq!(parse(&[]).unwrap_err(), CertError::Truncated);
        assert_eq!(
            parse(&[0x30, 0x82, 0x01]).unwrap_err().to_string(),
            "malformed certificate DER: truncated"
        );
        for bad in [
            &b"not DER"[..],
            &[0x30, 0x05, 0x30, 0x03, 0x02, 0x01],
            &[0x30, 0x03, 0x30, 0x01],
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("malformed certificate DER"),
                "{err}"
            );
        }
        let mut flipped = good.clone();
        flipped[1] ^= 0x01;
        assert!(parse(&flipped).is_err());
        let err = parse(b"not DER").unwrap_err();
        if let CertError::Malformed { .. } = err {
            assert!(std::error::Error::source(&err).is_some());
        }
    }
}
