//! A certificate's serial number and expiry, read from its DER for log lines only (a minimal walk
//! of `tbsCertificate`: nothing is trusted or decided from it; malformed input gives `None`).

use crate::keys::index::serial_hex;

/// What a log line says about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Lowercase hex, without a leading sign byte.
    pub serial: String,
    /// `notAfter` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_after: String,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: (tag, contents, the rest of `input`).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first - 0x80);
            let bytes = rest.get(..n)?;
            let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
            (len, rest.get(n..)?)
        }
        _ => return None,
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// The element at the front of `input` if it has `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, value, rest) = tlv(input)?;
    (t == tag).then_some((value, rest))
}

/// `YYMMDDHHMMSSZ` (UTCTime, RFC 5280 years 1950-2049) or `YYYYMMDDHHMMSSZ` as ISO 8601.
fn time(tag: u8, value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let century = if digits.get(..2)? < "50" { "20" } else { "19" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_owned(),
        _ => return None,
    };
    let f = |a: usize, b: usize| full.get(a..b);
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        f(0, 4)?,
        f(4, 6)?,
        f(6, 8)?,
        f(8, 10)?,
        f(10, 12)?,
        f(12, 14)?
    ))
}

/// Serial and `notAfter` of the DER certificate `der`.
pub fn summary(der: &[u8]) -> Option<Summary> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let tbs = match expect(tbs, VERSION) {
        Some((_, rest)) => rest,
        None => tbs,
    };
    let (serial, rest) = expect(tbs, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, _) = expect(rest, SEQUENCE)?;
    let (_, _not_before, rest) = tlv(validity)?;
    let (tag, not_after, _) = tlv(rest)?;
    let serial = match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        s => s,
    };
    Some(Summary {
        serial: serial_hex(serial),
        not_after: time(tag, not_after)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: &[u8], not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_serial_and_expiry_in_both_time_forms() {
        let s = summary(&cert(&[0x12, 0x34], (2031, 2, 3))).unwrap();
        assert_eq!(s.serial, "1234");
        assert_eq!(s.not_after, "2031-02-03T00:00:00Z");
        // From 2050 on, RFC 5280 requires GeneralizedTime; a high bit gets a sign byte.
        let s = summary(&cert(&[0x81, 0x02], (2051, 12, 31))).unwrap();
        assert_eq!(s.serial, "8102");
        assert_eq!(s.not_after, "2051-12-31T00:00:00Z");
    }

    #[test]
    fn malformed_input_gives_none() {
        let good = cert(&[7], (2030, 1, 1));
        assert!(summary(&good).is_some());
        for cut in [0, 1, 2, 10, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad.truncate(cut);
            // A cut certificate's outer length no longer fits.
            assert_eq!(summary(&bad), None, "cut at {cut}");
        }
        assert_eq!(summary(b"not DER"), None);
        assert_eq!(time(UTC_TIME, b"3001011200Z"), None);
        assert_eq!(time(UTC_TIME, b"30010112000aZ"), None);
    }
}
