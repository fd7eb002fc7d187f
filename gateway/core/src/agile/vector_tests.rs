//! The docs/design/agile-tunnel.md test vectors, checked byte for byte through the real key split,
//! [`Sealer`] and [`Opener`]. The expected bytes were computed by an independent implementation
//! (python3 `cryptography` 48, OpenSSL's AES-GCM and ChaCha20-Poly1305; script in the doc).

use super::*;
use crate::hex;
use crate::pqpsk::Role;
use pqgate_agility::Registry;

/// One AEAD's key schedule: the exporter context and secret, and the keys split from it.
struct Schedule {
    aead: &'static str,
    context: &'static str,
    exporter: &'static str,
    i2r_key: &'static str,
    i2r_iv: &'static str,
    r2i_key: &'static str,
    r2i_iv: &'static str,
}

/// One packet sealed under a [`Schedule`].
struct Vector {
    keys: &'static Schedule,
    sender: Role,
    receiver: u32,
    counter: u64,
    inner: &'static str,
    packet: &'static str,
}

const INNER: &str = "4500001c00004000400126df0a0000010a0000020800f7ff00000000";

const AES_256_GCM: Schedule = Schedule {
    aead: "AES-256-GCM",
    context: "00000000000000010b4145532d3235362d47434d\
              1111111111111111111111111111111111111111111111111111111111111111\
              2222222222222222222222222222222222222222222222222222222222222222",
    exporter: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
               202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\
               404142434445464748494a4b4c4d4e4f5051525354555657",
    i2r_key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    i2r_iv: "202122232425262728292a2b",
    r2i_key: "2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b",
    r2i_iv: "4c4d4e4f5051525354555657",
};

const CHACHA20_POLY1305: Schedule = Schedule {
    aead: "ChaCha20-Poly1305",
    context: "00000000000000011143686143686132302d506f6c7931333035\
              1111111111111111111111111111111111111111111111111111111111111111\
              2222222222222222222222222222222222222222222222222222222222222222",
    exporter: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\
               a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\
               c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7",
    i2r_key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
    i2r_iv: "a0a1a2a3a4a5a6a7a8a9aaab",
    r2i_key: "acadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacb",
    r2i_iv: "cccdcecfd0d1d2d3d4d5d6d7",
};

const VECTORS: &[Vector] = &[
    Vector {
        keys: &AES_256_GCM,
        sender: Role::Initiator,
        receiver: 0xa1b2_c3d4,
        counter: 1000,
        inner: INNER,
        packet: "11000000d4c3b2a1e803000000000000\
                 eeb22c2a14161443a9774d23ef336bfd1cbe7dabcbcc5afb9fff86443beded6c\
                 929d224613b13a40c820a29d8a975d08",
    },
    Vector {
        keys: &CHACHA20_POLY1305,
        sender: Role::Responder,
        receiver: 7,
        counter: 7,
        inner: INNER,
        packet: "11000000070000000700000000000000\
                 fe134c75a2b09999216c053a38b5a6353e907a2acfc23a4b3ef7a75f81b06e95\
                 a6ffdb21a345fa4f46b6abc79eee1349",
    },
    Vector {
        keys: &CHACHA20_POLY1305,
        sender: Role::Initiator,
        receiver: 0x5eed,
        counter: 0,
        inner: "",
        packet: "11000000ed5e00000000000000000000\
                 68ba1a50614cac5b2dc7baadc5d1c95e",
    },
];

/// The hex of a vector field, whitespace (from line continuations) removed.
fn bytes(text: &str) -> Vec<u8> {
    let clean: String = text.split_whitespace().collect();
    hex::decode(&clean).unwrap_or_else(|| panic!("bad hex in vector: {clean}"))
}

fn other(role: Role) -> Role {
    match role {
        Role::Initiator => Role::Responder,
        Role::Responder => Role::Initiator,
    }
}

/// SM4-GCM (the compiled-in plugin, `--features pqgate-agility/plugin-sm4`), from python3
/// `cryptography`'s SM4 in GCM mode.
const SM4_GCM: Schedule = Schedule {
    aead: "SM4-GCM",
    context: "000000000000000107534d342d47434d\
              1111111111111111111111111111111111111111111111111111111111111111\
              2222222222222222222222222222222222222222222222222222222222222222",
    exporter: "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\
               606162636465666768696a6b6c6d6e6f7071727374757677",
    i2r_key: "404142434445464748494a4b4c4d4e4f",
    i2r_iv: "505152535455565758595a5b",
    r2i_key: "5c5d5e5f606162636465666768696a6b",
    r2i_iv: "6c6d6e6f7071727374757677",
};

/// A packet under [`SM4_GCM`].
const SM4_VECTOR: Vector = Vector {
    keys: &SM4_GCM,
    sender: Role::Initiator,
    receiver: 0x0102_0304,
    counter: 3,
    inner: INNER,
    packet: "11000000040302010300000000000000\
             94eb5ec3d45f21c8b2735594e50efcc0994d171153373aa15ea100153ac5575e\
             6219e15a3d626410c76d6f4ba8b50634",
};

#[test]
fn vectors_match_byte_for_byte() {
    let registry = Registry::power_on();
    for v in VECTORS {
        check(&registry, v);
    }
}

#[test]
fn sm4_vector_when_compiled_in() {
    let registry = Registry::power_on();
    if registry.aead(SM4_VECTOR.keys.aead).is_none() {
        let required = std::env::var("AGILE_REQUIRE_SM4").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "AGILE_REQUIRE_SM4=1 but SM4-GCM is not compiled in"
        );
        return;
    }
    check(&registry, &SM4_VECTOR);
}

fn check(registry: &Registry, v: &Vector) {
    let aead = registry.aead(v.keys.aead).unwrap();
    let (kl, nl) = (aead.key_len(), aead.nonce_len());
    let ctx = exporter_context(1, v.keys.aead, &[0x11; 32], &[0x22; 32]).unwrap();
    assert_eq!(ctx, bytes(v.keys.context), "{} context", v.keys.aead);
    let exporter = bytes(v.keys.exporter);
    assert_eq!(exporter.len(), exporter_len(kl, nl));
    let init = derive_direction_keys(&exporter, kl, nl, Role::Initiator).unwrap();
    assert_eq!(init.send.key(), bytes(v.keys.i2r_key));
    assert_eq!(init.send.iv(), bytes(v.keys.i2r_iv));
    assert_eq!(init.recv.key(), bytes(v.keys.r2i_key));
    assert_eq!(init.recv.iv(), bytes(v.keys.r2i_iv));

    let tx = derive_direction_keys(&exporter, kl, nl, v.sender).unwrap();
    let rx = derive_direction_keys(&exporter, kl, nl, other(v.sender)).unwrap();
    let limits = Limits::for_aead(
        aead.as_ref(),
        registry.aead_confidentiality_limit(aead.name()),
        1420,
    );
    let mut sealer = Sealer::new(aead.clone(), limits, 1420).unwrap();
    sealer.install(1, v.receiver, &tx.send).unwrap();
    let mut scratch = Vec::new();
    for _ in 0..v.counter {
        scratch.clear();
        sealer.seal(&[], &mut scratch).unwrap();
    }
    let mut packet = Vec::new();
    let sealed = sealer.seal(&bytes(v.inner), &mut packet).unwrap();
    assert_eq!(sealed.counter, v.counter);
    assert_eq!(
        hex::encode(&packet),
        hex::encode(&bytes(v.packet)),
        "{}",
        v.keys.aead
    );

    let mut opener = Opener::new(aead, limits, 0);
    opener.install(0, 1, v.receiver, &rx.recv).unwrap();
    let mut inner = Vec::new();
    let opened = opener.open(0, &bytes(v.packet), &mut inner).unwrap();
    assert_eq!(inner, bytes(v.inner));
    assert_eq!(opened.counter, v.counter);
    assert_eq!(opened.len, inner.len());
}

/// A key update vector (docs/design/agile-tunnel.md section 7.5): the keys of each generation from
/// `generation_keys`, and the packet the sealer makes at `generation`/`counter` after running
/// through the earlier ones with a soft limit of `soft` packets per key.
struct UpdateVector {
    aead: &'static str,
    exporter: &'static str,
    sender: Role,
    generations: &'static [(&'static str, &'static str)],
    soft: u64,
    receiver: u32,
    counter: u64,
    packet: &'static str,
}

const UPDATE_VECTORS: &[UpdateVector] = &[
    UpdateVector {
        aead: "AES-256-GCM",
        exporter: VECTORS[0].keys.exporter,
        sender: Role::Initiator,
        generations: &[
            (
                "ba60b6e8337f0ef16fbe567be27b6d304dd9c480c33b3fb3a691dcf940565a28",
                "654debb016f7faddf13d8ba8",
            ),
            (
                "ed6287b0817d5ab67805fd1f91a53b0b09d0f6255447712e22dba94374ecd023",
                "6328bb80e1502cbd523d60b7",
            ),
        ],
        soft: 6,
        receiver: 0xa1b2_c3d4,
        counter: 5,
        packet: "11020000d4c3b2a10500000000000000\
                 cb7f06dfb8df3a5627ff11480d98ea24d53b63e8ef99c24eb3605e7bb4f81e1a\
                 a01f25f23620ea6a4d4f1c171004d4d8",
    },
    UpdateVector {
        aead: "ChaCha20-Poly1305",
        exporter: VECTORS[1].keys.exporter,
        sender: Role::Responder,
        generations: &[(
            "b1342df6db1bfe001afee1fe25e673dafe00845429720e33f5fb87eb4a841ab0",
            "35b8cce7ef15dc3b637a39ee",
        )],
        soft: 1,
        receiver: 7,
        counter: 0,
        packet: "11010000070000000000000000000000\
                 d07ffe4efc741360ad7a41ff5251ad395a94bc8b97dc867384eeaedb5fc8c0d2\
                 a48d709b3e219e6668f9bc97844eeeb7",
    },
];

#[test]
fn key_update_vectors_match_byte_for_byte() {
    let registry = Registry::power_on();
    for v in UPDATE_VECTORS {
        let aead = registry.aead(v.aead).unwrap();
        let (kl, nl) = (aead.key_len(), aead.nonce_len());
        let exporter = bytes(v.exporter);
        let tx = derive_direction_keys(&exporter, kl, nl, v.sender).unwrap();
        let rx = derive_direction_keys(&exporter, kl, nl, other(v.sender)).unwrap();
        for (g, (key, iv)) in v.generations.iter().enumerate() {
            let keys = generation_keys(&tx.send, g as u64 + 1).unwrap();
            assert_eq!(keys.key(), bytes(key), "{} generation {}", v.aead, g + 1);
            assert_eq!(keys.iv(), bytes(iv), "{} generation {}", v.aead, g + 1);
        }
        let limits = Limits::with_soft(v.soft, v.soft + 2, 1 << 30).unwrap();
        let mut sealer = Sealer::new(aead.clone(), limits, 1420).unwrap();
        let mut opener = Opener::new(aead.clone(), limits, 0);
        sealer.install(1, v.receiver, &tx.send).unwrap();
        opener.install(0, 1, v.receiver, &rx.recv).unwrap();
        let before = v.soft * v.generations.len() as u64 + v.counter;
        let mut scratch = Vec::new();
        for _ in 0..before {
            scratch.clear();
            sealer.seal(&[], &mut scratch).unwrap();
            opener.open(0, &scratch, &mut Vec::new()).unwrap();
        }
        let mut packet = Vec::new();
        let sealed = sealer.seal(&bytes(INNER), &mut packet).unwrap();
        assert_eq!(
            (sealed.generation, sealed.counter),
            (v.generations.len() as u64, v.counter)
        );
        assert_eq!(
            hex::encode(&packet),
            hex::encode(&bytes(v.packet)),
            "{}",
            v.aead
        );
        let mut inner = Vec::new();
        let opened = opener.open(0, &packet, &mut inner).unwrap();
        assert_eq!(inner, bytes(INNER));
        assert_eq!(opened.generation, v.generations.len() as u64);
    }
}
