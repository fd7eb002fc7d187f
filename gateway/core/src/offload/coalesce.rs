//! GRO for the TUN write side: decrypted IP packets, pushed in arrival order, leave as 10-byte
//! virtio header + packet buffers. Runs of coalescible TCP segments (and UDP datagrams when
//! enabled) of one flow become one GSO super-packet with a partial checksum; everything else
//! leaves alone and unchanged behind an all-zero header. Per-flow order is always kept.

use super::MAX_PACKET_LEN;
use super::csum;
use super::ip::{self, IpView, PROTO_TCP, PROTO_UDP, TCP_MIN, UDP_LEN, tcp, udp, v4, v6};
use super::segment::{TCP_CSUM_OFFSET, UDP_CSUM_OFFSET, len16};
use super::vnet::{GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, NEEDS_CSUM, VNET_HDR_LEN, VnetHdr};

/// IP protocol number of ICMPv6 (no ports, never an extension header).
const PROTO_ICMPV6: u8 = 58;

/// Most flows with a run pending at once. A receive batch (wireguard-go: 128 packets) rarely
/// carries more bulk flows than this; a ninth flow flushes the oldest run early, which costs
/// only coalescing, never order.
pub const MAX_FLOWS: usize = 8;

/// Most segments in one super-packet: `UDP_GRO_CNT_MAX` (net/ipv4/udp_offload.c), the most the
/// kernel's own UDP GRO merges; TCP runs are held to it too, so a run's size stays predictable.
pub const MAX_SEGMENTS: usize = 64;

/// The flow a packet belongs to: family, protocol, addresses and ports as they lie on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FlowKey {
    v6: bool,
    proto: u8,
    /// Source then destination (IPv4 uses the first 8 bytes).
    addrs: [u8; 32],
    ports: [u8; 4],
}

/// What a packet that cannot join a run shares with pending runs (their order must be kept).
struct Related {
    key: FlowKey,
    /// Whether `key.ports` is known (not for fragments or truncated headers).
    has_ports: bool,
    /// Whether runs of every protocol between these hosts are related.
    any_proto: bool,
}

/// A packet that may join a run.
struct Candidate {
    key: FlowKey,
    ipv: IpView,
    l4_len: usize,
    payload: usize,
    psh: bool,
}

/// One flow's pending run: the first packet's headers and every payload, behind room for the
/// virtio header.
#[derive(Debug, Default)]
struct Slot {
    active: bool,
    key: FlowKey,
    l3_len: usize,
    l4_len: usize,
    gso_size: usize,
    count: usize,
    /// Sequence number the next TCP segment must carry.
    next_seq: u32,
    /// IPv4 without DF: IDs must increase by one per segment (segmentation restores them so).
    check_id: bool,
    /// The last segment carried PSH.
    psh: bool,
    /// The last segment was shorter than `gso_size`.
    short_tail: bool,
    /// When the run started, in pushes (the oldest is evicted first).
    age: u64,
    /// `VNET_HDR_LEN` bytes of room, the first packet, then the payload of every later one.
    buf: Vec<u8>,
}

/// GRO for the TUN write side; see the module documentation.
#[derive(Debug)]
pub struct Coalescer {
    limit: usize,
    udp: bool,
    slots: [Slot; MAX_FLOWS],
    /// Storage for packets that leave alone.
    single: Vec<u8>,
    pushes: u64,
}

impl Coalescer {
    /// A coalescer whose super-packets hold at most `max_bytes` (capped at 65,535) of IP packet,
    /// merging UDP too when `udp` is true (only where the TUN took `TUN_F_USO4|TUN_F_USO6`).
    pub fn new(max_bytes: usize, udp: bool) -> Self {
        Coalescer {
            limit: max_bytes.min(MAX_PACKET_LEN),
            udp,
            slots: Default::default(),
            single: Vec::new(),
            pushes: 0,
        }
    }

    /// Takes the next decrypted packet; emits whatever is finished (10-byte virtio header +
    /// packet, valid for the call only).
    pub fn push(&mut self, packet: &[u8], emit: &mut dyn FnMut(&[u8])) {
        self.pushes += 1;
        match classify(packet, self.udp) {
            Ok(c) => self.push_candidate(packet, &c, emit),
            Err(related) => {
                if let Some(r) = related {
                    self.flush_related(&r, emit);
                }
                self.emit_alone(packet, emit);
            }
        }
    }

    /// Emits every pending run, oldest first (call at the end of a receive batch).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        while let Some(i) = self.oldest() {
            self.flush_slot(i, emit);
        }
    }

    fn push_candidate(&mut self, p: &[u8], c: &Candidate, emit: &mut dyn FnMut(&[u8])) {
        let found = self.slots.iter().position(|s| s.active && s.key == c.key);
        let i = match found {
            Some(i) if self.slots[i].fits(p, c, self.limit) => {
                let slot = &mut self.slots[i];
                slot.append(p, c);
                if slot.closed() {
                    self.flush_slot(i, emit);
                }
                return;
            }
            Some(i) => {
                self.flush_slot(i, emit);
                i
            }
            None => match self.slots.iter().position(|s| !s.active) {
                Some(i) => i,
                None => {
                    let i = self.oldest().unwrap_or(0);
                    self.flush_slot(i, emit);
                    i
                }
            },
        };
        // PSH ends a run, so a run cannot start with it; nor with a packet already at the limit.
        if c.psh || p.len() + 1 > self.limit {
            self.emit_alone(p, emit);
        } else {
            self.slots[i].begin(p, c, self.pushes);
        }
    }

    fn oldest(&self) -> Option<usize> {
        (0..MAX_FLOWS)
            .filter(|&i| self.slots[i].active)
            .min_by_key(|&i| self.slots[i].age)
    }

    /// Flushes the runs a lone packet must not overtake.
    fn flush_related(&mut self, r: &Related, emit: &mut dyn FnMut(&[u8])) {
        for i in 0..MAX_FLOWS {
            let k = &self.slots[i].key;
            let same_hosts = k.v6 == r.key.v6 && k.addrs == r.key.addrs;
            let same_proto = r.any_proto || k.proto == r.key.proto;
            let same_ports = !r.has_ports || k.ports == r.key.ports;
            if self.slots[i].active && same_hosts && same_proto && same_ports {
                self.flush_slot(i, emit);
            }
        }
    }

    fn emit_alone(&mut self, p: &[u8], emit: &mut dyn FnMut(&[u8])) {
        self.single.clear();
        self.single.extend_from_slice(&[0; VNET_HDR_LEN]);
        self.single.extend_from_slice(p);
        emit(&self.single);
    }

    fn flush_slot(&mut self, i: usize, emit: &mut dyn FnMut(&[u8])) {
        let slot = &mut self.slots[i];
        if !slot.active {
            return;
        }
        slot.active = false;
        if slot.count == 1 {
            slot.buf[..VNET_HDR_LEN].fill(0);
        } else {
            slot.finish();
        }
        emit(&slot.buf);
    }
}

impl Slot {
    fn begin(&mut self, p: &[u8], c: &Candidate, age: u64) {
        self.active = true;
        self.key = c.key;
        self.l3_len = c.ipv.l3_len;
        self.l4_len = c.l4_len;
        self.gso_size = c.payload;
        self.count = 1;
        self.psh = false;
        self.short_tail = false;
        self.age = age;
        self.check_id = !c.ipv.v6 && !c.ipv.df;
        if c.key.proto == PROTO_TCP {
            let seq = ip::be32(p, c.ipv.l3_len + tcp::SEQ);
            self.next_seq = seq.wrapping_add(c.payload as u32);
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0; VNET_HDR_LEN]);
        self.buf.extend_from_slice(p);
    }

    /// The first packet of the run.
    fn first(&self) -> &[u8] {
        &self.buf[VNET_HDR_LEN..]
    }

    /// Whether `p` (same flow) continues the run: see [`headers_match`] for the header rules.
    fn fits(&self, p: &[u8], c: &Candidate, limit: usize) -> bool {
        let packet_len = self.buf.len() - VNET_HDR_LEN;
        c.payload <= self.gso_size
            && c.l4_len == self.l4_len
            && self.count < MAX_SEGMENTS
            && packet_len + c.payload <= limit
            && self.sequence_fits(p, c)
            && headers_match(self.first(), p, c)
    }

    /// TCP sequence adjacency and, for IPv4 without DF, consecutive IDs.
    fn sequence_fits(&self, p: &[u8], c: &Candidate) -> bool {
        if c.key.proto == PROTO_TCP && ip::be32(p, c.ipv.l3_len + tcp::SEQ) != self.next_seq {
            return false;
        }
        let id = ip::be16(self.first(), v4::ID).wrapping_add(self.count as u16);
        !self.check_id || ip::be16(p, v4::ID) == id
    }

    fn append(&mut self, p: &[u8], c: &Candidate) {
        let start = c.ipv.l3_len + c.l4_len;
        self.buf.extend_from_slice(&p[start..]);
        self.count += 1;
        self.next_seq = self.next_seq.wrapping_add(c.payload as u32);
        self.psh = c.psh;
        // A short segment can only be the last.
        self.short_tail = c.payload < self.gso_size;
    }

    /// PSH, a short segment or the segment cap ends the run.
    fn closed(&self) -> bool {
        self.psh || self.short_tail || self.count >= MAX_SEGMENTS
    }

    /// Turns the run into a super-packet: IP lengths and header checksum, PSH when the last
    /// segment had it, the pseudo-header sum in the L4 checksum field (as the kernel's own
    /// CHECKSUM_PARTIAL packets carry it) and the virtio header in front.
    fn finish(&mut self) {
        let (l3, l4, v6) = (self.l3_len, self.l4_len, self.key.v6);
        let proto = self.key.proto;
        let p = &mut self.buf[VNET_HDR_LEN..];
        let n = p.len();
        let l4_total = n - l3;
        if v6 {
            ip::put16(p, v6::PAYLOAD_LEN, len16(l4_total));
        } else {
            ip::put16(p, v4::TOTAL_LEN, len16(n));
            let c = csum::ipv4_header_checksum(&p[..l3]);
            ip::put16(p, v4::CSUM, c);
        }
        let (field, csum_offset, gso_type) = if proto == PROTO_TCP {
            if self.psh {
                p[l3 + tcp::FLAGS] |= tcp::PSH;
            }
            let gso_type = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
            (l3 + tcp::CSUM, TCP_CSUM_OFFSET, gso_type)
        } else {
            ip::put16(p, l3 + udp::LEN, len16(l4_total));
            (l3 + udp::CSUM, UDP_CSUM_OFFSET, GSO_UDP_L4)
        };
        let addrs = if v6 { v6::ADDRS } else { v4::ADDRS };
        let pseudo = csum::pseudo(&p[addrs], proto, l4_total as u32);
        ip::put16(p, field, pseudo);
        let hdr = VnetHdr {
            flags: NEEDS_CSUM,
            gso_type,
            hdr_len: len16(l3 + l4),
            gso_size: len16(self.gso_size),
            csum_start: len16(l3),
            csum_offset,
        };
        let mut head = [0u8; VNET_HDR_LEN];
        hdr.write(&mut head);
        self.buf[..VNET_HDR_LEN].copy_from_slice(&head);
    }
}

/// Whether the headers segmentation would copy from the first packet equal `p`'s (so splitting
/// the super-packet gives back the packets): IPv4 TOS, DF/fragment field and TTL, or IPv6
/// version/traffic class/flow label and hop limit; TCP ACK number, data offset, window, urgent
/// pointer and option bytes. Addresses, protocol and ports are equal by flow key; `p`'s L4
/// header length equals the run's (checked first).
fn headers_match(first: &[u8], p: &[u8], c: &Candidate) -> bool {
    let same = |r: std::ops::Range<usize>| first.get(r.clone()) == p.get(r);
    let ip_same = if c.ipv.v6 {
        same(0..4) && same(v6::HOP_LIMIT..v6::HOP_LIMIT + 1)
    } else {
        same(v4::TOS..v4::TOS + 1) && same(v4::FRAG..v4::FRAG + 2) && same(v4::TTL..v4::TTL + 1)
    };
    if !ip_same || c.key.proto != PROTO_TCP {
        return ip_same;
    }
    let t = c.ipv.l3_len;
    same(t + tcp::ACK..t + tcp::ACK + 4)
        && same(t + tcp::OFFSET..t + tcp::OFFSET + 1)
        && same(t + tcp::WINDOW..t + tcp::WINDOW + 2)
        && same(t + tcp::URGENT..t + tcp::URGENT + 2)
        && same(t + TCP_MIN..t + c.l4_len)
}

/// A packet that may join a run, or what it shares with runs it must not overtake.
fn classify(p: &[u8], udp: bool) -> Result<Candidate, Option<Related>> {
    candidate(p, udp).ok_or_else(|| related(p))
}

/// A TCP segment (or UDP datagram when `udp`) that can be merged: sound IP header without IPv4
/// options or fragments or IPv6 extension headers, TCP flags exactly ACK or ACK|PSH with the
/// reserved bits clear, UDP length consistent and checksum present, a payload, and valid IPv4
/// header and L4 checksums (a merged packet gets its checksum recomputed, which would launder a
/// corrupt segment).
fn candidate(p: &[u8], udp: bool) -> Option<Candidate> {
    let ipv = ip::parse(p).ok()?;
    if ipv.options || ipv.fragment {
        return None;
    }
    let l3 = ipv.l3_len;
    let (l4_len, psh) = match ipv.proto {
        PROTO_TCP => {
            let l4 = ip::tcp_header_len(p, l3).ok()?;
            let flags = p[l3 + tcp::FLAGS];
            let reserved = p[l3 + tcp::OFFSET] & 0x0f;
            if reserved != 0 || (flags != tcp::ACK_FLAG && flags != tcp::ACK_FLAG | tcp::PSH) {
                return None;
            }
            (l4, flags & tcp::PSH != 0)
        }
        PROTO_UDP if udp => {
            if p.len() < l3 + UDP_LEN
                || usize::from(ip::be16(p, l3 + udp::LEN)) != p.len() - l3
                || ip::be16(p, l3 + udp::CSUM) == 0
            {
                return None;
            }
            (UDP_LEN, false)
        }
        _ => return None,
    };
    let payload = p.len() - l3 - l4_len;
    if payload == 0 || (!ipv.v6 && csum::sum(&p[..l3]) != 0xffff) {
        return None;
    }
    let pseudo = csum::pseudo(&p[ipv.addrs()], ipv.proto, (p.len() - l3) as u32);
    if csum::add(pseudo, csum::sum(&p[l3..])) != 0xffff {
        return None;
    }
    let mut key = FlowKey {
        v6: ipv.v6,
        proto: ipv.proto,
        ..FlowKey::default()
    };
    let addrs = ipv.addrs();
    key.addrs[..addrs.len()].copy_from_slice(&p[addrs]);
    key.ports.copy_from_slice(&p[l3..l3 + 4]);
    Some(Candidate {
        key,
        ipv,
        l4_len,
        payload,
        psh,
    })
}

/// Family, addresses, protocol and (when present) ports of any packet, read leniently: even a
/// packet whose lengths are off must not overtake a pending run of its flow. `None` for bytes
/// too short to be IP.
fn related(p: &[u8]) -> Option<Related> {
    let version = p.first()? >> 4;
    let (v6, l3, proto, addrs, fragment) = match version {
        4 if p.len() >= ip::V4_MIN => {
            let frag = ip::be16(p, v4::FRAG) & v4::MF_OFFSET != 0;
            (
                false,
                usize::from(p[0] & 0x0f) * 4,
                p[v4::PROTO],
                v4::ADDRS,
                frag,
            )
        }
        6 if p.len() >= ip::V6_LEN => (true, ip::V6_LEN, p[v6::NEXT], v6::ADDRS, false),
        _ => return None,
    };
    let mut key = FlowKey {
        v6,
        proto,
        ..FlowKey::default()
    };
    key.addrs[..addrs.len()].copy_from_slice(&p[addrs]);
    let transport = proto == PROTO_TCP || proto == PROTO_UDP;
    let ports = p
        .get(l3..l3 + 4)
        .filter(|_| transport && !fragment && l3 >= ip::V4_MIN);
    if let Some(ports) = ports {
        key.ports.copy_from_slice(ports);
    }
    Some(Related {
        key,
        has_ports: ports.is_some(),
        // An IPv6 extension header hides the transport: keep order with every run to that host.
        any_proto: v6 && !transport && proto != PROTO_ICMPV6,
    })
}
