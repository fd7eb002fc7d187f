//! Hostile and changing networks: the endpoint follows authenticated packets only (a replayed or
//! forged datagram from another address moves nothing; a peer that moves is followed), and
//! garbage of every shape is counted under its reason and dropped without a panic, the engine
//! carrying on afterwards.

use super::*;
use crate::wg::engine::UdpTransport;

fn attacker_addr() -> SocketAddr {
    SocketAddr::from(([203, 0, 113, 5], 6666))
}

#[test]
fn the_endpoint_follows_authenticated_packets_only() {
    let net = MemNet::default();
    let (a, b) = pair(&net, false);
    handshake(&a, &b);
    let tap = net.tap();
    let one = udp_packet(A_IP, B_IP, b"one");
    a.tun.inject(&one);
    assert_eq!(b.written(1), [one]);
    let (_, _, captured) = tap
        .try_iter()
        .find(|(src, to, d)| (*src, *to) == (a_addr(), b_addr()) && d.first() == Some(&4))
        .expect("A's data message on the wire");

    // From another address: the captured message again, and a forged copy.
    let attacker = net.bind(attacker_addr(), false);
    attacker.send_to(&captured, b_addr()).expect("send");
    // A fresh counter (bytes 8..16), so the replay window lets it through to the AEAD check.
    let mut forged = captured.to_vec();
    forged[8..16].copy_from_slice(&1_000_000u64.to_le_bytes());
    attacker.send_to(&forged, b_addr()).expect("send");
    let c = &b.engine.counters;
    wait_until("a replay and a forgery refused", || {
        (get(&c.replay), get(&c.decrypt)) == (1, 1)
    });
    assert_eq!(b.tun.written(QUIET), None, "neither was delivered");
    assert_eq!(
        b.peer().endpoint,
        Some(a_addr()),
        "the endpoint did not move"
    );

    // A moves (NAT rebinding): its next authenticated packet moves B's endpoint for it.
    let moved = SocketAddr::from(([198, 51, 100, 20], 40_000));
    a.udp().rebind(moved);
    let two = udp_packet(A_IP, B_IP, b"two");
    a.tun.inject(&two);
    assert_eq!(b.written(1), [two]);
    assert_eq!(b.peer().endpoint, Some(moved), "the endpoint followed");
    let reply = udp_packet(B_IP, A_IP, b"reply");
    b.tun.inject(&reply);
    assert_eq!(a.written(1), [reply], "B's reply reached A's new address");
    assert!(
        attacker.recv_one(Duration::ZERO).is_none(),
        "nothing went to the attacker"
    );
}

/// Datagrams no engine may accept, each counted under exactly one reason.
fn crafted() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut data = vec![4, 0, 0, 0];
    data.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    data.extend_from_slice(&[0; 24]); // counter and tag
    let mut agile = vec![pqgate_core::agile::MSG_TYPE, 0, 0, 0];
    agile.extend_from_slice(&0xfeed_f00du32.to_le_bytes());
    agile.extend_from_slice(&[0; 32]);
    let mut cookie = vec![3, 0, 0, 0];
    cookie.extend_from_slice(&0x0bad_cafeu32.to_le_bytes());
    cookie.extend_from_slice(&[0; 56]); // nonce and sealed cookie
    let mut init = vec![1, 0, 0, 0];
    init.resize(148, 0x33); // right size, wrong mac1
    let garbage = vec![
        Vec::new(),
        vec![0],
        vec![9; 40],
        vec![4; 10],
        vec![1; 20],
        init,
        vec![pqgate_core::agile::MSG_TYPE; 10],
        vec![0x40; 30], // QUIC's fixed bit, with no QUIC endpoint sharing the port
    ];
    (garbage, vec![data, agile, cookie])
}

/// A deterministic stream of random-looking datagrams, mostly with WireGuard or agile types.
fn fuzz(n: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = (next() % 200) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = d.first_mut() {
                let types = [1, 2, 3, 4, pqgate_core::agile::MSG_TYPE, *first & 0x3f];
                *first = types[(next() % 6) as usize];
            }
            d
        })
        .collect()
}

#[test]
fn garbage_datagrams_are_counted_and_dropped_without_panic() {
    let net = MemNet::default();
    let (a, b) = pair(&net, false);
    let attacker = net.bind(attacker_addr(), false);
    let (garbage, unknown) = crafted();
    for d in garbage.iter().chain(&unknown) {
        attacker.send_to(d, b_addr()).expect("send");
    }
    let c = &b.engine.counters;
    wait_until("the crafted datagrams counted", || {
        get(&c.garbage) + get(&c.unknown_peer) == 11
    });
    assert_eq!((get(&c.garbage), get(&c.unknown_peer)), (8, 3));

    let noise = fuzz(3000);
    for d in &noise {
        attacker.send_to(d, b_addr()).expect("send");
    }
    let drops = || {
        [
            &c.garbage,
            &c.unknown_peer,
            &c.replay,
            &c.decrypt,
            &c.protocol,
            &c.queue_full,
        ]
        .iter()
        .map(|c| get(c))
        .sum::<u64>()
    };
    wait_until("every fuzzed datagram counted as a drop", || {
        drops() == 11 + 3000
    });
    assert_eq!(get(&c.rx_packets), 0, "nothing reached the TUN");
    assert_eq!(get(&c.cookies_sent), 0);
    assert!(
        attacker.recv_one(Duration::ZERO).is_none(),
        "no answer to garbage"
    );
    // The engine is unharmed: a real peer still handshakes and is heard, once the backed-up
    // handshake queue no longer puts it under load (it would be sent a cookie first).
    wait_until("the load to pass", || !b.engine.under_load());
    handshake(&a, &b);
    assert_eq!(drops(), 11 + 3000);
}
