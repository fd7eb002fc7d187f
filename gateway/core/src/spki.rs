//! Extracts the SubjectPublicKeyInfo from a DER X.509 certificate (RFC 5280 section 4.1), for key
//! pinning. A minimal, strict DER walk: definite lengths only, no allocation.

/// Why a certificate could not be walked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed certificate DER: {0}")]
pub struct DerError(&'static str);

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION_TAG: u8 = 0xa0;

/// Returns the DER bytes (tag and length included) of the certificate's SubjectPublicKeyInfo.
pub fn subject_public_key_info(cert: &[u8]) -> Result<&[u8], DerError> {
    let (cert_body, _) = expect(cert, SEQUENCE, "certificate")?;
    let (tbs, _) = expect(cert_body, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION_TAG) {
        rest = expect(rest, VERSION_TAG, "version")?.1;
    }
    rest = expect(rest, INTEGER, "serialNumber")?.1;
    for field in ["signature", "issuer", "validity", "subject"] {
        rest = expect(rest, SEQUENCE, field)?.1;
    }
    let (_, after) = expect(rest, SEQUENCE, "subjectPublicKeyInfo")?;
    Ok(&rest[..rest.len() - after.len()])
}

/// Reads one TLV with tag `tag`; returns (contents, remainder).
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DerError> {
    let (&t, rest) = input.split_first().ok_or(DerError(what))?;
    if t != tag {
        return Err(DerError(what));
    }
    let (&first, mut rest) = rest.split_first().ok_or(DerError(what))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(DerError(what));
        }
        let (bytes, tail) = rest.split_at(count);
        rest = tail;
        bytes
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b))
    };
    if rest.len() < len {
        return Err(DerError(what));
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn finds_spki_with_and_without_version() {
        let spki = tlv(SEQUENCE, &[0x05, 0x00, 0x03, 0x01, 0x00]);
        for version in [Some(tlv(VERSION_TAG, &tlv(INTEGER, &[2]))), None] {
            let mut tbs = version.unwrap_or_default();
            tbs.extend(tlv(INTEGER, &[1; 20]));
            for _ in 0..4 {
                tbs.extend(tlv(SEQUENCE, &[0x05, 0x00]));
            }
            tbs.extend(&spki);
            tbs.extend(tlv(0xa3, &[0; 200]));
            let mut body = tlv(SEQUENCE, &tbs);
            body.extend(tlv(SEQUENCE, &[0x05, 0x00]));
            let cert = tlv(SEQUENCE, &body);
            assert_eq!(subject_public_key_info(&cert).unwrap(), &spki[..]);
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(subject_public_key_info(&[]).is_err());
        assert!(subject_public_key_info(&[0x30, 0x82, 0x01]).is_err());
        assert!(subject_public_key_info(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01]).is_err());
    }
}
