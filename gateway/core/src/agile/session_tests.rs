//! Sealer/Opener behaviour over the real registry AEADs: round trips, replay and window edges,
//! tampering, usage limits, epoch rotation with a grace period, key separation, and a
//! fixed-seed mutation loop. Datagrams at arbitrary counters are built by hand (header, nonce,
//! raw AEAD key) so the opener is tested against the spec, not only against the sealer.

use std::sync::{Arc, OnceLock};

use pqgate_agility::Registry;
use pqgate_agility::plugin::AeadAlgorithm;
use pqgate_agility::selftest::names;

use super::wire::nonce_into;
use super::*;
use crate::pqpsk::Role;

/// Set to 1 to fail (not skip) when the SM4-GCM plugin is not compiled in
/// (`--features pqgate-agility/plugin-sm4`).
const REQUIRE_SM4_ENV: &str = "AGILE_REQUIRE_SM4";

const MTU: usize = 1420;

pub(super) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::power_on)
}

/// Every built-in AEAD and every AEAD of a compiled-in plugin, enabled by the registry.
pub(super) fn all_aeads() -> Vec<Arc<dyn AeadAlgorithm>> {
    let mut wanted = vec![
        names::AES_128_GCM.to_owned(),
        names::AES_256_GCM.to_owned(),
        names::CHACHA20_POLY1305.to_owned(),
    ];
    for decl in pqgate_agility::plugin::compiled_in() {
        wanted.extend(decl.aeads.iter().map(|a| a.name().to_owned()));
    }
    if std::env::var(REQUIRE_SM4_ENV).is_ok_and(|v| v == "1") {
        assert!(
            wanted.iter().any(|n| n == "SM4-GCM"),
            "{REQUIRE_SM4_ENV}=1 but SM4-GCM is not compiled in"
        );
    }
    wanted
        .iter()
        .map(|n| {
            registry()
                .aead(n)
                .unwrap_or_else(|| panic!("{n} not enabled"))
        })
        .collect()
}

pub(super) fn aead(name: &str) -> Arc<dyn AeadAlgorithm> {
    registry().aead(name).unwrap()
}

/// Exporter output stand-in: distinct, deterministic bytes per `seed`.
fn exporter(aead: &dyn AeadAlgorithm, seed: u8) -> Vec<u8> {
    (0..exporter_len(aead.key_len(), aead.nonce_len()))
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub(super) fn keys(aead: &dyn AeadAlgorithm, seed: u8, role: Role) -> SessionKeys {
    derive_direction_keys(
        &exporter(aead, seed),
        aead.key_len(),
        aead.nonce_len(),
        role,
    )
    .unwrap()
}

/// Initiator sealer and responder opener for epoch 1, receiver index `index`.
pub(super) fn pair(aead: &Arc<dyn AeadAlgorithm>, limits: Limits, index: u32) -> (Sealer, Opener) {
    let mut sealer = Sealer::new(aead.clone(), limits, MTU).unwrap();
    let mut opener = Opener::new(aead.clone(), limits, 1_000);
    sealer
        .install(1, index, &keys(aead.as_ref(), 1, Role::Initiator).send)
        .unwrap();
    opener
        .install(0, 1, index, &keys(aead.as_ref(), 1, Role::Responder).recv)
        .unwrap();
    (sealer, opener)
}

/// A datagram of key phase 0 built by hand per the spec (see [`craft_phase`]).
fn craft(
    aead: &dyn AeadAlgorithm,
    dk: &DirectionKeys,
    index: u32,
    counter: u64,
    inner: &[u8],
) -> Vec<u8> {
    craft_phase(aead, dk, index, 0, counter, inner)
}

/// A datagram built by hand per the spec: header, nonce = iv xor counter, AEAD over the padded
/// inner packet with the header as AAD.
pub(super) fn craft_phase(
    aead: &dyn AeadAlgorithm,
    dk: &DirectionKeys,
    index: u32,
    phase: u8,
    counter: u64,
    inner: &[u8],
) -> Vec<u8> {
    let header = Header {
        receiver: index,
        phase,
        counter,
    }
    .encode();
    let mut nonce = vec![0u8; dk.iv().len()];
    nonce_into(dk.iv(), counter, &mut nonce);
    let mut padded = inner.to_vec();
    padded.resize(inner.len().div_ceil(16) * 16, 0);
    let mut out = header.to_vec();
    aead.new_key(dk.key())
        .unwrap()
        .seal(&nonce, &header, &padded, &mut out)
        .unwrap();
    out
}

pub(super) fn ipv4(len: usize, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

fn ipv6(len: usize, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p
}

pub(super) fn open(opener: &mut Opener, now: u64, d: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut out = vec![0xee];
    let res = opener.open(now, d, &mut out);
    match res {
        Ok(opened) => {
            assert_eq!(out.len(), 1 + opened.len);
            Ok(out.split_off(1))
        }
        Err(e) => {
            assert_eq!(out, [0xee], "output buffer changed on error");
            Err(e)
        }
    }
}

#[test]
fn round_trip_every_aead_both_directions() {
    for aead in all_aeads() {
        let limits = Limits::for_aead(
            aead.as_ref(),
            registry().aead_confidentiality_limit(aead.name()),
            MTU,
        );
        let (mut tx, mut rx) = pair(&aead, limits, 42);
        let mut back_tx = Sealer::new(aead.clone(), limits, MTU).unwrap();
        let mut back_rx = Opener::new(aead.clone(), limits, 0);
        back_tx
            .install(1, 9, &keys(aead.as_ref(), 1, Role::Responder).send)
            .unwrap();
        back_rx
            .install(0, 1, 9, &keys(aead.as_ref(), 1, Role::Initiator).recv)
            .unwrap();
        let packets = [
            Vec::new(),
            ipv4(20, 1),
            ipv4(28, 2),
            ipv6(40, 3),
            ipv6(97, 4),
            ipv4(MTU - 1, 5),
            ipv4(MTU, 6),
        ];
        for (sealer, opener) in [(&mut tx, &mut rx), (&mut back_tx, &mut back_rx)] {
            for p in &packets {
                let mut wire = Vec::new();
                sealer.seal(p, &mut wire).unwrap();
                assert_eq!(wire.len(), sealer.sealed_len(p.len()), "{}", aead.name());
                let body = wire.len() - HEADER_LEN - aead.tag_len();
                assert!(body == p.len().div_ceil(16) * 16 || body == MTU, "{body}");
                assert_eq!(&open(opener, 0, &wire).unwrap(), p, "{}", aead.name());
            }
        }
        // A packet sealed one way does not open the other way (different keys and indices).
        let mut wire = Vec::new();
        tx.seal(&ipv4(28, 7), &mut wire).unwrap();
        wire[4..8].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(open(&mut back_rx, 0, &wire), Err(OpenError::Auth));
    }
}

#[test]
fn replay_and_window_edges_through_the_opener() {
    let aead = aead(names::CHACHA20_POLY1305);
    let (_, mut rx) = pair(&aead, Limits::new(1 << 40, 1 << 36), 5);
    let dk = keys(aead.as_ref(), 1, Role::Initiator).send;
    let p = ipv4(60, 9);
    let d = |c| craft(aead.as_ref(), &dk, 5, c, &p);
    assert_eq!(open(&mut rx, 0, &d(10)), Ok(p.clone()));
    assert_eq!(open(&mut rx, 0, &d(10)), Err(OpenError::Replay(10)));
    assert_eq!(open(&mut rx, 0, &d(3)), Ok(p.clone()));
    let top = 50_000;
    assert_eq!(open(&mut rx, 0, &d(top)), Ok(p.clone()));
    assert_eq!(open(&mut rx, 0, &d(top + 1 - WINDOW)), Ok(p.clone()));
    assert_eq!(
        open(&mut rx, 0, &d(top - WINDOW)),
        Err(OpenError::TooOld(top - WINDOW))
    );
    assert_eq!(open(&mut rx, 0, &d(top - 1)), Ok(p.clone()));
    let far = 1 << 39;
    assert_eq!(open(&mut rx, 0, &d(far)), Ok(p.clone()));
    assert_eq!(open(&mut rx, 0, &d(top)), Err(OpenError::TooOld(top)));
    assert_eq!(open(&mut rx, 0, &d(far - 1)), Ok(p.clone()));
    assert_eq!(open(&mut rx, 0, &d(far)), Err(OpenError::Replay(far)));
}

#[test]
fn every_single_bit_flip_is_refused_and_moves_nothing() {
    for aead in all_aeads() {
        let limits = Limits::for_aead(
            aead.as_ref(),
            registry().aead_confidentiality_limit(aead.name()),
            MTU,
        );
        let (mut tx, mut rx) = pair(&aead, limits, 0x0102_0304);
        let mut wire = Vec::new();
        tx.seal(&ipv4(33, 0x5a), &mut wire).unwrap();
        for bit in 0..wire.len() * 8 {
            let mut bad = wire.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = open(&mut rx, 0, &bad).unwrap_err();
            let expected_kind = match bit / 8 {
                0 | 2 | 3 => matches!(err, OpenError::Header(_)),
                // Another key phase: the next generation's key (derived) or none refuses it.
                1 => matches!(err, OpenError::Auth | OpenError::Phase(_)),
                4..=7 => matches!(err, OpenError::UnknownIndex(_)),
                8..=15 => matches!(err, OpenError::Auth | OpenError::LimitReached),
                _ => err == OpenError::Auth,
            };
            assert!(expected_kind, "{} bit {bit}: {err:?}", aead.name());
        }
        // Forgeries neither advanced the window nor retired the key.
        assert_eq!(open(&mut rx, 0, &wire), Ok(ipv4(33, 0x5a)));
        assert_eq!(open(&mut rx, 0, &wire), Err(OpenError::Replay(0)));
    }
}

#[test]
fn truncation_and_garbage_are_refused() {
    let aead = aead(names::AES_256_GCM);
    let (mut tx, mut rx) = pair(&aead, Limits::builtin(names::AES_256_GCM, MTU).unwrap(), 1);
    let mut wire = Vec::new();
    tx.seal(&[], &mut wire).unwrap();
    assert_eq!(wire.len(), HEADER_LEN + 16);
    for cut in 0..wire.len() {
        let err = open(&mut rx, 0, &wire[..cut]).unwrap_err();
        assert!(
            matches!(err, OpenError::Truncated(n) if n == cut),
            "cut {cut}: {err:?}"
        );
    }
    let mut longer = wire.clone();
    longer.push(0);
    assert_eq!(open(&mut rx, 0, &longer), Err(OpenError::Auth));
    assert_eq!(open(&mut rx, 0, &wire), Ok(Vec::new()));
    // Authentic but not an IP packet.
    let dk = keys(aead.as_ref(), 1, Role::Initiator).send;
    let junk = craft(aead.as_ref(), &dk, 1, 5, &[0u8; 32]);
    assert_eq!(open(&mut rx, 0, &junk), Err(OpenError::Inner));
    assert_eq!(open(&mut rx, 0, &junk), Err(OpenError::Replay(5)));
}

#[test]
fn soft_and_hard_limits_once_key_updates_run_out() {
    let aead = aead(names::AES_256_GCM);
    // No key generation after the first: the epoch's only key runs to its hard limit.
    let limits = Limits::with_soft(2, 4, 3).unwrap().with_last_generation(0);
    let (mut tx, mut rx) = pair(&aead, limits, 8);
    let mut rekey = Vec::new();
    for c in 0..4u64 {
        let mut wire = Vec::new();
        let s = tx.seal(&[], &mut wire).unwrap();
        assert_eq!(s.counter, c);
        rekey.push(s.needs_rekey);
        assert_eq!(open(&mut rx, 0, &wire), Ok(Vec::new()));
    }
    assert_eq!(rekey, [false, true, true, true]);
    assert!(tx.needs_rekey());
    let mut out = Vec::new();
    assert!(matches!(
        tx.seal(&[], &mut out),
        Err(SealError::LimitReached(4))
    ));
    assert!(out.is_empty());
    assert!(matches!(
        tx.seal(&[], &mut out),
        Err(SealError::LimitReached(4))
    ));
    // The receiver refuses counters at or past the hard limit before any crypto.
    let dk = keys(aead.as_ref(), 1, Role::Initiator).send;
    assert_eq!(
        open(&mut rx, 0, &craft(aead.as_ref(), &dk, 8, 4, &[])),
        Err(OpenError::LimitReached)
    );
    assert_eq!(
        open(&mut rx, 0, &craft(aead.as_ref(), &dk, 8, u64::MAX, &[])),
        Err(OpenError::LimitReached)
    );
    // A new epoch resets the sender.
    tx.install(2, 8, &keys(aead.as_ref(), 2, Role::Initiator).send)
        .unwrap();
    assert!(!tx.needs_rekey());
    assert!(tx.seal(&[], &mut out).is_ok());
}

#[test]
fn integrity_limit_retires_a_receiving_key() {
    let aead = aead(names::CHACHA20_POLY1305);
    let limits = Limits::with_soft(100, 100, 3).unwrap();
    let (mut tx, mut rx) = pair(&aead, limits, 8);
    let mut wire = Vec::new();
    tx.seal(&ipv4(20, 0), &mut wire).unwrap();
    let mut forged = wire.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    for _ in 0..3 {
        assert_eq!(open(&mut rx, 0, &forged), Err(OpenError::Auth));
    }
    assert_eq!(open(&mut rx, 0, &wire), Err(OpenError::LimitReached));
}

#[test]
fn epoch_rotation_keeps_the_previous_key_for_the_grace_period() {
    let aead = aead(names::AES_128_GCM);
    let limits = Limits::builtin(names::AES_128_GCM, MTU).unwrap();
    let mut old_tx = Sealer::new(aead.clone(), limits, MTU).unwrap();
    let mut rx = Opener::new(aead.clone(), limits, 500);
    old_tx
        .install(1, 100, &keys(aead.as_ref(), 1, Role::Initiator).send)
        .unwrap();
    rx.install(0, 1, 100, &keys(aead.as_ref(), 1, Role::Responder).recv)
        .unwrap();
    let seal = |tx: &mut Sealer| {
        let mut w = Vec::new();
        tx.seal(&ipv4(20, 3), &mut w).unwrap();
        w
    };
    let in_flight: Vec<_> = (0..3).map(|_| seal(&mut old_tx)).collect();
    // Rotation at t = 1000: the receiver installs epoch 2 under a new index, then the sender.
    rx.install(1_000, 2, 200, &keys(aead.as_ref(), 2, Role::Responder).recv)
        .unwrap();
    assert_eq!(rx.indices().collect::<Vec<_>>(), [200, 100]);
    let mut new_tx = old_tx;
    new_tx
        .install(2, 200, &keys(aead.as_ref(), 2, Role::Initiator).send)
        .unwrap();
    assert_eq!(new_tx.counter(), 0);
    let fresh = seal(&mut new_tx);
    assert_eq!(open(&mut rx, 1_001, &fresh).map(|p| p.len()), Ok(20));
    assert_eq!(open(&mut rx, 1_100, &in_flight[1]).map(|p| p.len()), Ok(20));
    assert_eq!(open(&mut rx, 1_499, &in_flight[0]).map(|p| p.len()), Ok(20));
    assert_eq!(
        open(&mut rx, 1_500, &in_flight[2]),
        Err(OpenError::UnknownIndex(100))
    );
    assert_eq!(rx.indices().collect::<Vec<_>>(), [200]);
    assert_eq!(rx.epoch(), Some(2));
}

#[test]
fn install_refusals() {
    let aead = aead(names::AES_256_GCM);
    let limits = Limits::builtin(names::AES_256_GCM, MTU).unwrap();
    let mut tx = Sealer::new(aead.clone(), limits, MTU).unwrap();
    let mut rx = Opener::new(aead.clone(), limits, 0);
    let mut out = Vec::new();
    assert!(matches!(tx.seal(&[], &mut out), Err(SealError::NoKey)));
    assert!(tx.needs_rekey());
    let k5 = keys(aead.as_ref(), 5, Role::Initiator);
    tx.install(5, 1, &k5.send).unwrap();
    rx.install(0, 5, 1, &k5.send).unwrap();
    // Same key again: counters would restart, reusing nonces.
    assert!(matches!(
        tx.install(5, 2, &k5.send),
        Err(InstallError::SameKey(5))
    ));
    assert!(matches!(
        rx.install(0, 5, 2, &k5.send),
        Err(InstallError::SameKey(5))
    ));
    // Older epoch.
    let k4 = keys(aead.as_ref(), 4, Role::Initiator);
    assert!(matches!(
        tx.install(4, 2, &k4.send),
        Err(InstallError::StaleEpoch {
            epoch: 4,
            current: 5
        })
    ));
    assert!(matches!(
        rx.install(0, 4, 2, &k4.send),
        Err(InstallError::StaleEpoch { .. })
    ));
    // Same epoch, new key (a new channel connection re-keys the current epoch): accepted,
    // but not under the index in use.
    let k5b = keys(aead.as_ref(), 55, Role::Initiator);
    assert!(matches!(
        rx.install(0, 5, 1, &k5b.send),
        Err(InstallError::IndexInUse(1))
    ));
    rx.install(0, 5, 2, &k5b.send).unwrap();
    tx.install(5, 2, &k5b.send).unwrap();
    // Keys for another AEAD do not fit.
    let chacha = registry().aead(names::CHACHA20_POLY1305).unwrap();
    let short = DirectionKeys::new(&[1u8; 16], &[2u8; 12]).unwrap();
    assert!(matches!(
        tx.install(6, 3, &short),
        Err(InstallError::Lengths { .. })
    ));
    let long_iv = DirectionKeys::new(&[1u8; 32], &[2u8; 16]).unwrap();
    assert!(matches!(
        Sealer::new(chacha, limits, MTU)
            .unwrap()
            .install(6, 3, &long_iv),
        Err(InstallError::Lengths { .. })
    ));
    assert!(matches!(
        Sealer::new(aead.clone(), limits, 0),
        Err(InstallError::Mtu(0))
    ));
    assert!(matches!(
        Sealer::new(aead.clone(), limits, MAX_MTU + 1),
        Err(InstallError::Mtu(_))
    ));
    assert!(matches!(
        tx.seal(&vec![0x45; MTU + 1], &mut out),
        Err(SealError::TooLarge { len, mtu: MTU }) if len == MTU + 1
    ));
    assert!(out.is_empty());
}

#[test]
fn keys_differ_per_direction_epoch_and_aead() {
    let i = [0x11; 32];
    let r = [0x22; 32];
    let contexts = [
        exporter_context(1, "AES-256-GCM", &i, &r).unwrap(),
        exporter_context(2, "AES-256-GCM", &i, &r).unwrap(),
        exporter_context(1, "ChaCha20-Poly1305", &i, &r).unwrap(),
        exporter_context(1, "SM4-GCM", &i, &r).unwrap(),
        exporter_context(1, "AES-256-GCM", &r, &i).unwrap(),
    ];
    for (a, ca) in contexts.iter().enumerate() {
        for cb in &contexts[a + 1..] {
            assert_ne!(ca, cb);
        }
    }
    // With a PRF standing in for the exporter (HKDF-SHA256 over label || context), distinct
    // contexts give distinct keys, and the two directions never share a key or IV.
    let prf = |ctx: &[u8], len: usize| {
        use aws_lc_rs::hkdf;
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"test master secret").extract(b"ikm");
        let info = [EXPORTER_LABEL, ctx];
        let mut out = vec![0u8; len];
        prk.expand(&info, Len(len)).unwrap().fill(&mut out).unwrap();
        out
    };
    let mut seen = Vec::new();
    for ctx in &contexts {
        let s = derive_direction_keys(&prf(ctx, 88), 32, 12, Role::Initiator).unwrap();
        assert_ne!(s.send.key(), s.recv.key());
        assert_ne!(s.send.iv(), s.recv.iv());
        for k in [s.send.key().to_vec(), s.recv.key().to_vec()] {
            assert!(!seen.contains(&k));
            seen.push(k);
        }
    }
}

/// Fixed-seed mutation loop: truncations, bit and byte flips, header rewrites and random
/// datagrams; nothing panics and only untouched datagrams open.
#[test]
fn mutation_loop_never_panics_and_only_originals_open() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for aead in all_aeads() {
        let limits = Limits::for_aead(
            aead.as_ref(),
            registry().aead_confidentiality_limit(aead.name()),
            MTU,
        );
        let (mut tx, mut rx) = pair(&aead, limits, 77);
        let originals: Vec<Vec<u8>> = (0..64)
            .map(|n| {
                let mut w = Vec::new();
                let inner = if n % 4 == 0 {
                    Vec::new()
                } else {
                    ipv4(20 + n * 7, n as u8)
                };
                tx.seal(&inner, &mut w).unwrap();
                w
            })
            .collect();
        let mut opened = 0;
        for _ in 0..5_000 {
            let r = next();
            let mut d = originals[(r % 64) as usize].clone();
            match (r >> 8) % 6 {
                0 => d.truncate(((r >> 16) as usize) % (d.len() + 1)),
                1 => {
                    let at = ((r >> 16) as usize) % d.len();
                    d[at] ^= 1 << ((r >> 40) % 8);
                }
                2 => {
                    let at = ((r >> 16) as usize) % d.len();
                    d[at] = (r >> 48) as u8;
                }
                3 => d[8..16].copy_from_slice(&next().to_le_bytes()),
                4 => {
                    d = (0..((r >> 16) % 120) as usize)
                        .map(|_| next() as u8)
                        .collect()
                }
                _ => d.extend((0..(r >> 16) % 5).map(|_| next() as u8)),
            }
            if let Ok(inner) = open(&mut rx, 0, &d) {
                opened += 1;
                assert!(
                    originals.contains(&d),
                    "{}: a mutated datagram opened",
                    aead.name()
                );
                assert!(inner.is_empty() || inner[0] == 0x45);
            }
        }
        assert!(opened <= originals.len());
    }
}
