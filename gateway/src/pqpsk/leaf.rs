//! A certificate's serial number and expiry, for log lines only (read with [`crate::keys::x509`]:
//! nothing is trusted or decided from it; malformed input gives `None`).

use crate::keys::index::serial_hex;
use crate::keys::x509;

/// What a log line says about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Lowercase hex, without a leading sign byte.
    pub serial: String,
    /// `notAfter` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_after: String,
}

/// Serial and `notAfter` of the DER certificate `der`.
pub(super) fn summary(der: &[u8]) -> Option<Summary> {
    let cert = x509::parse(der).ok()?;
    let serial = match cert.tbs_certificate.raw_serial() {
        [0, rest @ ..] if !rest.is_empty() => rest,
        s => s,
    };
    let t = cert.validity().not_after.to_datetime();
    Some(Summary {
        serial: serial_hex(serial),
        not_after: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
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
        // UTCTime years 50-99 are 19xx.
        let s = summary(&cert(&[7], (1999, 12, 31))).unwrap();
        assert_eq!(s.not_after, "1999-12-31T00:00:00Z");
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
    }
}
