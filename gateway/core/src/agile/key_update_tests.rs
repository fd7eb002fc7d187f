//! Key updates inside an epoch (docs/design/agile-tunnel.md section 4.1): the sender moves to the next
//! key generation at the soft limit with no message, the receiver follows on the first authentic
//! packet of a later phase (skipping generations lost whole) and keeps the previous generation
//! for the grace period; forged phases promote nothing and their derivations are rate-limited;
//! phases wrap past 255; packets built from `generation_keys` by hand match.

use pqgate_agility::selftest::names;

use super::session_tests::{aead, all_aeads, craft_phase, ipv4, keys, open, pair};
use super::*;
use crate::pqpsk::Role;

/// Seals `inner` and returns the datagram with what the sealer reported.
fn seal(tx: &mut Sealer, inner: &[u8]) -> (Vec<u8>, Sealed) {
    let mut wire = Vec::new();
    let sealed = tx.seal(inner, &mut wire).unwrap();
    (wire, sealed)
}

#[test]
fn the_sender_updates_at_the_soft_limit_and_the_receiver_follows() {
    for aead in all_aeads() {
        let limits = Limits::with_soft(3, 4, 10).unwrap();
        let (mut tx, mut rx) = pair(&aead, limits, 0x77);
        for n in 0..20u64 {
            let (wire, sealed) = seal(&mut tx, &ipv4(40, n as u8));
            assert_eq!(sealed.generation, n / 3, "{}", aead.name());
            assert_eq!(sealed.counter, n % 3, "{}", aead.name());
            assert_eq!(sealed.key_updated, n >= 3 && n % 3 == 0);
            assert!(!sealed.needs_rekey);
            assert_eq!(wire[1], (n / 3) as u8, "key phase on the wire");
            let mut out = Vec::new();
            let opened = rx.open(0, &wire, &mut out).unwrap();
            assert_eq!(out, ipv4(40, n as u8));
            assert_eq!(
                (opened.generation, opened.key_updated),
                (n / 3, sealed.key_updated)
            );
        }
        assert_eq!((tx.generation(), rx.generation()), (6, 6));
        assert!(!tx.needs_rekey());
    }
}

#[test]
fn reordering_across_an_update_opens_until_the_grace_period_ends() {
    let aead = aead(names::AES_256_GCM);
    let limits = Limits::with_soft(2, 4, 10).unwrap();
    let (mut tx, mut rx) = pair(&aead, limits, 5);
    let g0: Vec<_> = (0..2).map(|n| seal(&mut tx, &ipv4(30, n)).0).collect();
    let g1: Vec<_> = (0..2).map(|n| seal(&mut tx, &ipv4(30, 10 + n)).0).collect();
    // Generation 1 arrives first: it becomes current, generation 0 stays for the grace period.
    assert_eq!(open(&mut rx, 100, &g1[0]), Ok(ipv4(30, 10)));
    assert_eq!(rx.generation(), 1);
    assert_eq!(open(&mut rx, 100, &g0[1]), Ok(ipv4(30, 1)));
    assert_eq!(open(&mut rx, 100, &g0[1]), Err(OpenError::Replay(1)));
    // The grace period (1,000 ms from the update) ends: phase 0 is unknown now.
    assert_eq!(open(&mut rx, 1_100, &g0[0]), Err(OpenError::Phase(0)));
    assert_eq!(open(&mut rx, 1_100, &g1[1]), Ok(ipv4(30, 11)));
    // Counters restart per generation, each with its own window.
    assert_eq!(open(&mut rx, 1_100, &g1[0]), Err(OpenError::Replay(0)));
}

#[test]
fn a_forged_next_phase_promotes_nothing() {
    let aead = aead(names::CHACHA20_POLY1305);
    let limits = Limits::with_soft(2, 4, 3).unwrap();
    let (mut tx, mut rx) = pair(&aead, limits, 9);
    let (first, _) = seal(&mut tx, &ipv4(28, 1));
    // Phase 1 under the wrong key (generation 0's): the next generation refuses it.
    let k0 = keys(aead.as_ref(), 1, Role::Initiator).send;
    let forged = craft_phase(aead.as_ref(), &k0, 9, 1, 0, &ipv4(28, 2));
    assert_eq!(open(&mut rx, 0, &forged), Err(OpenError::Auth));
    assert_eq!(rx.generation(), 0);
    // A phase two ahead: derived (a loss of a whole key), refused by the AEAD; another skip
    // within the rate limit is not even derived; phases beyond the skip window or behind the
    // current one (no previous key held) are unknown.
    let two = craft_phase(aead.as_ref(), &k0, 9, 2, 0, &ipv4(28, 3));
    assert_eq!(open(&mut rx, 0, &two), Err(OpenError::Auth));
    let three = craft_phase(aead.as_ref(), &k0, 9, 3, 0, &ipv4(28, 3));
    let soon = SKIP_INTERVAL_MS - 1;
    assert_eq!(open(&mut rx, soon, &three), Err(OpenError::Phase(3)));
    assert_eq!(
        open(&mut rx, SKIP_INTERVAL_MS, &three),
        Err(OpenError::Auth)
    );
    for phase in [MAX_SKIP + 1, 128, 255] {
        let other = craft_phase(aead.as_ref(), &k0, 9, phase, 0, &ipv4(28, 3));
        let now = 10 * SKIP_INTERVAL_MS;
        assert_eq!(open(&mut rx, now, &other), Err(OpenError::Phase(phase)));
    }
    assert_eq!(rx.generation(), 0);
    assert_eq!(open(&mut rx, 0, &first), Ok(ipv4(28, 1)));
    // Forgeries against the next generation count against it: three retire it before use.
    for _ in 0..2 {
        assert_eq!(open(&mut rx, 0, &forged), Err(OpenError::Auth));
    }
    seal(&mut tx, &[]);
    let (update, sealed) = seal(&mut tx, &ipv4(28, 4));
    assert!(sealed.key_updated);
    assert_eq!(open(&mut rx, 0, &update), Err(OpenError::LimitReached));
}

#[test]
fn hand_built_packets_of_the_next_generation_open_and_match_the_sealer() {
    for aead in all_aeads() {
        let limits = Limits::with_soft(1, 2, 10).unwrap();
        let (mut tx, mut rx) = pair(&aead, limits, 0xabc);
        let g0 = keys(aead.as_ref(), 1, Role::Initiator).send;
        let g1 = generation_keys(&g0, 1).unwrap();
        let g2 = generation_keys(&g0, 2).unwrap();
        assert_eq!(generation_keys(&g0, 0).unwrap().key(), g0.key());
        assert_ne!(g1.key(), g0.key());
        assert_ne!(g2.key(), g1.key());
        assert_ne!(g2.iv(), g1.iv());
        assert_eq!(
            (g2.key().len(), g2.iv().len()),
            (g0.key().len(), g0.iv().len())
        );
        let inner = ipv4(44, 7);
        seal(&mut tx, &inner);
        let (by_sealer, _) = seal(&mut tx, &inner);
        let by_hand = craft_phase(aead.as_ref(), &g1, 0xabc, 1, 0, &inner);
        assert_eq!(by_sealer, by_hand, "{}", aead.name());
        let (by_sealer, _) = seal(&mut tx, &inner);
        let next_by_hand = craft_phase(aead.as_ref(), &g2, 0xabc, 2, 0, &inner);
        assert_eq!(by_sealer, next_by_hand, "{}", aead.name());
        assert_eq!(open(&mut rx, 0, &by_hand), Ok(inner.clone()));
        assert_eq!(open(&mut rx, 0, &next_by_hand), Ok(inner));
        assert_eq!(rx.generation(), 2);
    }
}

#[test]
fn key_phases_wrap_past_255() {
    let aead = aead(names::AES_128_GCM);
    let limits = Limits::with_soft(1, 1, 10).unwrap();
    let (mut tx, mut rx) = pair(&aead, limits, 3);
    for n in 0..600u64 {
        let (wire, sealed) = seal(&mut tx, &[]);
        assert_eq!((sealed.generation, sealed.counter), (n, 0));
        assert_eq!(u64::from(wire[1]), n % 256);
        assert_eq!(open(&mut rx, 0, &wire), Ok(Vec::new()), "packet {n}");
    }
    assert_eq!(rx.generation(), 599);
}

#[test]
fn the_last_generation_runs_to_the_hard_limit_then_needs_an_epoch() {
    let aead = aead(names::AES_256_GCM);
    let limits = Limits::with_soft(2, 3, 10).unwrap().with_last_generation(2);
    let (mut tx, mut rx) = pair(&aead, limits, 4);
    let mut seen = Vec::new();
    for _ in 0..7 {
        let (wire, s) = seal(&mut tx, &[]);
        seen.push((s.generation, s.counter, s.needs_rekey));
        assert_eq!(open(&mut rx, 0, &wire), Ok(Vec::new()));
    }
    assert_eq!(
        seen,
        [
            (0, 0, false),
            (0, 1, false),
            (1, 0, false),
            (1, 1, false),
            (2, 0, false),
            (2, 1, true),
            (2, 2, true),
        ]
    );
    assert!(tx.needs_rekey());
    let mut out = Vec::new();
    assert!(matches!(
        tx.seal(&[], &mut out),
        Err(SealError::LimitReached(3))
    ));
    // The receiver derives no generation past the last one.
    let k0 = keys(aead.as_ref(), 1, Role::Initiator).send;
    let g3 = generation_keys(&k0, 3).unwrap();
    let beyond = craft_phase(aead.as_ref(), &g3, 4, 3, 0, &[]);
    assert_eq!(open(&mut rx, 0, &beyond), Err(OpenError::Phase(3)));
    // A new epoch starts again at generation 0.
    tx.install(2, 4, &keys(aead.as_ref(), 2, Role::Initiator).send)
        .unwrap();
    assert_eq!(tx.generation(), 0);
    assert!(!tx.needs_rekey());
}

#[test]
fn an_epoch_install_drops_a_derived_next_generation() {
    let aead = aead(names::AES_256_GCM);
    let limits = Limits::with_soft(2, 4, 10).unwrap();
    let (mut tx, mut rx) = pair(&aead, limits, 1);
    // A forged next phase makes the receiver derive generation 1 of epoch 1.
    let k0 = keys(aead.as_ref(), 1, Role::Initiator).send;
    let forged = craft_phase(aead.as_ref(), &k0, 1, 1, 0, &[]);
    assert_eq!(open(&mut rx, 0, &forged), Err(OpenError::Auth));
    // Epoch 2: its generation 1 must come from epoch 2's key, not the cached one.
    let e2 = keys(aead.as_ref(), 2, Role::Initiator);
    let r2 = keys(aead.as_ref(), 2, Role::Responder);
    tx.install(2, 2, &e2.send).unwrap();
    rx.install(0, 2, 2, &r2.recv).unwrap();
    for n in 0..4u8 {
        let (wire, _) = seal(&mut tx, &ipv4(30, n));
        assert_eq!(open(&mut rx, 0, &wire), Ok(ipv4(30, n)));
    }
    assert_eq!((rx.epoch(), rx.generation()), (Some(2), 1));
}

#[test]
fn a_receiver_that_lost_whole_keys_skips_ahead() {
    for aead in all_aeads() {
        let limits = Limits::with_soft(2, 4, 10).unwrap();
        let (mut tx, mut rx) = pair(&aead, limits, 0x5151);
        let sent: Vec<_> = (0..40u8).map(|n| seal(&mut tx, &ipv4(36, n)).0).collect();
        // Generation 0 arrives, then generations 1 to 8 are lost whole.
        assert_eq!(open(&mut rx, 0, &sent[0]), Ok(ipv4(36, 0)));
        for (n, d) in sent.iter().enumerate().skip(18) {
            let n = n as u8;
            assert_eq!(
                open(&mut rx, 0, d),
                Ok(ipv4(36, n)),
                "{} packet {n}",
                aead.name()
            );
        }
        assert_eq!(rx.generation(), 19);
        // Past the skip window the receiver cannot follow (the next epoch re-keys).
        let far = (0..2 * usize::from(MAX_SKIP) + 4)
            .map(|_| seal(&mut tx, &[]).0)
            .last()
            .unwrap();
        assert!(matches!(open(&mut rx, 0, &far), Err(OpenError::Phase(_))));
    }
}

#[test]
fn generation_keys_refuse_unusable_lengths() {
    let k = DirectionKeys::new(&[1; 16], &[2; 12]).unwrap();
    assert!(generation_keys(&k, 1).is_ok());
    let huge = DirectionKeys::new(&vec![1; 13_000], &[2; 12]).unwrap();
    assert_eq!(
        generation_keys(&huge, 1).map(|_| ()).unwrap_err(),
        KeyError::Update(13_012)
    );
}

#[test]
fn the_previous_epoch_follows_its_own_key_updates_during_the_grace_period() {
    let aead = aead(names::AES_256_GCM);
    let limits = Limits::with_soft(2, 4, 10).unwrap();
    let (mut tx, mut rx) = pair(&aead, limits, 1);
    let (first, _) = seal(&mut tx, &ipv4(30, 0));
    assert_eq!(open(&mut rx, 0, &first), Ok(ipv4(30, 0)));
    // The receiver moves to epoch 2 (index 2) while the sender is still on epoch 1, where it
    // updates its key before it switches (a responder waiting for its switch).
    rx.install(10, 2, 2, &keys(aead.as_ref(), 2, Role::Responder).recv)
        .unwrap();
    let late: Vec<_> = (1..5u8).map(|n| seal(&mut tx, &ipv4(30, n)).0).collect();
    for (n, d) in late.iter().enumerate() {
        let n = n as u8 + 1;
        assert_eq!(open(&mut rx, 20, d), Ok(ipv4(30, n)), "packet {n}");
    }
    let mut out = Vec::new();
    let (old, _) = seal(&mut tx, &ipv4(30, 5));
    let opened = rx.open(20, &old, &mut out).unwrap();
    assert_eq!(
        (opened.epoch, opened.latest),
        (1, false),
        "opened by the previous epoch"
    );
    assert_eq!((rx.epoch(), rx.generation()), (Some(2), 0));
    // The grace period (1,000 ms from the install) ends: epoch 1 is gone, whatever its phase.
    let (after, _) = seal(&mut tx, &ipv4(30, 9));
    assert_eq!(
        open(&mut rx, 1_010, &after),
        Err(OpenError::UnknownIndex(1))
    );
}

#[test]
fn lower_limits_take_effect_on_the_next_packet_without_repeating_a_counter() {
    let aead = aead(names::AES_256_GCM);
    let (mut tx, mut rx) = pair(&aead, Limits::with_soft(100, 200, 10).unwrap(), 6);
    let mut seen = Vec::new();
    for n in 0..3u8 {
        let (wire, s) = seal(&mut tx, &ipv4(30, n));
        seen.push((s.generation, s.counter));
        assert_eq!(open(&mut rx, 0, &wire), Ok(ipv4(30, n)));
    }
    tx.set_limits(Limits::with_soft(2, 4, 10).unwrap());
    rx.set_limits(Limits::with_soft(2, 4, 10).unwrap());
    assert_eq!(tx.limits().soft(), 2);
    for n in 3..6u8 {
        let (wire, s) = seal(&mut tx, &ipv4(30, n));
        seen.push((s.generation, s.counter));
        assert_eq!(open(&mut rx, 0, &wire), Ok(ipv4(30, n)));
    }
    assert_eq!(seen, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]);
    assert_eq!(rx.limits().hard(), 4);
}
