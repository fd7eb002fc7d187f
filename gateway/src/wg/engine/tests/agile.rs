//! The agile tunnel between two engines: keys installed through [`Engine::install_agile`] with a
//! registry AEAD carry data both ways agile-sealed (type 0x11 on the wire, no WireGuard
//! handshake needed), counted per peer and per engine; dropping one side's keys stops delivery.

use pqgate_agility::Registry;
use pqgate_core::agile::{Limits, MSG_TYPE, derive_direction_keys, exporter_len};
use pqgate_core::pqpsk::Role;

use super::*;
use crate::wg::engine::{AgileInstall, switch_after_ms};

const AEAD: &str = "AES-256-GCM";
const A_INDEX: u32 = 0xa000_0001;
const B_INDEX: u32 = 0xb000_0002;

/// Epoch-1 keys for one side of the A-B pair, A being the channel's initiator.
fn install(registry: &Registry, role: Role) -> AgileInstall {
    let aead = registry.aead(AEAD).expect("AES-256-GCM in the registry");
    let (key_len, nonce_len) = (aead.key_len(), aead.nonce_len());
    let declared = registry.aead_confidentiality_limit(aead.name());
    let exporter: Vec<u8> = (0..exporter_len(key_len, nonce_len))
        .map(|i| (i as u8).wrapping_mul(13) ^ 0x5c)
        .collect();
    let keys = derive_direction_keys(&exporter, key_len, nonce_len, role).expect("keys");
    let initiator = matches!(role, Role::Initiator);
    let (local_index, remote_index) = if initiator {
        (A_INDEX, B_INDEX)
    } else {
        (B_INDEX, A_INDEX)
    };
    AgileInstall {
        epoch: 1,
        send_limits: Limits::for_aead(aead.as_ref(), declared, usize::from(MTU)),
        recv_limits: Limits::for_receiving(aead.as_ref(), declared),
        aead,
        keys,
        local_index,
        remote_index,
        send_now: initiator,
        switch_after_ms: switch_after_ms(120_000),
    }
}

/// Installs epoch 1 on both sides: the responder first, as the channel does; the initiator's
/// install sends an agile keepalive, on which the responder switches.
fn install_both(a: &Node, b: &Node) {
    let registry = Registry::power_on();
    b.engine
        .install_agile(&public_of(A_KEY), install(&registry, Role::Responder))
        .expect("B installs");
    a.engine
        .install_agile(&public_of(B_KEY), install(&registry, Role::Initiator))
        .expect("A installs");
    wait_until("B sends under epoch 1", || {
        b.engine
            .agile_status(&public_of(A_KEY))
            .is_some_and(|s| s.send_epoch == Some(1))
    });
}

/// One side after 40 agile packets each way: engine, peer and agile counts, and the status.
fn assert_agile_counts(n: &Node, other: [u8; 32]) {
    let c = &n.engine.counters;
    assert_eq!((get(&c.agile_tx), get(&c.agile_rx)), (40, 40));
    let p = n.peer();
    assert_eq!(p.counts.handshakes, 0, "no WireGuard handshake was needed");
    assert_eq!(
        (p.counts.agile_tx_packets, p.counts.agile_rx_packets),
        (40, 40)
    );
    assert_eq!((p.counts.tx_packets, p.counts.rx_packets), (40, 40));
    let s = n.engine.agile_status(&public_of(other)).expect("agile");
    assert_eq!(s.aead, AEAD);
    assert_eq!((s.send_epoch, s.recv_epoch), (Some(1), Some(1)));
    assert_eq!((s.tx_packets, s.rx_packets), (40, 40));
}

#[test]
fn agile_keys_carry_data_both_ways_without_a_wireguard_handshake() {
    let net = MemNet::default();
    let tap = net.tap();
    let (a, b) = pair(&net, false);
    install_both(&a, &b);
    let to_b: Vec<Vec<u8>> = (0..40)
        .map(|i| udp_packet(A_IP, B_IP, &payload(i * 33, 3)))
        .collect();
    let to_a: Vec<Vec<u8>> = (0..40)
        .map(|i| udp_packet(B_IP, A_IP, &payload(1350 - i * 30, 4)))
        .collect();
    for p in &to_b {
        a.tun.inject(p);
    }
    assert_eq!(b.written(40), to_b, "A -> B agile, byte-exact");
    for p in &to_a {
        b.tun.inject(p);
    }
    assert_eq!(a.written(40), to_a, "B -> A agile, byte-exact");

    assert_agile_counts(&a, B_KEY);
    assert_agile_counts(&b, A_KEY);
    let wire: Vec<_> = tap.try_iter().collect();
    assert!(
        wire.len() >= 81,
        "80 packets and a keepalive: {}",
        wire.len()
    );
    assert!(
        wire.iter().all(|(_, _, d)| d.first() == Some(&MSG_TYPE)),
        "every datagram agile-sealed"
    );
    assert!(
        wire.iter()
            .all(|(_, _, d)| d.windows(33).all(|w| w != &to_b[1][..33])),
        "no plaintext on the wire"
    );

    // B drops its keys: A's agile packets find no receiver index there any more.
    assert!(b.engine.remove_agile(&public_of(A_KEY)));
    a.tun.inject(&to_b[5]);
    wait_until("an unknown-index drop at B", || {
        get(&b.engine.counters.unknown_peer) == 1
    });
    assert_eq!(b.tun.written(QUIET), None);
    assert_eq!(get(&b.engine.counters.agile_rx), 40);
}

#[test]
fn agile_keys_are_refused_for_an_unknown_peer() {
    let net = MemNet::default();
    let (a, _b) = pair(&net, false);
    let registry = Registry::power_on();
    let r = a
        .engine
        .install_agile(&[0x99; 32], install(&registry, Role::Initiator));
    assert!(matches!(r, Err(crate::wg::engine::AgileError::UnknownPeer)));
    assert_eq!(a.engine.agile_status(&public_of(B_KEY)), None);
}
