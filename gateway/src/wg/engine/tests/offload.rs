//! The offload path between two engines: TUN reads with a virtio-net header (a TSO super-packet
//! is split by the core's codec into MTU-size packets, each sealed separately), GSO-style UDP
//! batches, and on the receiving side TCP coalescing back into super-packets for one TUN write
//! each. Byte-exact: re-splitting what the receiver wrote gives exactly the sender's segments.

use pqgate_core::offload::vnet::{GSO_TCPV4, NEEDS_CSUM};
use pqgate_core::offload::{VNET_HDR_LEN, VnetHdr, segment};

use super::*;

const SEGMENT: u16 = 1000;

/// A TSO read as a TUN with `IFF_VNET_HDR` hands it out: header, then one IPv4 TCP packet with
/// `segments * SEGMENT` payload bytes.
fn tso_read(src: [u8; 4], dst: [u8; 4], segments: usize, seed: u8) -> Vec<u8> {
    let body = payload(segments * usize::from(SEGMENT), seed);
    let hdr = VnetHdr {
        flags: NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 40,
        gso_size: SEGMENT,
        csum_start: 20,
        csum_offset: 16,
    };
    let mut read = [0u8; VNET_HDR_LEN].to_vec();
    hdr.write((&mut read[..]).try_into().expect("header room"));
    read.extend(ipv4_header(src, dst, 6, 40 + body.len(), 0x1234));
    read.extend_from_slice(&40_000u16.to_be_bytes());
    read.extend_from_slice(&5201u16.to_be_bytes());
    read.extend_from_slice(&7_000_000u32.to_be_bytes()); // sequence
    read.extend_from_slice(&1u32.to_be_bytes()); // acknowledgement
    read.extend_from_slice(&[0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]); // ACK, no checksum yet
    read.extend_from_slice(&body);
    read
}

/// What the codec makes of one TUN read or write: its IP packets.
fn split(read: &[u8]) -> Vec<Vec<u8>> {
    let (hdr, packet) = VnetHdr::parse(read).expect("virtio-net header");
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    segment(&hdr, packet, &mut scratch, &mut |p| out.push(p.to_vec())).expect("valid");
    out
}

/// A single packet behind an all-zero header (`GSO_NONE`, nothing to finish).
fn plain(packet: &[u8]) -> Vec<u8> {
    let mut read = vec![0u8; VNET_HDR_LEN];
    read.extend_from_slice(packet);
    read
}

/// Sends a super-packet of `segments` from one node's TUN and returns the other's writes
/// until they hold as many segments.
fn carry(from: &Node, to: &Node, read: &[u8], segments: usize) -> Vec<Vec<u8>> {
    from.tun.inject(read);
    let mut writes = Vec::new();
    let mut got = 0;
    while got < segments {
        let w = to.written(1).remove(0);
        got += split(&w).len();
        writes.push(w);
    }
    assert_eq!(got, segments, "exactly the segments sent");
    writes
}

#[test]
fn super_packets_are_split_sealed_and_coalesced_byte_exact() {
    let net = MemNet::default();
    let (a, b) = pair(&net, true);
    // Handshake with a plain (GSO_NONE) packet, passed through unchanged behind its header.
    let first = plain(&udp_packet(A_IP, B_IP, b"first"));
    a.tun.inject(&first);
    assert_eq!(b.written(1), [first]);

    let mut writes_to_b = 0;
    for (from, to, src, dst, seed) in [(&a, &b, A_IP, B_IP, 5), (&b, &a, B_IP, A_IP, 6)] {
        let read = tso_read(src, dst, 20, seed);
        let sent = split(&read);
        assert_eq!(sent.len(), 20);
        assert!(sent.iter().all(|p| p.len() == 40 + usize::from(SEGMENT)));
        let writes = carry(from, to, &read, 20);
        assert!(
            writes.len() < sent.len(),
            "coalesced: {} writes for 20 segments",
            writes.len()
        );
        let (hdr, _) = VnetHdr::parse(&writes[0]).expect("header");
        assert_eq!((hdr.gso_type, hdr.gso_size), (GSO_TCPV4, SEGMENT));
        let resplit: Vec<Vec<u8>> = writes.iter().flat_map(|w| split(w)).collect();
        assert_eq!(
            resplit, sent,
            "the receiver's super-packets re-split byte-exact"
        );
        if std::ptr::eq(to, &b) {
            writes_to_b = writes.len();
        }
    }
    assert_eq!(
        a.peer().counts.tx_packets,
        20,
        "one sealed datagram per segment"
    );
    assert_eq!(b.peer().counts.rx_packets, 21);
    assert_eq!(a.peer().counts.rx_packets, 20);
    // TUN writes are counted per write: one per super-packet, not per segment.
    let writes = 1 + writes_to_b as u64;
    wait_until("B's TUN writes counted", || {
        get(&b.engine.counters.rx_packets) == writes
    });
}

#[test]
fn malformed_virtio_reads_are_counted_and_dropped() {
    let net = MemNet::default();
    let (a, b) = pair(&net, true);
    a.tun.inject(&[0u8; 4]); // shorter than the header
    let mut bad = tso_read(A_IP, B_IP, 3, 7);
    bad[1] = 0x42; // unknown GSO type
    a.tun.inject(&bad);
    let mut no_size = tso_read(A_IP, B_IP, 3, 7);
    no_size[4..6].copy_from_slice(&[0, 0]); // gso_size 0
    a.tun.inject(&no_size);
    wait_until("three malformed reads", || {
        get(&a.engine.counters.tun_malformed) == 3
    });
    assert_eq!(b.tun.written(QUIET), None);
    // The queue still works after them.
    let ok = plain(&udp_packet(A_IP, B_IP, b"after"));
    a.tun.inject(&ok);
    assert_eq!(b.written(1), [ok]);
}
