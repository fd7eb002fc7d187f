//! Handshake defences and keys: a flood of valid-mac1 initiations is answered with cookie
//! replies (per source over the rate limit, and from everyone while the handshake queue is
//! backed up), and a real peer still gets through with the cookie's mac2; a pre-shared key
//! applies from the next handshake, which fails while the two sides' keys differ.

use std::sync::Arc;

use gotatun::noise::Tunn;
use gotatun::noise::index_table::IndexTable;
use gotatun::noise::rate_limiter::RateLimiter;
use gotatun::packet::{Packet, WgKind};

use super::*;
use crate::wg::engine::{PeerChange, UdpTransport};

/// Initiations towards `responder` from a static key it does not know, each with a valid mac1.
fn initiations(responder: [u8; 32], n: usize) -> Vec<Vec<u8>> {
    let mut tunn = Tunn::new(
        StaticSecret::from([0x77; 32]),
        PublicKey::from(responder),
        None,
        None,
        IndexTable::from_os_rng(),
        Arc::new(RateLimiter::new(&PublicKey::from([0x55; 32]), 10)),
    );
    (0..n)
        .map(|_| {
            let init = tunn.format_handshake_initiation(true).expect("initiation");
            let packet = Packet::from(WgKind::from(init));
            packet.as_ref().to_vec()
        })
        .collect()
}

#[test]
fn a_handshake_flood_gets_cookie_replies_and_a_real_peer_still_gets_through() {
    let net = MemNet::default();
    let (a, b) = pair(&net, false);
    let c = &b.engine.counters;
    let answered = || get(&c.cookies_sent) + get(&c.unknown_peer);

    // One source over its rate (100 a second): cookies, not Diffie-Hellman, for the rest.
    let attacker = net.bind(SocketAddr::from(([198, 51, 100, 7], 1000)), false);
    for d in initiations(public_of(B_KEY), 300) {
        attacker.send_to(&d, b_addr()).expect("send");
    }
    wait_until("300 initiations answered", || answered() == 300);
    let cookies = get(&c.cookies_sent);
    // At most `limit` pass per one-second window; the flood may straddle one reset.
    assert!(cookies >= 100, "only {cookies} cookie replies");
    let mut replies = 0;
    while let Some((src, d)) = attacker.recv_one(QUIET) {
        assert_eq!(src, b_addr());
        assert_eq!((d.first(), d.len()), (Some(&3), 64), "a cookie reply");
        replies += 1;
    }
    assert_eq!(replies, cookies, "each cookie went back to its sender");

    // Many sources, one initiation each: no source is over its rate, but the queue backs up,
    // and under load every handshake needs a cookie.
    let flood = initiations(public_of(B_KEY), 1500);
    let spoofer = net.bind(SocketAddr::from(([198, 51, 100, 8], 1000)), false);
    for (i, d) in flood.iter().enumerate() {
        spoofer.rebind(SocketAddr::from(([198, 18, (i >> 8) as u8, i as u8], 1)));
        spoofer.send_to(d, b_addr()).expect("send");
    }
    wait_until("1,800 initiations answered", || answered() == 1800);
    assert!(b.engine.under_load(), "the backed-up queue set under-load");
    let load_cookies = get(&c.cookies_sent) - cookies;
    assert!(load_cookies >= 500, "only {load_cookies} under load");

    // A real peer, now: its first initiation may draw a cookie; a retry carries mac2. The
    // under-load state lasts a second after the queue last backed up: a fresh burst right
    // before the real initiation keeps a stalled test machine from outliving it.
    let tap = net.tap();
    for (i, d) in flood.iter().take(600).enumerate() {
        spoofer.rebind(SocketAddr::from(([198, 19, (i >> 8) as u8, i as u8], 1)));
        spoofer.send_to(d, b_addr()).expect("send");
    }
    let first = udp_packet(A_IP, B_IP, b"through the flood");
    a.tun.inject(&first);
    let deadline = Instant::now() + WAIT;
    let got = loop {
        if let Some(p) = b.tun.written(Duration::from_millis(200)) {
            break p;
        }
        assert!(Instant::now() < deadline, "the real peer never got through");
        a.engine.force_handshake(&public_of(B_KEY));
    };
    assert_eq!(got, first);
    let cookie_to_a = tap
        .try_iter()
        .any(|(from, to, d)| from == b_addr() && to == a_addr() && d.first() == Some(&3));
    assert!(
        cookie_to_a,
        "the real peer was sent a cookie while under load"
    );
    assert_eq!(b.peer().counts.handshakes, 1);
}

fn set_psk(n: &Node, peer: [u8; 32], psk: Option<[u8; 32]>) {
    n.engine.apply(
        false,
        &[PeerChange {
            public_key: public_of(peer),
            update_only: true,
            preshared_key: Some(psk),
            ..PeerChange::default()
        }],
    );
}

#[test]
fn a_preshared_key_applies_from_the_next_handshake_and_must_match() {
    let net = MemNet::default();
    let (a, b) = pair(&net, false);
    handshake(&a, &b);
    let psk = [0x5a; 32];
    // A alone: the session in use carries on, but A's next handshake fails (B's response,
    // made without the PSK, does not authenticate at A).
    set_psk(&a, B_KEY, Some(psk));
    assert_eq!(a.peer().preshared_key, Some(psk));
    let still = udp_packet(A_IP, B_IP, b"old session");
    a.tun.inject(&still);
    assert_eq!(b.written(1), [still]);
    assert!(a.engine.force_handshake(&public_of(B_KEY)));
    wait_until("A refuses B's response", || {
        get(&a.engine.counters.decrypt) == 1
    });
    assert_eq!(a.peer().counts.handshakes, 1, "no new session at A");

    // Both sides: the next handshake succeeds, and data flows on it.
    set_psk(&b, A_KEY, Some(psk));
    assert!(a.engine.force_handshake(&public_of(B_KEY)));
    wait_until("a second handshake at A", || {
        a.peer().counts.handshakes == 2
    });
    let after = udp_packet(A_IP, B_IP, b"new session");
    a.tun.inject(&after);
    assert_eq!(b.written(1), [after]);
    let back = udp_packet(B_IP, A_IP, b"and back");
    b.tun.inject(&back);
    assert_eq!(a.written(1), [back]);
    assert_eq!(get(&a.engine.counters.decrypt), 1);
}

#[test]
fn mismatched_preshared_keys_never_complete_a_handshake() {
    let net = MemNet::default();
    let (a, b) = pair(&net, false);
    set_psk(&a, B_KEY, Some([1; 32]));
    set_psk(&b, A_KEY, Some([2; 32]));
    let queued = udp_packet(A_IP, B_IP, b"queued");
    a.tun.inject(&queued);
    wait_until("A refuses B's response", || {
        get(&a.engine.counters.decrypt) == 1
    });
    assert_eq!(b.tun.written(QUIET), None);
    assert_eq!(
        (a.peer().counts.handshakes, a.peer().counts.rx_packets),
        (0, 0)
    );
    // Matching keys: the next attempt completes; the packet queued meanwhile goes out too
    // (from the handshake thread, so it may overtake or follow the next one).
    set_psk(&b, A_KEY, Some([1; 32]));
    assert!(a.engine.force_handshake(&public_of(B_KEY)));
    wait_until("the handshake at A", || a.peer().counts.handshakes == 1);
    let now = udp_packet(A_IP, B_IP, b"now");
    a.tun.inject(&now);
    let mut got = b.written(2);
    got.sort();
    let mut want = vec![queued, now];
    want.sort();
    assert_eq!(got, want);
}
