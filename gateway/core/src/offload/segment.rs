//! GSO split for the TUN read side: one read (virtio header already parsed) becomes IP packets
//! of at most `gso_size` payload each, every one with its own IP lengths, IPv4 ID and header
//! checksum, TCP sequence number and flags or UDP length, and a complete L4 checksum; a single
//! packet with a partial checksum gets it finished. Everything is validated before the first
//! byte is written, so an error means nothing was emitted.

use super::csum;
use super::ip::{self, IpView, PROTO_TCP, PROTO_UDP, UDP_LEN, tcp, udp, v4, v6};
use super::vnet::{GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, NEEDS_CSUM, VnetHdr};
use super::{MAX_PACKET_LEN, OffloadError};

/// TCP's checksum field, from the start of its header (`csum_offset` for TCP).
pub const TCP_CSUM_OFFSET: u16 = 16;
/// UDP's checksum field, from the start of its header (`csum_offset` for UDP).
pub const UDP_CSUM_OFFSET: u16 = 6;

/// Splits one TUN read (header already parsed) into IP packets of at most `gso_size` payload
/// each, each with correct IPv4 total length/ID(+i)/header checksum or IPv6 payload length, TCP
/// seq (+ offset; FIN/PSH only on the last segment, CWR only on the first) or UDP length, and a
/// full L4 checksum. A non-GSO packet with `NEEDS_CSUM` gets its checksum completed. `GSO_NONE`
/// without `NEEDS_CSUM` is passed through unchanged. Each finished packet is handed to `emit` (a
/// slice valid for that call only; `scratch` is reused storage, grown once to the largest
/// segment). Garbage (lengths, offsets, unknown GSO type, more than 64 KiB, `csum_start`/
/// `csum_offset` out of range, the ECN bit...) is an error, and then `emit` was never called.
///
/// Returns how many packets were emitted.
pub fn segment(
    hdr: &VnetHdr,
    packet: &[u8],
    scratch: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let plan = Plan::new(hdr, packet)?;
    if matches!(plan.kind, Kind::Passthrough) {
        emit(packet);
        return Ok(1);
    }
    let need = plan.max_segment_len();
    if scratch.len() < need {
        scratch.resize(need, 0);
    }
    for i in 0..plan.count {
        let n = plan.fill(i, scratch);
        emit(&scratch[..n]);
    }
    Ok(plan.count)
}

/// What a read needs done.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A finished packet: copy as is.
    Passthrough,
    /// One packet whose checksum at `field` is finished over `start..`.
    Complete { start: usize, field: usize },
    /// TCP segmentation.
    Tcp,
    /// UDP segmentation (USO).
    Udp,
}

/// A validated read and how it splits: the lower-level form of [`segment`], for callers that
/// write each segment straight into their own buffers (say, behind encryption headroom).
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    packet: &'a [u8],
    kind: Kind,
    v6: bool,
    /// IP header length.
    l3_len: usize,
    /// IP + L4 header length, copied in front of every segment.
    hdr_total: usize,
    gso_size: usize,
    count: usize,
}

impl<'a> Plan<'a> {
    /// Validates a read against its virtio header; see [`segment`] for what is refused.
    pub fn new(hdr: &VnetHdr, packet: &'a [u8]) -> Result<Self, OffloadError> {
        if packet.len() > MAX_PACKET_LEN {
            return Err(OffloadError::TooLong(packet.len()));
        }
        if packet.is_empty() {
            return Err(ip::truncated("IP header", 1, 0));
        }
        if hdr.gso_type & GSO_ECN != 0 {
            return Err(OffloadError::Ecn);
        }
        match hdr.gso_type {
            GSO_NONE if hdr.flags & NEEDS_CSUM != 0 => Self::complete(hdr, packet),
            GSO_NONE => Ok(Self::single(packet, Kind::Passthrough, 0)),
            GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4 => Self::gso(hdr, packet),
            other => Err(OffloadError::UnsupportedGsoType(other)),
        }
    }

    /// How many packets the read becomes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of packet `i` (0 past the end).
    pub fn segment_len(&self, i: usize) -> usize {
        match self.kind {
            Kind::Passthrough | Kind::Complete { .. } if i == 0 => self.packet.len(),
            Kind::Tcp | Kind::Udp if i < self.count => {
                let start = self.hdr_total + i * self.gso_size;
                self.hdr_total + (self.packet.len() - start).min(self.gso_size)
            }
            _ => 0,
        }
    }

    /// Length of the largest packet (the first).
    pub fn max_segment_len(&self) -> usize {
        self.segment_len(0)
    }

    /// Writes packet `i` to the start of `out` and returns its length.
    pub fn write(&self, i: usize, out: &mut [u8]) -> Result<usize, OffloadError> {
        if i >= self.count {
            return Err(OffloadError::SegmentIndex {
                index: i,
                count: self.count,
            });
        }
        let need = self.segment_len(i);
        if out.len() < need {
            return Err(OffloadError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        Ok(self.fill(i, out))
    }

    fn single(packet: &'a [u8], kind: Kind, l3_len: usize) -> Self {
        Plan {
            packet,
            kind,
            v6: false,
            l3_len,
            hdr_total: 0,
            gso_size: 0,
            count: 1,
        }
    }

    /// A non-GSO packet with a partial checksum: the IP header must be sound and the checksum
    /// field must lie after it, inside the packet.
    fn complete(hdr: &VnetHdr, packet: &'a [u8]) -> Result<Self, OffloadError> {
        let ipv = ip::parse(packet)?;
        if ipv.fragment {
            return Err(OffloadError::Fragment);
        }
        let start = usize::from(hdr.csum_start);
        let field = start + usize::from(hdr.csum_offset);
        if start < ipv.l3_len || field + 2 > packet.len() {
            return Err(OffloadError::Checksum {
                start,
                offset: usize::from(hdr.csum_offset),
                len: packet.len(),
            });
        }
        Ok(Self::single(
            packet,
            Kind::Complete { start, field },
            ipv.l3_len,
        ))
    }

    fn gso(hdr: &VnetHdr, packet: &'a [u8]) -> Result<Self, OffloadError> {
        if hdr.gso_size == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        let ipv = ip::parse(packet)?;
        let (kind, proto, csum_offset) = match (hdr.gso_type, ipv.v6) {
            (GSO_TCPV4, false) | (GSO_TCPV6, true) => (Kind::Tcp, PROTO_TCP, TCP_CSUM_OFFSET),
            (GSO_UDP_L4, _) => (Kind::Udp, PROTO_UDP, UDP_CSUM_OFFSET),
            (gso_type, v6) => {
                let version = if v6 { 6 } else { 4 };
                return Err(OffloadError::IpVersion { version, gso_type });
            }
        };
        check_ip_for_gso(&ipv, proto)?;
        let l4_len = l4_header_len(packet, &ipv, kind)?;
        let len = packet.len();
        let csum_ok = usize::from(hdr.csum_start) == ipv.l3_len && hdr.csum_offset == csum_offset;
        if hdr.flags & NEEDS_CSUM != 0 && !csum_ok {
            return Err(OffloadError::Checksum {
                start: usize::from(hdr.csum_start),
                offset: usize::from(hdr.csum_offset),
                len,
            });
        }
        // hdr_len is a hint on reads (virtio_net_hdr_from_skb stores skb_headlen there, which
        // can include payload on the forwarding path): only one past the end is refused; the
        // real header length comes from the headers themselves.
        if usize::from(hdr.hdr_len) > len {
            return Err(OffloadError::HdrLen {
                hdr_len: usize::from(hdr.hdr_len),
                len,
            });
        }
        let hdr_total = ipv.l3_len + l4_len;
        let payload = len - hdr_total;
        if payload == 0 {
            return Err(OffloadError::EmptyPayload);
        }
        let gso_size = usize::from(hdr.gso_size);
        Ok(Plan {
            packet,
            kind,
            v6: ipv.v6,
            l3_len: ipv.l3_len,
            hdr_total,
            gso_size,
            count: payload.div_ceil(gso_size),
        })
    }

    /// Builds packet `i` in `out` (the caller checked `i` and the length).
    fn fill(&self, i: usize, out: &mut [u8]) -> usize {
        let p = self.packet;
        match self.kind {
            Kind::Passthrough => {
                out[..p.len()].copy_from_slice(p);
                p.len()
            }
            Kind::Complete { start, field } => {
                out[..p.len()].copy_from_slice(p);
                // The field holds the pseudo-header sum; the sum from csum_start over it and the
                // rest, complemented, is the checksum (skb_checksum_help; 0 is sent as 0xffff).
                let c = csum::finish(csum::sum(&out[start..p.len()]));
                ip::put16(out, field, nonzero(c));
                p.len()
            }
            Kind::Tcp | Kind::Udp => self.fill_segment(i, out),
        }
    }

    fn fill_segment(&self, i: usize, out: &mut [u8]) -> usize {
        let p = self.packet;
        let (h, l3) = (self.hdr_total, self.l3_len);
        let start = h + i * self.gso_size;
        let end = (start + self.gso_size).min(p.len());
        let n = h + end - start;
        out[..h].copy_from_slice(&p[..h]);
        out[h..n].copy_from_slice(&p[start..end]);
        let l4_total = n - l3;
        if self.v6 {
            ip::put16(out, v6::PAYLOAD_LEN, len16(l4_total));
        } else {
            ip::put16(out, v4::TOTAL_LEN, len16(n));
            let id = ip::be16(p, v4::ID).wrapping_add(i as u16);
            ip::put16(out, v4::ID, id);
            let c = csum::ipv4_header_checksum(&out[..l3]);
            ip::put16(out, v4::CSUM, c);
        }
        let (proto, field) = match self.kind {
            Kind::Udp => {
                ip::put16(out, l3 + udp::LEN, len16(l4_total));
                (PROTO_UDP, l3 + udp::CSUM)
            }
            _ => {
                self.fix_tcp(i, &mut out[l3..]);
                (PROTO_TCP, l3 + tcp::CSUM)
            }
        };
        ip::put16(out, field, 0);
        let addrs = if self.v6 { v6::ADDRS } else { v4::ADDRS };
        let pseudo = csum::pseudo(&out[addrs], proto, l4_total as u32);
        let c = csum::finish(csum::add(pseudo, csum::sum(&out[l3..n])));
        ip::put16(out, field, if proto == PROTO_UDP { nonzero(c) } else { c });
        n
    }

    /// Sequence number and flags of TCP segment `i` (`th` starts at the TCP header).
    fn fix_tcp(&self, i: usize, th: &mut [u8]) {
        let seq =
            ip::be32(self.packet, self.l3_len + tcp::SEQ).wrapping_add((i * self.gso_size) as u32);
        th[tcp::SEQ..tcp::SEQ + 4].copy_from_slice(&seq.to_be_bytes());
        let mut flags = th[tcp::FLAGS];
        if i + 1 < self.count {
            flags &= !(tcp::FIN | tcp::PSH);
        }
        if i > 0 {
            flags &= !tcp::CWR;
        }
        th[tcp::FLAGS] = flags;
    }
}

/// The IP header a GSO read needs: no IPv4 options or fragments, the transport `proto` right
/// after it (no IPv6 extension headers).
fn check_ip_for_gso(ipv: &IpView, proto: u8) -> Result<(), OffloadError> {
    if ipv.options {
        return Err(OffloadError::Ipv4Options);
    }
    if ipv.fragment {
        return Err(OffloadError::Fragment);
    }
    if ipv.proto != proto {
        return Err(OffloadError::Protocol {
            expected: proto,
            found: ipv.proto,
        });
    }
    Ok(())
}

/// The TCP header length from its data offset, or UDP's 8 with its length field checked.
fn l4_header_len(p: &[u8], ipv: &IpView, kind: Kind) -> Result<usize, OffloadError> {
    let l4 = ipv.l3_len;
    if matches!(kind, Kind::Tcp) {
        return ip::tcp_header_len(p, l4);
    }
    if p.len() < l4 + UDP_LEN {
        return Err(ip::truncated("UDP header", l4 + UDP_LEN, p.len()));
    }
    let field = usize::from(ip::be16(p, l4 + udp::LEN));
    if field != p.len() - l4 {
        return Err(OffloadError::UdpLength {
            field,
            actual: p.len() - l4,
        });
    }
    Ok(UDP_LEN)
}

/// A length known to be at most [`MAX_PACKET_LEN`] as a 16-bit field.
pub(crate) fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// A computed checksum of 0 is sent as 0xffff (UDP: 0 means "none"; RFC 768, `CSUM_MANGLED_0`).
fn nonzero(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}
