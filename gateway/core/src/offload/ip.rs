//! Crate-internal IP and transport header views shared by the segmenter and the coalescer:
//! field offsets and a strict parse of the IP header (lengths agree with the bytes present).

pub(crate) use crate::ip::{be16, be32, put16, v4, v6};

use super::{MAX_PACKET_LEN, OffloadError};

/// IPv4 header without options, bytes.
pub(crate) const V4_MIN: usize = 20;
/// IPv6 fixed header, bytes.
pub(crate) const V6_LEN: usize = 40;
/// TCP header without options, bytes.
pub(crate) const TCP_MIN: usize = 20;
/// UDP header, bytes.
pub(crate) const UDP_LEN: usize = 8;

/// IP protocol number of TCP.
pub(crate) const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub(crate) const PROTO_UDP: u8 = 17;

/// TCP field offsets and flags.
pub(crate) mod tcp {
    pub(crate) const SEQ: usize = 4;
    pub(crate) const ACK: usize = 8;
    pub(crate) const OFFSET: usize = 12;
    pub(crate) const FLAGS: usize = 13;
    pub(crate) const WINDOW: usize = 14;
    pub(crate) const CSUM: usize = 16;
    pub(crate) const URGENT: usize = 18;
    pub(crate) const FIN: u8 = 0x01;
    pub(crate) const PSH: u8 = 0x08;
    pub(crate) const ACK_FLAG: u8 = 0x10;
    pub(crate) const CWR: u8 = 0x80;
}

/// UDP field offsets.
pub(crate) mod udp {
    pub(crate) const LEN: usize = 4;
    pub(crate) const CSUM: usize = 6;
}

/// What the IP header says, checked against the bytes present.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpView {
    /// IPv6 rather than IPv4.
    pub(crate) v6: bool,
    /// IP header length (IPv4 with options; IPv6 fixed header only).
    pub(crate) l3_len: usize,
    /// IPv4 protocol or IPv6 next header.
    pub(crate) proto: u8,
    /// IPv4 with options.
    pub(crate) options: bool,
    /// IPv4 fragment (MF set or a non-zero offset).
    pub(crate) fragment: bool,
    /// IPv4 Don't Fragment (always true for IPv6, which routers never fragment).
    pub(crate) df: bool,
}

impl IpView {
    /// Where source and destination addresses lie.
    pub(crate) fn addrs(&self) -> std::ops::Range<usize> {
        if self.v6 { v6::ADDRS } else { v4::ADDRS }
    }
}

/// Parses the IP header of a whole packet: version 4 or 6, header length in range, and the
/// length field equal to the bytes present (no trailing bytes, no jumbograms), at most
/// [`MAX_PACKET_LEN`].
pub(crate) fn parse(p: &[u8]) -> Result<IpView, OffloadError> {
    if p.len() > MAX_PACKET_LEN {
        return Err(OffloadError::TooLong(p.len()));
    }
    let Some(&first) = p.first() else {
        return Err(OffloadError::Truncated {
            what: "IP header",
            need: 1,
            have: 0,
        });
    };
    match first >> 4 {
        4 => parse_v4(p),
        6 => parse_v6(p),
        version => Err(OffloadError::IpVersion {
            version,
            gso_type: 0,
        }),
    }
}

fn parse_v4(p: &[u8]) -> Result<IpView, OffloadError> {
    if p.len() < V4_MIN {
        return Err(truncated("IPv4 header", V4_MIN, p.len()));
    }
    let l3_len = usize::from(p[0] & 0x0f) * 4;
    if l3_len < V4_MIN || l3_len > p.len() {
        return Err(OffloadError::Ipv4HeaderLength(l3_len));
    }
    let total = usize::from(be16(p, v4::TOTAL_LEN));
    if total != p.len() {
        return Err(OffloadError::IpLength {
            field: total,
            actual: p.len(),
        });
    }
    let frag = be16(p, v4::FRAG);
    Ok(IpView {
        v6: false,
        l3_len,
        proto: p[v4::PROTO],
        options: l3_len > V4_MIN,
        fragment: frag & v4::MF_OFFSET != 0,
        df: frag & v4::DF != 0,
    })
}

fn parse_v6(p: &[u8]) -> Result<IpView, OffloadError> {
    if p.len() < V6_LEN {
        return Err(truncated("IPv6 header", V6_LEN, p.len()));
    }
    let total = usize::from(be16(p, v6::PAYLOAD_LEN)) + V6_LEN;
    if total != p.len() {
        return Err(OffloadError::IpLength {
            field: total,
            actual: p.len(),
        });
    }
    Ok(IpView {
        v6: true,
        l3_len: V6_LEN,
        proto: p[v6::NEXT],
        options: false,
        fragment: false,
        df: true,
    })
}

/// The TCP header length from its data offset, checked against the bytes after `l4`.
pub(crate) fn tcp_header_len(p: &[u8], l4: usize) -> Result<usize, OffloadError> {
    let Some(&off) = p.get(l4 + tcp::OFFSET) else {
        return Err(truncated("TCP header", l4 + TCP_MIN, p.len()));
    };
    let len = usize::from(off >> 4) * 4;
    if len < TCP_MIN || l4 + len > p.len() {
        return Err(OffloadError::TcpHeaderLength(len));
    }
    Ok(len)
}

/// A [`OffloadError::Truncated`].
pub(crate) fn truncated(what: &'static str, need: usize, have: usize) -> OffloadError {
    OffloadError::Truncated { what, need, have }
}
