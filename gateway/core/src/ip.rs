//! IPv4 and IPv6 header fields, in one place: field offsets, big-endian readers, and the
//! fields the WireGuard engine routes on (source, destination, the length the header states).
//! Pure functions on byte slices; the address and length readers never panic on short or odd
//! packets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv6 fixed header, bytes.
const V6_HEADER_LEN: usize = 40;

/// IPv4 field offsets.
pub mod v4 {
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const ID: usize = 4;
    pub const FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const CSUM: usize = 10;
    /// Source then destination address.
    pub const ADDRS: std::ops::Range<usize> = 12..20;
    /// Don't Fragment, in the 16-bit flags/fragment-offset field.
    pub const DF: u16 = 0x4000;
    /// More Fragments and the fragment offset.
    pub const MF_OFFSET: u16 = 0x3fff;
}

/// IPv6 field offsets.
pub mod v6 {
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    /// Source then destination address.
    pub const ADDRS: std::ops::Range<usize> = 8..40;
}

/// Reads a big-endian u16 at `at` (caller checked the bounds).
pub fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

/// Reads a big-endian u32 at `at` (caller checked the bounds).
pub fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// Writes a big-endian u16 at `at` (caller checked the bounds).
pub fn put16(p: &mut [u8], at: usize, v: u16) {
    p[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The source address of an IPv4 or IPv6 packet, `None` if it is neither or too short.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => Some(IpAddr::V4(v4(packet.get(12..16)?)?)),
        6 => Some(IpAddr::V6(v6(packet.get(8..24)?)?)),
        _ => None,
    }
}

/// The destination address of an IPv4 or IPv6 packet, `None` if it is neither or too short.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => Some(IpAddr::V4(v4(packet.get(16..20)?)?)),
        6 if packet.len() >= 40 => Some(IpAddr::V6(v6(packet.get(24..40)?)?)),
        _ => None,
    }
}

fn v4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

fn v6(b: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
}

/// A decrypted tunnel packet without WireGuard's padding (to a multiple of 16 bytes): cut to
/// the length its IPv4 or IPv6 header states, as kernel WireGuard does. `None` when the header
/// states more than was carried; a packet that is not IP is left whole (the source check
/// refuses it).
pub fn unpadded(packet: &[u8]) -> Option<&[u8]> {
    let be16_at = |at: usize| {
        let b = <[u8; 2]>::try_from(packet.get(at..at + 2)?).ok()?;
        Some(usize::from(u16::from_be_bytes(b)))
    };
    let stated = match packet.first().map(|b| b >> 4) {
        Some(4) => be16_at(v4::TOTAL_LEN),
        Some(6) => be16_at(v6::PAYLOAD_LEN).map(|payload| payload + V6_HEADER_LEN),
        _ => None,
    };
    match stated {
        Some(len) => packet.get(..len),
        None => Some(packet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_parse_and_garbage_does_not() {
        let mut p4 = [0u8; 20];
        p4[0] = 0x45;
        p4[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(source(&p4), Some(ip("10.0.0.1")));
        assert_eq!(destination(&p4), Some(ip("10.0.0.2")));
        let mut p6 = [0u8; 40];
        p6[0] = 0x60;
        p6[23] = 1;
        p6[39] = 2;
        assert_eq!(source(&p6), Some(ip("::1")));
        assert_eq!(destination(&p6), Some(ip("::2")));
        for bad in [&[][..], &[0x45][..], &p4[..19], &p6[..39], &[0x70; 40][..]] {
            assert_eq!(destination(bad), None);
        }
        assert_eq!(source(&[0x45, 0, 0]), None);
    }

    #[test]
    fn padding_is_cut_to_the_stated_length() {
        let mut p4 = [0u8; 36];
        p4[0] = 0x45;
        p4[2..4].copy_from_slice(&28u16.to_be_bytes());
        assert_eq!(unpadded(&p4).map(<[u8]>::len), Some(28));
        let mut p6 = [0u8; 64];
        p6[0] = 0x60;
        p6[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(unpadded(&p6).map(<[u8]>::len), Some(48));
        // A header claiming more than was carried, and a packet that is not IP.
        p4[2..4].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(unpadded(&p4), None);
        assert_eq!(unpadded(&[0x00, 1, 2]), Some(&[0x00, 1, 2][..]));
        assert_eq!(unpadded(&[0x45]), Some(&[0x45][..]));
    }
}
