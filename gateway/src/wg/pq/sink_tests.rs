//! `EngineSink` against a real engine over the in-memory transports (no root, no namespace;
//! nothing is sent): what `expire` and `fall_back` leave of a peer's PSK and agile keys, and
//! which static PSKs the fall-back map holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use pqgate_agility::Registry;
use pqgate_core::pqpsk::{Psk, WgKey};
use pqgate_core::wg::{Key32, PresharedKey};

use super::public_key;
use super::sink::{AgileChoice, EngineSink, StaticMap, static_map};
use crate::net::tun::TunOffloads;
use crate::pqpsk::PskSink;
use crate::wg::engine::memory::{MemNet, MemTun, MemUdp, mem_tun};
use crate::wg::engine::{Engine, PeerConfig};

const PEER: WgKey = [0x42; 32];
const PQ: [u8; 32] = [0x07; 32];
const STATIC: [u8; 32] = [0x5a; 32];
const AEAD: &str = "AES-256-GCM";

/// The sink over the in-memory transports.
type MemSink = EngineSink<MemTun, MemUdp>;

/// An engine with one peer ([`PEER`], no PSK) and a sink whose only agile peer is [`PEER`]
/// (AES-256-GCM) and whose static PSKs are `statics`.
fn sink(statics: StaticMap) -> MemSink {
    let (tun, _handle) = mem_tun(TunOffloads::default());
    let sock = MemNet::default().bind(([127, 0, 0, 1], 51820).into(), false);
    let peer = PeerConfig {
        public_key: PEER,
        preshared_key: None,
        allowed_ips: Vec::new(),
        endpoint: None,
        persistent_keepalive: None,
    };
    let engine = Engine::with_transports(vec![tun], vec![sock], 1420, [0x11; 32], vec![peer])
        .expect("engine");
    let engine = Arc::new(engine);
    let registry = Arc::new(Registry::power_on());
    let aead = registry.aead(AEAD).expect("AES-256-GCM");
    EngineSink {
        local: public_key(&engine),
        engine,
        agile: std::sync::Mutex::new(BTreeMap::from([(PEER, AgileChoice::new(aead))])),
        statics: std::sync::Mutex::new(statics),
        registry,
    }
}

/// The PSK the engine holds for [`PEER`] (all zero: none).
fn psk(s: &MemSink) -> [u8; 32] {
    let peers = s.engine.peers();
    let p = peers.iter().find(|p| p.public_key == PEER).expect("peer");
    p.preshared_key.unwrap_or([0; 32])
}

/// A fake exporter: different bytes each call (so keys and indices differ).
fn exporter(seed: &AtomicU8) -> impl Fn(&[u8], &[u8], &mut [u8]) -> bool + '_ {
    move |_label, _context, out| {
        let s = seed.fetch_add(1, Ordering::Relaxed);
        for (i, b) in out.iter_mut().enumerate() {
            *b = s.wrapping_add(i as u8).wrapping_mul(31);
        }
        true
    }
}

/// A PQ PSK and agile keys of epoch 5, as a rotation leaves them.
fn rotate(s: &MemSink, seed: &AtomicU8) {
    s.install(PEER, Psk::from_bytes(PQ), 5);
    s.install_agile(PEER, 5, true, &exporter(seed));
    assert_eq!(psk(s), PQ);
    assert!(has_agile(s, seed), "agile keys installed");
}

/// Whether [`PEER`] holds agile keys: installing epoch 0 is refused over a later epoch's keys
/// (an epoch never goes back) and accepted on a peer without any (then it holds epoch 0).
fn has_agile(s: &MemSink, seed: &AtomicU8) -> bool {
    let choice = AgileChoice::new(s.registry.aead(AEAD).expect("AEAD"));
    let build = s.agile_keys(PEER, 0, true, &choice).expect("context");
    let install = build(&exporter(seed)).expect("keys");
    s.engine.install_agile(&PEER, install).is_err()
}

#[test]
fn fall_back_installs_the_static_psk_and_drops_agile_keys() {
    let seed = AtomicU8::new(1);
    let s = sink(BTreeMap::from([(
        PEER,
        Some(PresharedKey::from_bytes(STATIC)),
    )]));
    rotate(&s, &seed);
    s.fall_back(PEER);
    assert_eq!(psk(&s), STATIC, "the static PSK for the next handshake");
    assert!(!has_agile(&s, &seed), "agile keys dropped");
}

#[test]
fn fall_back_without_a_static_psk_installs_none() {
    let seed = AtomicU8::new(1);
    let s = sink(BTreeMap::from([(PEER, None)]));
    rotate(&s, &seed);
    s.fall_back(PEER);
    assert_eq!(psk(&s), [0; 32], "no PSK");
    assert!(!has_agile(&s, &seed), "agile keys dropped");
}

#[test]
fn fall_back_of_a_peer_without_a_known_static_psk_blocks_it() {
    let seed = AtomicU8::new(1);
    let s = sink(BTreeMap::new());
    rotate(&s, &seed);
    s.fall_back(PEER);
    let now = psk(&s);
    assert!(
        now != PQ && now != STATIC && now != [0; 32],
        "a PSK nobody holds"
    );
    assert!(!has_agile(&s, &seed), "agile keys dropped");
}

#[test]
fn expire_drops_the_psk_and_the_agile_keys() {
    let seed = AtomicU8::new(1);
    let s = sink(BTreeMap::from([(
        PEER,
        Some(PresharedKey::from_bytes(STATIC)),
    )]));
    rotate(&s, &seed);
    s.expire(PEER);
    let now = psk(&s);
    assert!(
        now != PQ && now != STATIC && now != [0; 32],
        "a PSK nobody holds"
    );
    assert!(!has_agile(&s, &seed), "agile keys dropped");
    // The next epoch brings both back.
    s.install(PEER, Psk::from_bytes(PQ), 6);
    s.install_agile(PEER, 6, true, &exporter(&seed));
    assert_eq!(psk(&s), PQ);
    assert!(has_agile(&s, &seed), "agile keys of the new epoch");
}

#[test]
fn static_map_holds_the_static_psks_of_pq_preferred_peers_only() {
    const K: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const S: &str = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p.psk");
    std::fs::write(&file, format!("{S}\n")).expect("psk file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("mode");
    }
    let keys: Vec<String> = (1u8..=5)
        .map(|n| Key32::from_bytes([n; 32]).to_string())
        .collect();
    let pq = |mode: &str| format!("[wireguard.peer.pq]\nname = \"x.example\"\nmode = \"{mode}\"\n");
    let peers = [
        format!("preshared_key = \"{S}\"\n{}", pq("pq-preferred")),
        format!(
            "preshared_key_file = \"{}\"\n{}",
            file.display(),
            pq("pq-preferred")
        ),
        pq("pq-preferred"),
        format!("preshared_key = \"{S}\"\n{}", pq("pq-required")),
        format!("preshared_key = \"{S}\"\n"),
    ];
    let mut text = format!(
        "[[wireguard]]\nname = \"wg0\"\nprivate_key = \"{K}\"\n[wireguard.pq]\n\
         ca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n"
    );
    for (k, body) in keys.iter().zip(&peers) {
        text += &format!("\n[[wireguard.peer]]\npublic_key = \"{k}\"\n{body}");
    }
    let path = dir.path().join("c.toml");
    std::fs::write(&path, &text).expect("config");
    let loaded = crate::config::load(Some(&path)).expect("valid");
    let w = &loaded.config.wireguard[0];
    let mut warnings = Vec::new();
    let map = static_map(0, w, &mut warnings);
    assert!(warnings.is_empty(), "{warnings:?}");
    let want = PresharedKey::from_bytes(STATIC);
    assert_eq!(map.get(&[1; 32]), Some(&Some(want.clone())), "inline");
    assert_eq!(map.get(&[2; 32]), Some(&Some(want)), "from its file");
    assert_eq!(map.get(&[3; 32]), Some(&None), "none configured");
    assert!(
        !map.contains_key(&[4; 32]),
        "pq-required: never its static PSK"
    );
    assert!(!map.contains_key(&[5; 32]), "plain peers have no fall-back");
    std::fs::remove_file(&file).expect("remove");
    let map = static_map(0, w, &mut warnings);
    assert!(
        !map.contains_key(&[2; 32]),
        "unreadable: left out (blocked)"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("wireguard[0].peer[1].preshared_key_file"));
    assert!(!warnings[0].contains(S), "no secret in {warnings:?}");
}
