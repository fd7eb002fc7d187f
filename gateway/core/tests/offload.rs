//! The TUN offload codec against packets built independently here: TSO/USO splits compared
//! byte for byte with separately built segments, checksums checked by a word-by-word RFC 1071
//! verifier written for this file, coalesce -> segment round trips, the merge rules, garbage
//! refused without a half-built packet, a seeded mutation loop, and no allocation in steady state.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pqgate_core::offload::vnet::{
    DATA_VALID, GSO_ECN, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4, NEEDS_CSUM,
};
use pqgate_core::offload::{Coalescer, OffloadError, Plan, VNET_HDR_LEN, VnetHdr, segment};

// ---- allocation counter (per thread, so parallel tests do not disturb each other) ----

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCS.with(Cell::get)
}

// ---- independent checksum reference (RFC 1071, big-endian words, no tricks) ----

fn ref_sum(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|w| (u32::from(w[0]) << 8) | w.get(1).map_or(0, |&b| u32::from(b)))
        .sum()
}

fn ref_fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn ref_pseudo(addrs: &[u8], proto: u8, len: usize) -> u32 {
    ref_sum(addrs) + u32::from(proto) + (len as u32 >> 16) + (len as u32 & 0xffff)
}

/// Asserts lengths and both checksums of one IP packet.
fn verify(p: &[u8]) {
    let v6 = p[0] >> 4 == 6;
    let (l3, proto, addrs) = if v6 {
        assert_eq!(usize::from(be16(p, 4)) + 40, p.len(), "IPv6 payload length");
        (40, p[6], &p[8..40])
    } else {
        assert_eq!(usize::from(be16(p, 2)), p.len(), "IPv4 total length");
        assert_eq!(ref_fold(ref_sum(&p[..20])), 0xffff, "IPv4 header checksum");
        (20, p[9], &p[12..20])
    };
    let l4 = &p[l3..];
    if proto == 17 {
        assert_eq!(usize::from(be16(l4, 4)), l4.len(), "UDP length");
        assert_ne!(be16(l4, 6), 0, "UDP checksum present");
    }
    let total = ref_pseudo(addrs, proto, l4.len()) + ref_sum(l4);
    assert_eq!(ref_fold(total), 0xffff, "L4 checksum");
}

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

// ---- packet builders ----

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const CWR: u8 = 0x80;

#[derive(Clone)]
struct Flow {
    v6: bool,
    src: Vec<u8>,
    dst: Vec<u8>,
    sport: u16,
    dport: u16,
    ttl: u8,
    tos: u8,
    df: bool,
}

fn v4_flow(sport: u16) -> Flow {
    Flow {
        v6: false,
        src: vec![10, 0, 0, 1],
        dst: vec![10, 0, 0, 2],
        sport,
        dport: 5201,
        ttl: 64,
        tos: 0,
        df: true,
    }
}

fn v6_flow(sport: u16) -> Flow {
    let mut src = vec![0u8; 16];
    src[0] = 0xfd;
    src[15] = 1;
    let mut dst = src.clone();
    dst[15] = 2;
    Flow {
        v6: true,
        src,
        dst,
        ..v4_flow(sport)
    }
}

#[derive(Clone)]
struct Seg {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: Vec<u8>,
    id: u16,
}

fn seg(seq: u32) -> Seg {
    Seg {
        seq,
        ack: 0x1000_0000,
        flags: ACK,
        window: 501,
        options: Vec::new(),
        id: 100,
    }
}

/// A change to one segment or its flow.
type Edit = dyn Fn(&mut Seg, &mut Flow);

/// Timestamp option (NOP NOP TS), 12 bytes.
fn ts_option(val: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&7u32.to_be_bytes());
    o
}

fn payload(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

/// An IP packet around `l4` (whose checksum is already set).
fn ip_wrap(f: &Flow, proto: u8, id: u16, l4: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    if f.v6 {
        p.extend_from_slice(&[0x60 | (f.tos >> 4), f.tos << 4, 0x12, 0x34]);
        p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        p.extend_from_slice(&[proto, f.ttl]);
        p.extend_from_slice(&f.src);
        p.extend_from_slice(&f.dst);
    } else {
        let total = (20 + l4.len()) as u16;
        p.extend_from_slice(&[0x45, f.tos]);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&(if f.df { 0x4000u16 } else { 0 }).to_be_bytes());
        p.extend_from_slice(&[f.ttl, proto, 0, 0]);
        p.extend_from_slice(&f.src);
        p.extend_from_slice(&f.dst);
        let c = !ref_fold(ref_sum(&p));
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(l4);
    p
}

fn addrs(f: &Flow) -> Vec<u8> {
    [f.src.clone(), f.dst.clone()].concat()
}

/// A TCP packet with valid checksums.
fn tcp_packet(f: &Flow, s: &Seg, data: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&f.sport.to_be_bytes());
    l4.extend_from_slice(&f.dport.to_be_bytes());
    l4.extend_from_slice(&s.seq.to_be_bytes());
    l4.extend_from_slice(&s.ack.to_be_bytes());
    let words = ((20 + s.options.len()) / 4) as u8;
    l4.extend_from_slice(&[words << 4, s.flags]);
    l4.extend_from_slice(&s.window.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 0]);
    l4.extend_from_slice(&s.options);
    l4.extend_from_slice(data);
    let c = !ref_fold(ref_pseudo(&addrs(f), 6, l4.len()) + ref_sum(&l4));
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    ip_wrap(f, 6, s.id, &l4)
}

/// A UDP packet with a valid checksum.
fn udp_packet(f: &Flow, id: u16, data: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&f.sport.to_be_bytes());
    l4.extend_from_slice(&f.dport.to_be_bytes());
    l4.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(data);
    let mut c = !ref_fold(ref_pseudo(&addrs(f), 17, l4.len()) + ref_sum(&l4));
    if c == 0 {
        c = 0xffff;
    }
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    ip_wrap(f, 17, id, &l4)
}

/// Replaces the L4 checksum with the pseudo-header partial sum, as the kernel leaves a
/// CHECKSUM_PARTIAL packet.
fn make_partial(p: &mut [u8], field_from_l4: usize) {
    let v6 = p[0] >> 4 == 6;
    let (l3, proto) = if v6 { (40, p[6]) } else { (20, p[9]) };
    let a = if v6 {
        p[8..40].to_vec()
    } else {
        p[12..20].to_vec()
    };
    let partial = ref_fold(ref_pseudo(&a, proto, p.len() - l3));
    p[l3 + field_from_l4..l3 + field_from_l4 + 2].copy_from_slice(&partial.to_be_bytes());
}

fn gso_hdr(gso_type: u8, l3: u16, l4: u16, gso_size: u16, csum_offset: u16) -> VnetHdr {
    VnetHdr {
        flags: NEEDS_CSUM,
        gso_type,
        hdr_len: l3 + l4,
        gso_size,
        csum_start: l3,
        csum_offset,
    }
}

fn run_segment(hdr: &VnetHdr, p: &[u8]) -> Result<Vec<Vec<u8>>, OffloadError> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let n = segment(hdr, p, &mut scratch, &mut |s| out.push(s.to_vec()));
    match n {
        Ok(n) => {
            assert_eq!(n, out.len(), "returned count");
            Ok(out)
        }
        Err(e) => {
            assert!(out.is_empty(), "emit called before the error {e}");
            Err(e)
        }
    }
}

fn run_coalesce(c: &mut Coalescer, packets: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut take = |b: &[u8]| {
        let (h, p) = VnetHdr::parse(b).expect("coalescer output starts with a header");
        out.push((h, p.to_vec()));
    };
    for p in packets {
        c.push(p, &mut take);
    }
    c.flush(&mut take);
    out
}

/// Named so that `cargo test -p pqgate-core offload` selects these tests.
mod offload {
    use super::*;

    // ---- segmentation ----

    /// A TSO read: `n` full segments of `mss` and one of `tail` bytes, flags ACK|PSH|FIN|CWR, a
    /// sequence number and IPv4 ID about to wrap; every segment must equal an independently built
    /// packet.
    fn check_tso(f: &Flow, mss: usize, full: usize, tail: usize) {
        let total = mss * full + tail;
        let data = payload(total, 3);
        let first = Seg {
            seq: 0xffff_f000,
            flags: ACK | PSH | FIN | CWR,
            options: ts_option(99),
            id: 0xfffe,
            ..seg(0)
        };
        let mut sp = tcp_packet(f, &first, &data);
        let l3: u16 = if f.v6 { 40 } else { 20 };
        make_partial(&mut sp, 16);
        let gso = if f.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        let segs = run_segment(&gso_hdr(gso, l3, 32, mss as u16, 16), &sp).expect("valid TSO read");
        let count = full + usize::from(tail > 0);
        assert_eq!(segs.len(), count);
        for (i, got) in segs.iter().enumerate() {
            let chunk = &data[i * mss..(i * mss + mss).min(total)];
            let mut flags = ACK;
            if i == 0 {
                flags |= CWR;
            }
            if i + 1 == count {
                flags |= PSH | FIN;
            }
            let s = Seg {
                seq: first.seq.wrapping_add((i * mss) as u32),
                flags,
                id: first.id.wrapping_add(i as u16),
                ..first.clone()
            };
            verify(got);
            assert_eq!(got, &tcp_packet(f, &s, chunk), "segment {i}");
        }
    }

    #[test]
    fn tso_v4_segments_match_independent_packets() {
        check_tso(&v4_flow(40000), 1000, 3, 500);
        check_tso(&v4_flow(40000), 1448, 44, 0);
        check_tso(&v4_flow(40000), 999, 1, 1);
    }

    #[test]
    fn tso_v6_segments_match_independent_packets() {
        check_tso(&v6_flow(40000), 1220, 5, 77);
        check_tso(&v6_flow(40000), 1000, 1, 0);
    }

    #[test]
    fn uso_segments_match_independent_packets() {
        for f in [v4_flow(5000), v6_flow(5000)] {
            let mss = 1200;
            let data = payload(mss * 4 + 300, 9);
            let mut sp = udp_packet(&f, 7, &data);
            make_partial(&mut sp, 6);
            let l3: u16 = if f.v6 { 40 } else { 20 };
            let segs = run_segment(&gso_hdr(GSO_UDP_L4, l3, 8, mss as u16, 6), &sp).expect("USO");
            assert_eq!(segs.len(), 5);
            for (i, got) in segs.iter().enumerate() {
                verify(got);
                let chunk = &data[i * mss..(i * mss + mss).min(data.len())];
                assert_eq!(got, &udp_packet(&f, 7 + i as u16, chunk), "datagram {i}");
            }
        }
    }

    #[test]
    fn needs_csum_is_completed_and_plain_passes_through() {
        let f = v4_flow(1234);
        let want = tcp_packet(&f, &seg(5), &payload(333, 1));
        let mut partial = want.clone();
        make_partial(&mut partial, 16);
        assert_ne!(partial, want);
        let hdr = VnetHdr {
            flags: NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        assert_eq!(
            run_segment(&hdr, &partial).expect("partial TCP"),
            vec![want]
        );

        let f6 = v6_flow(53);
        let want = udp_packet(&f6, 0, &payload(77, 2));
        let mut partial = want.clone();
        make_partial(&mut partial, 6);
        let hdr = VnetHdr {
            flags: NEEDS_CSUM,
            csum_start: 40,
            csum_offset: 6,
            ..VnetHdr::default()
        };
        assert_eq!(
            run_segment(&hdr, &partial).expect("partial UDP"),
            vec![want]
        );

        // Without NEEDS_CSUM a read is handed on untouched, even one that is not IP.
        for flags in [0, DATA_VALID] {
            let hdr = VnetHdr {
                flags,
                ..VnetHdr::default()
            };
            assert_eq!(
                run_segment(&hdr, b"\x99junk").expect("passthrough"),
                vec![b"\x99junk"]
            );
        }
    }

    #[test]
    fn garbage_is_refused_without_emitting() {
        let f = v4_flow(1);
        let mut good = tcp_packet(&f, &seg(1), &payload(3000, 0));
        make_partial(&mut good, 16);
        let hdr = gso_hdr(GSO_TCPV4, 20, 20, 1000, 16);
        assert_eq!(run_segment(&hdr, &good).expect("baseline").len(), 3);

        let bad = |h: VnetHdr, p: &[u8]| run_segment(&h, p).expect_err("garbage accepted");
        assert!(matches!(
            VnetHdr::parse(&[0; 5]),
            Err(OffloadError::Truncated { .. })
        ));
        assert!(matches!(
            bad(hdr, &good[..30]),
            OffloadError::IpLength { .. }
        ));
        assert!(matches!(
            bad(hdr, &good[..10]),
            OffloadError::Truncated { .. }
        ));
        assert!(matches!(bad(hdr, &[]), OffloadError::Truncated { .. }));
        assert_eq!(
            bad(VnetHdr { gso_size: 0, ..hdr }, &good),
            OffloadError::ZeroGsoSize
        );
        assert!(matches!(
            bad(
                VnetHdr {
                    csum_start: 3000,
                    ..hdr
                },
                &good
            ),
            OffloadError::Checksum { .. }
        ));
        assert!(matches!(
            bad(
                VnetHdr {
                    csum_offset: 6,
                    ..hdr
                },
                &good
            ),
            OffloadError::Checksum { .. }
        ));
        assert!(matches!(
            bad(
                VnetHdr {
                    hdr_len: 4000,
                    ..hdr
                },
                &good
            ),
            OffloadError::HdrLen { .. }
        ));
        assert_eq!(
            bad(
                VnetHdr {
                    gso_type: GSO_TCPV4 | GSO_ECN,
                    ..hdr
                },
                &good
            ),
            OffloadError::Ecn
        );
        assert_eq!(
            bad(
                VnetHdr {
                    gso_type: GSO_UDP,
                    ..hdr
                },
                &good
            ),
            OffloadError::UnsupportedGsoType(GSO_UDP)
        );
        assert_eq!(
            bad(VnetHdr { gso_type: 9, ..hdr }, &good),
            OffloadError::UnsupportedGsoType(9)
        );
        assert!(matches!(
            bad(
                VnetHdr {
                    gso_type: GSO_TCPV6,
                    ..hdr
                },
                &good
            ),
            OffloadError::IpVersion { .. }
        ));
        assert!(matches!(
            bad(
                VnetHdr {
                    gso_type: GSO_UDP_L4,
                    ..hdr
                },
                &good
            ),
            OffloadError::Protocol { .. }
        ));
        // A partial checksum field past the end of a single packet.
        let single = VnetHdr {
            flags: NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 4000,
            ..VnetHdr::default()
        };
        assert!(matches!(bad(single, &good), OffloadError::Checksum { .. }));
        let single = VnetHdr {
            csum_start: 10,
            csum_offset: 0,
            ..single
        };
        assert!(matches!(bad(single, &good), OffloadError::Checksum { .. }));

        // hdr_len is only a hint: smaller than the headers changes nothing.
        let hint = run_segment(&VnetHdr { hdr_len: 0, ..hdr }, &good).expect("hdr_len hint");
        assert_eq!(hint, run_segment(&hdr, &good).expect("baseline"));

        // IPv4 options on a GSO packet.
        let mut opts = good[..20].to_vec();
        opts[0] = 0x46;
        opts[2..4].copy_from_slice(&((good.len() + 4) as u16).to_be_bytes());
        opts.extend_from_slice(&[1, 1, 1, 0]);
        opts.extend_from_slice(&good[20..]);
        assert_eq!(
            bad(
                VnetHdr {
                    csum_start: 24,
                    ..hdr
                },
                &opts
            ),
            OffloadError::Ipv4Options
        );

        // A fragment, a lying total length, a short TCP data offset, no payload.
        let mut frag = good.clone();
        frag[6] |= 0x20;
        assert_eq!(bad(hdr, &frag), OffloadError::Fragment);
        let mut lie = good.clone();
        lie[2..4].copy_from_slice(&100u16.to_be_bytes());
        assert!(matches!(bad(hdr, &lie), OffloadError::IpLength { .. }));
        let mut thl = good.clone();
        thl[32] = 0x40;
        assert_eq!(bad(hdr, &thl), OffloadError::TcpHeaderLength(16));
        let empty = tcp_packet(&f, &seg(1), &[]);
        assert_eq!(bad(hdr, &empty), OffloadError::EmptyPayload);

        // More than 64 KiB.
        let mut huge = vec![0x45u8; 70_000];
        huge[2..4].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(bad(hdr, &huge), OffloadError::TooLong(70_000));
        let plain = VnetHdr::default();
        assert_eq!(bad(plain, &huge), OffloadError::TooLong(70_000));

        // UDP length that disagrees with the IP length.
        let mut u = udp_packet(&f, 1, &payload(3000, 0));
        u[24..26].copy_from_slice(&8u16.to_be_bytes());
        let uh = gso_hdr(GSO_UDP_L4, 20, 8, 1000, 6);
        assert!(matches!(bad(uh, &u), OffloadError::UdpLength { .. }));
    }

    #[test]
    fn plan_writes_behind_caller_headroom() {
        let f = v6_flow(77);
        let data = payload(2500, 4);
        let mut sp = tcp_packet(&f, &seg(9), &data);
        make_partial(&mut sp, 16);
        let hdr = gso_hdr(GSO_TCPV6, 40, 20, 1000, 16);
        let plan = Plan::new(&hdr, &sp).expect("valid read");
        assert_eq!(plan.count(), 3);
        assert_eq!(plan.max_segment_len(), 1060);
        assert_eq!(plan.segment_len(2), 560);
        assert_eq!(plan.segment_len(3), 0);
        let want = run_segment(&hdr, &sp).expect("segments");
        let mut buf = [0u8; 16 + 1060];
        for (i, w) in want.iter().enumerate() {
            let n = plan.write(i, &mut buf[16..]).expect("fits");
            assert_eq!(&buf[16..16 + n], &w[..]);
        }
        assert_eq!(
            plan.write(0, &mut buf[..100]),
            Err(OffloadError::BufferTooSmall {
                need: 1060,
                have: 100
            })
        );
        assert_eq!(
            plan.write(3, &mut buf),
            Err(OffloadError::SegmentIndex { index: 3, count: 3 })
        );
    }

    // ---- coalescing ----

    /// A run of segments of one flow: `n` segments of `mss`, the last `tail` bytes (0: full),
    /// consecutive IDs and sequence numbers, the last with `last_flags`.
    fn run_of(
        f: &Flow,
        seq0: u32,
        n: usize,
        mss: usize,
        tail: usize,
        last_flags: u8,
    ) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let len = if i + 1 == n && tail > 0 { tail } else { mss };
                let s = Seg {
                    seq: seq0.wrapping_add((i * mss) as u32),
                    flags: if i + 1 == n { last_flags } else { ACK },
                    id: 500u16.wrapping_add(i as u16),
                    options: ts_option(1),
                    ..seg(0)
                };
                tcp_packet(f, &s, &payload(len, i as u8))
            })
            .collect()
    }

    fn resegment(h: &VnetHdr, p: &[u8]) -> Vec<Vec<u8>> {
        if !h.is_gso() {
            return vec![p.to_vec()];
        }
        run_segment(h, p).expect("coalescer output must segment")
    }

    #[test]
    fn coalesce_then_segment_gives_back_the_packets() {
        for f in [v4_flow(40001), v6_flow(40001)] {
            let pkts = run_of(&f, 0xffff_fa00, 10, 1200, 700, ACK | PSH);
            let out = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
            assert_eq!(out.len(), 1, "one super-packet");
            let (h, sp) = &out[0];
            let (l3, gso) = if f.v6 {
                (40, GSO_TCPV6)
            } else {
                (20, GSO_TCPV4)
            };
            assert_eq!(*h, gso_hdr(gso, l3, 32, 1200, 16));
            assert_eq!(sp.len(), usize::from(l3) + 32 + 9 * 1200 + 700);
            assert_eq!(resegment(h, sp), pkts);
        }
        // A run of one leaves alone, unchanged, with an all-zero header.
        let one = run_of(&v4_flow(1), 0, 1, 1000, 0, ACK);
        assert_eq!(
            run_coalesce(&mut Coalescer::new(65_535, false), &one),
            vec![(VnetHdr::default(), one[0].clone())]
        );
    }

    #[test]
    fn size_limits_split_runs() {
        let f = v4_flow(9);
        let pkts = run_of(&f, 0, 60, 1448, 0, ACK);
        let out = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
        assert!(out.len() >= 2);
        let mut back = Vec::new();
        for (h, p) in &out {
            assert!(p.len() <= 65_535);
            back.extend(resegment(h, p));
        }
        assert_eq!(back, pkts);
        // A caller limit of 10,000 bytes: at most 6 segments of 1,500 bytes each per write.
        let out = run_coalesce(&mut Coalescer::new(10_000, false), &pkts[..12]);
        assert!(out.iter().all(|(_, p)| p.len() <= 10_000));
        let back: Vec<_> = out.iter().flat_map(|(h, p)| resegment(h, p)).collect();
        assert_eq!(back, pkts[..12]);
    }

    #[test]
    fn bad_checksum_is_not_merged() {
        let f = v4_flow(7);
        let mut pkts = run_of(&f, 1, 3, 1000, 0, ACK);
        let last = pkts[1].len() - 1;
        pkts[1][last] ^= 0x40;
        let out = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
        let plain: Vec<_> = pkts
            .iter()
            .map(|p| (VnetHdr::default(), p.clone()))
            .collect();
        assert_eq!(out, plain, "each leaves alone, in order, unchanged");
    }

    #[test]
    fn interleaved_flows_keep_per_flow_order() {
        let fa = v4_flow(1000);
        let fb = v6_flow(2000);
        let a = run_of(&fa, 10, 6, 1000, 0, ACK);
        let b = run_of(&fb, 20, 6, 900, 0, ACK);
        let icmp = ip_wrap(&fa, 1, 9, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
        let mut mixed = Vec::new();
        for i in 0..6 {
            mixed.push(a[i].clone());
            mixed.push(b[i].clone());
            if i == 2 {
                mixed.push(icmp.clone());
            }
        }
        let out = run_coalesce(&mut Coalescer::new(65_535, false), &mixed);
        assert_eq!(out.len(), 3, "two super-packets and the ICMP packet");
        let back: Vec<Vec<u8>> = out.iter().flat_map(|(h, p)| resegment(h, p)).collect();
        let of = |flow: &[Vec<u8>]| {
            back.iter()
                .filter(|p| flow.contains(p))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(of(&a), a);
        assert_eq!(of(&b), b);
        assert!(back.contains(&icmp));

        // Nine flows, eight slots: the oldest run is flushed early, nothing is lost or reordered.
        let flows: Vec<Vec<Vec<u8>>> = (0..9)
            .map(|k| run_of(&v4_flow(3000 + k), 0, 3, 800, 0, ACK))
            .collect();
        let mixed: Vec<Vec<u8>> = (0..3)
            .flat_map(|i| flows.iter().map(move |fl| fl[i].clone()))
            .collect();
        let out = run_coalesce(&mut Coalescer::new(65_535, false), &mixed);
        let back: Vec<Vec<u8>> = out.iter().flat_map(|(h, p)| resegment(h, p)).collect();
        assert_eq!(back.len(), mixed.len());
        for fl in &flows {
            assert_eq!(
                &back
                    .iter()
                    .filter(|p| fl.contains(p))
                    .cloned()
                    .collect::<Vec<_>>(),
                fl
            );
        }
    }

    #[test]
    fn psh_ends_a_run() {
        let f = v4_flow(5);
        let mut pkts = run_of(&f, 0, 2, 1000, 0, ACK | PSH);
        pkts.extend(run_of(&f, 2000, 2, 1000, 0, ACK));
        let out = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
        assert_eq!(out.len(), 2);
        assert!(out[0].0.is_gso() && out[1].0.is_gso());
        let sp = &out[0].1;
        assert_eq!(sp[20 + 13], ACK | PSH, "the super-packet carries PSH");
        assert_eq!(resegment(&out[0].0, sp), pkts[..2]);
        assert_eq!(out[1].1[20 + 13], ACK);
        // A run cannot start with PSH: a PSH segment alone, then a new run.
        let pkts = [
            run_of(&f, 0, 1, 1000, 0, ACK | PSH),
            run_of(&f, 1000, 2, 1000, 0, ACK),
        ]
        .concat();
        let out = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], (VnetHdr::default(), pkts[0].clone()));
    }

    #[test]
    fn mismatched_headers_are_not_merged() {
        let f = v4_flow(6);
        let base = run_of(&f, 0, 2, 1000, 0, ACK);
        let alter = |edit: &Edit| {
            let mut s = Seg {
                seq: 1000,
                id: 501,
                options: ts_option(1),
                ..seg(0)
            };
            let mut fl = f.clone();
            edit(&mut s, &mut fl);
            vec![base[0].clone(), tcp_packet(&fl, &s, &payload(1000, 1))]
        };
        assert_eq!(
            run_coalesce(&mut Coalescer::new(65_535, false), &base).len(),
            1,
            "baseline merges"
        );
        let cases: [(&str, &Edit); 8] = [
            ("ack", &|s, _| s.ack += 1),
            ("options", &|s, _| s.options = ts_option(2)),
            ("option length", &|s, _| {
                s.options = [ts_option(1), vec![1, 1, 1, 0]].concat()
            }),
            ("window", &|s, _| s.window += 1),
            ("sequence gap", &|s, _| s.seq += 1),
            ("flags", &|s, _| s.flags = ACK | 0x40),
            ("ttl", &|_, fl| fl.ttl = 63),
            ("tos", &|_, fl| fl.tos = 3),
        ];
        for (name, edit) in cases {
            let pkts = alter(edit);
            let out = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
            let plain: Vec<_> = pkts
                .iter()
                .map(|p| (VnetHdr::default(), p.clone()))
                .collect();
            assert_eq!(out, plain, "{name}");
        }
        // Without DF, IPv4 IDs must be consecutive.
        let nodf = Flow {
            df: false,
            ..f.clone()
        };
        let mut pkts = run_of(&nodf, 0, 2, 1000, 0, ACK);
        assert_eq!(
            run_coalesce(&mut Coalescer::new(65_535, false), &pkts).len(),
            1
        );
        pkts[1] = tcp_packet(
            &nodf,
            &Seg {
                seq: 1000,
                id: 777,
                options: ts_option(1),
                ..seg(0)
            },
            &payload(1000, 1),
        );
        assert_eq!(
            run_coalesce(&mut Coalescer::new(65_535, false), &pkts).len(),
            2
        );
        // A larger segment after a smaller one, and anything after a short one, start anew.
        let pkts = [
            run_of(&f, 0, 2, 1000, 500, ACK),
            run_of(&f, 1500, 1, 1000, 0, ACK),
        ]
        .concat();
        let out = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out.iter()
                .flat_map(|(h, p)| resegment(h, p))
                .collect::<Vec<_>>(),
            pkts
        );
    }

    #[test]
    fn udp_merges_only_when_enabled() {
        for f in [v4_flow(4433), v6_flow(4433)] {
            let mut pkts: Vec<Vec<u8>> = (0..5)
                .map(|i| udp_packet(&f, 40 + i, &payload(1200, i as u8)))
                .collect();
            pkts.push(udp_packet(&f, 45, &payload(100, 9)));
            let off = run_coalesce(&mut Coalescer::new(65_535, false), &pkts);
            assert_eq!(off.len(), 6);
            assert!(off.iter().all(|(h, _)| *h == VnetHdr::default()));
            let on = run_coalesce(&mut Coalescer::new(65_535, true), &pkts);
            assert_eq!(on.len(), 1);
            let l3 = if f.v6 { 40 } else { 20 };
            assert_eq!(on[0].0, gso_hdr(GSO_UDP_L4, l3, 8, 1200, 6));
            assert_eq!(resegment(&on[0].0, &on[0].1), pkts);
        }
        // A zero (absent) IPv4 UDP checksum is not merged: segmentation would add one.
        let f = v4_flow(1);
        let mut pkts: Vec<Vec<u8>> = (0..2)
            .map(|i| udp_packet(&f, i, &payload(500, 0)))
            .collect();
        for p in &mut pkts {
            p[26..28].fill(0);
        }
        assert_eq!(
            run_coalesce(&mut Coalescer::new(65_535, true), &pkts).len(),
            2
        );
    }

    #[test]
    fn no_allocation_in_steady_state() {
        let f = v4_flow(8080);
        let batch = run_of(&f, 0, 40, 1400, 0, ACK);
        let mut c = Coalescer::new(65_535, false);
        let mut scratch = Vec::new();
        let round = |c: &mut Coalescer, scratch: &mut Vec<u8>| {
            let mut n = 0;
            let mut sink = |b: &[u8]| {
                let (h, p) = VnetHdr::parse(b).expect("header");
                n += segment(&h, p, scratch, &mut |_| ()).expect("segments");
            };
            for p in &batch {
                c.push(p, &mut sink);
            }
            c.flush(&mut sink);
            n
        };
        assert_eq!(round(&mut c, &mut scratch), 40, "warm-up");
        let before = allocations();
        for _ in 0..20 {
            assert_eq!(round(&mut c, &mut scratch), 40);
        }
        assert_eq!(allocations() - before, 0, "allocations after warm-up");
    }

    // ---- seeded mutation loop ----

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, p: &mut Vec<u8>) {
        for _ in 0..=rng.below(3) {
            match rng.below(4) {
                0 if !p.is_empty() => {
                    let at = rng.below(p.len().min(80));
                    p[at] ^= 1 << rng.below(8);
                }
                1 if !p.is_empty() => {
                    let at = rng.below(p.len());
                    p[at] = rng.next() as u8;
                }
                2 => p.truncate(rng.below(p.len() + 1)),
                _ => {}
            }
        }
    }

    #[test]
    fn mutated_inputs_never_panic_or_half_emit() {
        let mut rng = Rng(0x5eed_0ff1_0ad5_2026);
        let f4 = v4_flow(1);
        let f6 = v6_flow(2);
        let mut bases = Vec::new();
        for f in [&f4, &f6] {
            let l3: u16 = if f.v6 { 40 } else { 20 };
            let gso = if f.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
            let mut t = tcp_packet(
                f,
                &Seg {
                    options: ts_option(1),
                    ..seg(1)
                },
                &payload(4000, 1),
            );
            make_partial(&mut t, 16);
            bases.push((gso_hdr(gso, l3, 32, 1000, 16), t));
            let mut u = udp_packet(f, 1, &payload(3000, 2));
            make_partial(&mut u, 6);
            bases.push((gso_hdr(GSO_UDP_L4, l3, 8, 1100, 6), u));
        }
        let mut ok = 0;
        for _ in 0..3000 {
            let (mut h, mut p) = bases[rng.below(bases.len())].clone();
            let mut raw = [0u8; VNET_HDR_LEN];
            h.write(&mut raw);
            if rng.below(2) == 0 {
                raw[rng.below(VNET_HDR_LEN)] ^= 1 << rng.below(8);
            }
            if let Ok((parsed, _)) = VnetHdr::parse(&[&raw[..], &[0]].concat()) {
                h = parsed;
            }
            mutate(&mut rng, &mut p);
            if let Ok(segs) = run_segment(&h, &p) {
                ok += 1;
                assert!(segs.iter().all(|s| s.len() <= p.len().max(1)));
            }
        }
        assert!(ok > 100, "mutations should leave some inputs valid ({ok})");

        // The coalescer takes anything; what it emits always segments back, one packet per push.
        let mut c = Coalescer::new(65_535, true);
        let flows = [v4_flow(1), v4_flow(2), v6_flow(3)];
        let mut pushed = 0;
        let mut back = 0;
        for round in 0..300u32 {
            let mut batch = Vec::new();
            for (k, f) in flows.iter().enumerate() {
                for mut p in run_of(f, round.wrapping_mul(7000), 5, 1000, 300, ACK) {
                    if rng.below(10) == 0 {
                        mutate(&mut rng, &mut p);
                    }
                    if p.is_empty() {
                        continue;
                    }
                    batch.push(p);
                }
                if k == 0 {
                    batch.push(udp_packet(f, round as u16, &payload(600, 0)));
                }
            }
            pushed += batch.len();
            for (h, p) in run_coalesce(&mut c, &batch) {
                back += resegment(&h, &p).len();
            }
        }
        assert_eq!(back, pushed);
    }
}
