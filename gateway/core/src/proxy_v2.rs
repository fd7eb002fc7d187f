//! PROXY protocol version 2 header encoding (haproxy's proxy-protocol.txt, section 2.2), with
//! the TLS facts a backend may want: server name, ALPN, protocol version and cipher.

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature that starts every v2 header.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const VERSION_PROXY: u8 = 0x21;
const FAMILY_TCP4: u8 = 0x11;
const FAMILY_TCP6: u8 = 0x21;
const TYPE_ALPN: u8 = 0x01;
const TYPE_AUTHORITY: u8 = 0x02;
const TYPE_SSL: u8 = 0x20;
const SUBTYPE_SSL_VERSION: u8 = 0x21;
const SUBTYPE_SSL_CIPHER: u8 = 0x23;
const CLIENT_SSL: u8 = 0x01;
const CLIENT_CERT_CONN: u8 = 0x02;

/// What the header says about the TLS session.
#[derive(Clone, Debug, Default)]
pub struct TlsFacts<'a> {
    /// Server name the client asked for.
    pub sni: Option<&'a str>,
    /// Negotiated ALPN protocol.
    pub alpn: Option<&'a [u8]>,
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: &'a str,
    /// Cipher suite name.
    pub cipher: &'a str,
    /// Whether the client presented a verified certificate on this connection.
    pub client_cert: bool,
}

/// Encodes a PROXY v2 header for a TCP connection from `client` to `local`.
///
/// Mixed families are sent as IPv6 with the IPv4 address mapped. TLVs whose value would not fit
/// are left out rather than truncated.
pub fn encode(client: SocketAddr, local: SocketAddr, tls: &TlsFacts<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    let family = match (client.ip(), local.ip()) {
        (IpAddr::V4(c), IpAddr::V4(l)) => {
            body.extend_from_slice(&c.octets());
            body.extend_from_slice(&l.octets());
            FAMILY_TCP4
        }
        (c, l) => {
            body.extend_from_slice(&to_v6(c).octets());
            body.extend_from_slice(&to_v6(l).octets());
            FAMILY_TCP6
        }
    };
    body.extend_from_slice(&client.port().to_be_bytes());
    body.extend_from_slice(&local.port().to_be_bytes());
    if let Some(alpn) = tls.alpn {
        push_tlv(&mut body, TYPE_ALPN, alpn);
    }
    if let Some(sni) = tls.sni {
        push_tlv(&mut body, TYPE_AUTHORITY, sni.as_bytes());
    }
    push_tlv(&mut body, TYPE_SSL, &ssl_tlv(tls));

    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_PROXY);
    out.push(family);
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn ssl_tlv(tls: &TlsFacts<'_>) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    let client = if tls.client_cert {
        CLIENT_SSL | CLIENT_CERT_CONN
    } else {
        CLIENT_SSL
    };
    v.push(client);
    // verify: 0 means the client certificate (if any) was verified successfully.
    v.extend_from_slice(&0u32.to_be_bytes());
    push_tlv(&mut v, SUBTYPE_SSL_VERSION, tls.version.as_bytes());
    push_tlv(&mut v, SUBTYPE_SSL_CIPHER, tls.cipher.as_bytes());
    v
}

fn push_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    // A TLV length is 16 bits; the whole header must also stay below 64 KiB.
    let Ok(len) = u16::try_from(value.len()) else {
        return;
    };
    if out.len() + 3 + value.len() > usize::from(u16::MAX) {
        return;
    }
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_layout() {
        let client: SocketAddr = "192.0.2.1:51000".parse().unwrap();
        let local: SocketAddr = "198.51.100.2:443".parse().unwrap();
        let h = encode(client, local, &TlsFacts::default());
        assert_eq!(&h[..12], &SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
        assert_eq!(h.len(), 16 + len);
        assert_eq!(&h[16..20], &[192, 0, 2, 1]);
        assert_eq!(&h[20..24], &[198, 51, 100, 2]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 51000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 443);
        // Only the SSL TLV follows: type, length, client flags, verify, two empty sub-TLVs.
        assert_eq!(h[28], TYPE_SSL);
        assert_eq!(
            usize::from(u16::from_be_bytes([h[29], h[30]])),
            1 + 4 + 3 + 3
        );
    }

    #[test]
    fn mixed_families_are_sent_as_ipv6_with_tlvs() {
        let client: SocketAddr = "[2001:db8::1]:1234".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let facts = TlsFacts {
            sni: Some("api.example.com"),
            alpn: Some(b"h2"),
            version: "TLSv1.3",
            cipher: "TLS13_AES_256_GCM_SHA384",
            client_cert: true,
        };
        let h = encode(client, local, &facts);
        assert_eq!(h[13], 0x21);
        let addrs = &h[16..52];
        assert_eq!(
            addrs[..16],
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(
            addrs[16..32],
            "::ffff:127.0.0.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        let tlvs = &h[52..];
        assert_eq!(&tlvs[..5], &[TYPE_ALPN, 0, 2, b'h', b'2']);
        assert_eq!(tlvs[5], TYPE_AUTHORITY);
        assert_eq!(&tlvs[8..23], b"api.example.com");
        assert_eq!(tlvs[23], TYPE_SSL);
        assert_eq!(tlvs[26], CLIENT_SSL | CLIENT_CERT_CONN);
    }
}
