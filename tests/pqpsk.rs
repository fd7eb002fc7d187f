//! The PQ PSK channel end to end on loopback (no root): real QUIC nodes with certificates from a
//! CA made here, and a fake PSK sink that records what the WireGuard engine would be told.
//! Both sides must install identical PSKs every epoch, with and without a second KEM; peers
//! with a foreign, expired or revoked certificate are refused and counted while a good peer keeps
//! rotating; garbage datagrams change nothing.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pqgate::pqpsk::{Failure, Node, Psk, PskSink, WgKey};
use pqgate_agility::Registry;
use pqgate_core::pqpsk::config::{PqMode, PqPskConfig, PqPskPeer, SecondKem};
use support::{Leaf, Pki, Xorshift64, pqpsk_peer};

/// Rotation interval for the tests, in seconds (the shortest the config allows).
const INTERVAL_SECS: u64 = 1;

/// Upper bound on any wait for rotations (generous: debug build, shared CPU).
const WAIT_LIMIT: Duration = Duration::from_secs(40);

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::power_on)
}

/// Which side a key ends up on: the lower key initiates.
const KEY_A: WgKey = [0xa0; 32];
const KEY_B: WgKey = [0x10; 32];

#[derive(Clone, Debug, PartialEq)]
enum Record {
    Install(WgKey, u64, [u8; 32]),
    Force(WgKey),
    Expire(WgKey),
    FallBack(WgKey),
}

#[derive(Default)]
struct FakeSink(Mutex<Vec<Record>>);

impl PskSink for FakeSink {
    fn install(&self, peer: WgKey, psk: Psk, epoch: u64) {
        self.0
            .lock()
            .unwrap()
            .push(Record::Install(peer, epoch, *psk.expose()));
    }
    fn force_handshake(&self, peer: WgKey) {
        self.0.lock().unwrap().push(Record::Force(peer));
    }
    fn expire(&self, peer: WgKey) {
        self.0.lock().unwrap().push(Record::Expire(peer));
    }
    fn fall_back(&self, peer: WgKey) {
        self.0.lock().unwrap().push(Record::FallBack(peer));
    }
}

impl FakeSink {
    fn records(&self) -> Vec<Record> {
        self.0.lock().unwrap().clone()
    }
    /// Installs for `peer`, as (epoch, psk), in order.
    fn installs(&self, peer: WgKey) -> Vec<(u64, [u8; 32])> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Install(p, e, k) if p == peer => Some((e, k)),
                _ => None,
            })
            .collect()
    }
}

fn config(ca: &Path, leaf: &Leaf, kem: SecondKem, peers: Vec<PqPskPeer>) -> PqPskConfig {
    PqPskConfig {
        ca: ca.to_owned(),
        crl: Vec::new(),
        cert: leaf.cert.clone(),
        key: leaf.key.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        rotation_interval_secs: INTERVAL_SECS,
        mode: PqMode::Preferred,
        second_kem: kem,
        profile: "pq-hybrid".into(),
        peer: peers,
    }
}

async fn start(c: &PqPskConfig, key: WgKey, sink: &Arc<FakeSink>) -> Node {
    let sink: Arc<dyn PskSink> = sink.clone();
    Node::start(c, key, registry(), sink).await.unwrap()
}

/// Waits (bounded) until `done` holds, polling every 100 ms.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that the two sinks hold identical PSKs for the epochs both installed, that there are
/// at least `n` distinct epochs, and that consecutive epochs have different PSKs.
fn assert_same_psks(a: &FakeSink, b: &FakeSink, n: usize) {
    let from_a = a.installs(KEY_B);
    let from_b = b.installs(KEY_A);
    let mut epochs: Vec<u64> = from_a.iter().map(|(e, _)| *e).collect();
    epochs.dedup();
    assert!(epochs.len() >= n, "epochs {epochs:?}");
    let mut compared = 0;
    for (epoch, psk) in &from_a {
        // The last install per epoch on each side (a new channel re-keys its epoch).
        let last_a = from_a.iter().rev().find(|(e, _)| e == epoch).unwrap().1;
        if let Some((_, psk_b)) = from_b.iter().rev().find(|(e, _)| e == epoch) {
            assert_eq!(&last_a, psk_b, "epoch {epoch}");
            compared += 1;
        }
        assert_ne!(psk, &[0u8; 32]);
    }
    assert!(compared >= n, "only {compared} epochs on both sides");
    for pair in from_a.windows(2) {
        if pair[0].0 != pair[1].0 {
            assert_ne!(
                pair[0].1, pair[1].1,
                "epochs {} and {}",
                pair[0].0, pair[1].0
            );
        }
    }
}

/// Two nodes on one CA: A (higher key, responder) and B (initiator, connects to A).
struct Pair {
    _dir: tempfile::TempDir,
    a: Node,
    b: Node,
    sink_a: Arc<FakeSink>,
    sink_b: Arc<FakeSink>,
    addr_a: SocketAddr,
}

async fn start_pair(kem: SecondKem, profile: &str, mode: PqMode) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::with_alg(dir.path(), "main", &rcgen::PKCS_ML_DSA_65);
    let leaf_a = ca.issue_serial("a", "a.pqgate.test", 1, false);
    let leaf_b = ca.issue_serial("b", "b.pqgate.test", 2, false);
    let (sink_a, sink_b) = (Arc::new(FakeSink::default()), Arc::new(FakeSink::default()));
    let mut cfg_a = config(
        &ca.ca_file(),
        &leaf_a,
        kem,
        vec![pqpsk_peer(KEY_B, None, "b.pqgate.test")],
    );
    cfg_a.profile = profile.into();
    cfg_a.mode = mode;
    let a = start(&cfg_a, KEY_A, &sink_a).await;
    let addr_a = a.local_addr().unwrap();
    let to_a = vec![pqpsk_peer(KEY_A, Some(addr_a), "a.pqgate.test")];
    let mut cfg_b = config(&ca.ca_file(), &leaf_b, kem, to_a);
    cfg_b.profile = profile.into();
    cfg_b.mode = mode;
    let b = start(&cfg_b, KEY_B, &sink_b).await;
    Pair {
        _dir: dir,
        a,
        b,
        sink_a,
        sink_b,
        addr_a,
    }
}

/// Two nodes rotating with `kem` and `profile`; returns after both installed `epochs` epochs.
async fn rotate_pair(kem: SecondKem, profile: &str, epochs: usize, garbage: bool) {
    let Pair {
        _dir,
        a,
        b,
        sink_a,
        sink_b,
        addr_a,
    } = start_pair(kem, profile, PqMode::Preferred).await;
    let enough = |n: usize| {
        let (sa, sb) = (sink_a.clone(), sink_b.clone());
        move || {
            let distinct = |v: Vec<(u64, [u8; 32])>| {
                let mut e: Vec<u64> = v.into_iter().map(|(e, _)| e).collect();
                e.dedup();
                e.len()
            };
            distinct(sa.installs(KEY_B)) >= n && distinct(sb.installs(KEY_A)) >= n
        }
    };
    wait_for("rotations", enough(epochs)).await;
    assert_same_psks(&sink_a, &sink_b, epochs);
    // The initiator forces a handshake after each install; the responder never does.
    let forces = |s: &FakeSink, k| {
        s.records()
            .iter()
            .filter(|r| **r == Record::Force(k))
            .count()
    };
    assert!(forces(&sink_b, KEY_A) >= epochs);
    assert_eq!(forces(&sink_a, KEY_B), 0);
    assert!(
        !sink_a
            .records()
            .iter()
            .any(|r| matches!(r, Record::Expire(_)))
    );
    let (key, status) = &b.status()[0];
    assert_eq!(key, &KEY_A);
    assert!(status.rotations >= epochs as u64 && status.channel_up);
    assert_eq!(status.kem, kem.kem_id());
    assert!(status.last_rotation_ms.is_some());
    if garbage {
        send_garbage(addr_a);
        let before = sink_a.installs(KEY_B).len();
        wait_for("rotations after garbage", || {
            sink_a.installs(KEY_B).len() >= before + 2
        })
        .await;
        assert_same_psks(&sink_a, &sink_b, epochs + 2);
        assert_eq!(
            a.failures().nonzero(),
            vec![],
            "garbage was counted as a peer"
        );
        let failures = a.status()[0].1.failures.clone();
        assert_eq!(failures.get(Failure::Channel), 0, "{failures:?}");
    }
    b.shutdown().await;
    a.shutdown().await;
}

/// 1000 datagrams of pseudo-random bytes and sizes, some shaped like QUIC long headers.
fn send_garbage(to: SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut noise = Xorshift64(0x2545_f491_4f6c_dd1d);
    for i in 0..1000 {
        let len = 1 + (i * 37) % 1400;
        let mut buf: Vec<u8> = noise.by_ref().take(len).collect();
        if i % 3 == 0 {
            buf[0] |= 0xc0; // long header, version 1 below
            if len > 5 {
                buf[1..5].copy_from_slice(&1u32.to_be_bytes());
            }
        }
        let _ = sock.send_to(&buf, to);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_epochs_identical_psks_then_garbage_changes_nothing() {
    rotate_pair(SecondKem::None, "pq-hybrid", 3, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mceliece_and_hqc_derive_identical_psks_cnsa2_too() {
    rotate_pair(SecondKem::ClassicMceliece460896, "pq-hybrid", 2, false).await;
    // CNSA 2.0: MLKEM1024 and AES-256-GCM on the channel, HKDF-SHA384 for the PSK.
    rotate_pair(SecondKem::Hqc128, "cnsa2", 2, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_expired_revoked_and_misnamed_peers_are_refused_while_a_good_one_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::with_alg(dir.path(), "main", &rcgen::PKCS_ECDSA_P256_SHA256);
    let other = Pki::with_alg(dir.path(), "other", &rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf_a = ca.issue_serial("a", "a.pqgate.test", 1, false);
    let leaf_b = ca.issue_serial("b", "b.pqgate.test", 2, false);
    let leaf_c = other.issue_serial("c", "c.pqgate.test", 3, false);
    let leaf_d = ca.issue_serial("d", "d.pqgate.test", 4, true);
    let leaf_e = ca.issue_serial("e", "e.pqgate.test", 5, false);
    // A valid certificate, but for another name than A expects for that key.
    let leaf_f = ca.issue_serial("f", "not-f.pqgate.test", 6, false);
    let crl = ca.crl(&[5]);
    let (kc, kd, ke, kf) = ([0x20; 32], [0x30; 32], [0x40; 32], [0x50; 32]);
    let sink_a = Arc::new(FakeSink::default());
    let mut cfg_a = config(
        &ca.ca_file(),
        &leaf_a,
        SecondKem::None,
        vec![
            pqpsk_peer(KEY_B, None, "b.pqgate.test"),
            pqpsk_peer(kc, None, "c.pqgate.test"),
            pqpsk_peer(kd, None, "d.pqgate.test"),
            pqpsk_peer(ke, None, "e.pqgate.test"),
            pqpsk_peer(kf, None, "f.pqgate.test"),
        ],
    );
    cfg_a.crl = vec![crl];
    let a = start(&cfg_a, KEY_A, &sink_a).await;
    let addr_a = a.local_addr().unwrap();
    let to_a = vec![pqpsk_peer(KEY_A, Some(addr_a), "a.pqgate.test")];
    let mut nodes = Vec::new();
    let mut sinks = Vec::new();
    for (key, leaf) in [
        (KEY_B, &leaf_b),
        (kc, &leaf_c),
        (kd, &leaf_d),
        (ke, &leaf_e),
        (kf, &leaf_f),
    ] {
        let sink = Arc::new(FakeSink::default());
        let c = config(&ca.ca_file(), leaf, SecondKem::None, to_a.clone());
        nodes.push(start(&c, key, &sink).await);
        sinks.push(sink);
    }
    wait_for("refusals and good rotations", || {
        let f = a.failures();
        f.get(Failure::CertUnknownCa) >= 1
            && f.get(Failure::CertExpired) >= 1
            && f.get(Failure::CertRevoked) >= 1
            && f.get(Failure::UnknownPeer) >= 1
            && sinks[0].installs(KEY_A).len() >= 3
    })
    .await;
    for (i, key) in [kc, kd, ke, kf].iter().enumerate() {
        assert!(
            sink_a.installs(*key).is_empty(),
            "A installed a PSK for bad peer {i}"
        );
        assert!(
            sinks[i + 1].installs(KEY_A).is_empty(),
            "bad peer {i} installed a PSK"
        );
        let status = &a.status()[i + 1].1;
        assert_eq!((status.epoch, status.channel_up), (None, false));
    }
    // The good peer's PSKs match on both sides.
    let good = &sinks[0];
    for (epoch, psk) in good.installs(KEY_A) {
        let on_a = sink_a.installs(KEY_B);
        let mine = on_a.iter().rev().find(|(e, _)| *e == epoch);
        assert_eq!(mine.map(|(_, k)| k), Some(&psk), "epoch {epoch}");
    }
    for n in nodes {
        n.shutdown().await;
    }
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pq_required_expires_the_peer_once_the_channel_is_gone() {
    let p = start_pair(SecondKem::None, "pq-hybrid", PqMode::Required).await;
    let expires = |s: &FakeSink| {
        s.records()
            .iter()
            .filter(|r| matches!(r, Record::Expire(_)))
            .count()
    };
    wait_for("two rotations", || p.sink_a.installs(KEY_B).len() >= 2).await;
    // Fail closed from the start: each side expired the peer before its first PQ PSK.
    let first_install = |s: &FakeSink| {
        s.records()
            .iter()
            .position(|r| matches!(r, Record::Install(..)))
    };
    let first_expire = |s: &FakeSink| {
        s.records()
            .iter()
            .position(|r| matches!(r, Record::Expire(_)))
    };
    assert!(first_expire(&p.sink_a) < first_install(&p.sink_a));
    let before = expires(&p.sink_a);
    // At least the start-up one (a stalled test host may have let a PSK lapse once more).
    assert!(before >= 1);
    // The initiator goes away: no more rotations; A expires B once the last PSK's life ends.
    p.b.shutdown().await;
    wait_for("expiry", || expires(&p.sink_a) > before).await;
    let status = &p.a.status()[0].1;
    assert!(status.expired);
    assert!(status.failures.get(Failure::Expired) >= 1);
    assert_eq!(p.sink_a.records().last(), Some(&Record::Expire(KEY_B)));
    p.a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_added_and_removed_live() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::with_alg(dir.path(), "main", &rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf_a = ca.issue_serial("a", "a.pqgate.test", 1, false);
    let leaf_b = ca.issue_serial("b", "b.pqgate.test", 2, false);
    let (sink_a, sink_b) = (Arc::new(FakeSink::default()), Arc::new(FakeSink::default()));
    // A starts knowing nobody: B's channel is refused as an unknown peer.
    let a = start(
        &config(&ca.ca_file(), &leaf_a, SecondKem::None, Vec::new()),
        KEY_A,
        &sink_a,
    )
    .await;
    let to_a = vec![pqpsk_peer(
        KEY_A,
        Some(a.local_addr().unwrap()),
        "a.pqgate.test",
    )];
    let b = start(
        &config(&ca.ca_file(), &leaf_b, SecondKem::None, to_a),
        KEY_B,
        &sink_b,
    )
    .await;
    wait_for("unknown-peer refusal", || {
        a.failures().get(Failure::UnknownPeer) >= 1
    })
    .await;
    assert!(sink_a.records().is_empty() && sink_b.installs(KEY_A).is_empty());
    // Added live: rotations start.
    let b_on_a = pqpsk_peer(KEY_B, None, "b.pqgate.test");
    a.add_peer(&b_on_a).await.unwrap();
    assert!(a.add_peer(&b_on_a).await.is_err(), "a duplicate was added");
    wait_for("rotations after adding", || {
        sink_b.installs(KEY_A).len() >= 2
    })
    .await;
    assert_same_psks(&sink_a, &sink_b, 2);
    // Removed live: the channel closes, B's next attempts are refused, nothing more installed.
    assert!(a.remove_peer(&KEY_B));
    assert!(!a.remove_peer(&KEY_B));
    assert!(a.status().is_empty());
    let refused = a.failures().get(Failure::UnknownPeer);
    wait_for("refusal after removal", || {
        a.failures().get(Failure::UnknownPeer) > refused
    })
    .await;
    let installed = sink_a.installs(KEY_B).len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink_a.installs(KEY_B).len(), installed);
    b.shutdown().await;
    a.shutdown().await;
}

#[test]
fn config_reads_from_toml_with_defaults_and_refuses_unknown_keys() {
    let text = r#"
        ca = "/etc/pqgate/ca.pem"
        crl = ["/etc/pqgate/ca.crl"]
        cert = "/etc/pqgate/me.pem"
        key = "/etc/pqgate/me.key"
        listen = "0.0.0.0:51821"
        second_kem = "classic-mceliece-460896"

        [[peer]]
        public_key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
        address = "192.0.2.7:51821"
        name = "gw-b.example"
        mode = "pq-preferred"
        second_kem = "hqc-128"
    "#;
    let c: PqPskConfig = toml::from_str(text).unwrap();
    assert_eq!(c.rotation_interval_secs, 120);
    assert_eq!(c.mode, PqMode::Required);
    assert_eq!(c.profile, "pq-hybrid");
    assert_eq!(c.second_kem, SecondKem::ClassicMceliece460896);
    assert_eq!(c.peer[0].mode, Some(PqMode::Preferred));
    assert_eq!(c.peer[0].second_kem, Some(SecondKem::Hqc128));
    assert!(pqgate_core::pqpsk::config::validate("pqpsk", &c).is_empty());
    let typo = text.replace("listen =", "listne =");
    assert!(toml::from_str::<PqPskConfig>(&typo).is_err());
    let bad_mode = text.replace("pq-preferred", "pq-maybe");
    assert!(toml::from_str::<PqPskConfig>(&bad_mode).is_err());
}

/// A TLS reload on a running node: a corrupt certificate is refused by its config key and the
/// channel keeps rotating; a CRL that revokes the peer closes its live channel (counted) and
/// its reconnects are refused; the peer's renewed certificate (same name and files, new serial)
/// brings the channel back once the peer reloads too. No node restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_reload_closes_revoked_channels_and_takes_renewed_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::with_alg(dir.path(), "main", &rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf_a = ca.issue_serial("a", "a.pqgate.test", 1, false);
    let leaf_b = ca.issue_serial("b", "b.pqgate.test", 2, false);
    let crl = ca.crl(&[]);
    let (sink_a, sink_b) = (Arc::new(FakeSink::default()), Arc::new(FakeSink::default()));
    let mut cfg_a = config(
        &ca.ca_file(),
        &leaf_a,
        SecondKem::None,
        vec![pqpsk_peer(KEY_B, None, "b.pqgate.test")],
    );
    cfg_a.crl = vec![crl.clone()];
    let a = start(&cfg_a, KEY_A, &sink_a).await;
    let to_a = vec![pqpsk_peer(
        KEY_A,
        Some(a.local_addr().unwrap()),
        "a.pqgate.test",
    )];
    let mut cfg_b = config(&ca.ca_file(), &leaf_b, SecondKem::None, to_a);
    cfg_b.crl = vec![crl];
    let b = start(&cfg_b, KEY_B, &sink_b).await;
    let up = |n: &Node| n.status()[0].1.channel_up;
    wait_for("the channel", || {
        up(&a) && up(&b) && !sink_a.installs(KEY_B).is_empty()
    })
    .await;

    // A corrupt certificate: refused by key, the running material stays.
    let mut corrupt = cfg_a.clone();
    corrupt.cert = dir.path().join("corrupt.pem");
    std::fs::write(&corrupt.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let err = a.reload_tls(&corrupt, registry()).unwrap_err();
    assert_eq!(err.key(), "pqpsk.cert", "{err}");
    // Readable, but A's own certificate fails under it: a CA bundle of another CA, an expired
    // certificate of A. Refused by key; nothing is swapped in, no channel closes.
    let other = Pki::with_alg(dir.path(), "other", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut foreign = cfg_a.clone();
    foreign.ca = other.ca_file();
    let err = a.reload_tls(&foreign, registry()).unwrap_err();
    assert_eq!(err.key(), "pqpsk.ca", "{err}");
    let old = ca.issue_serial("a-old", "a.pqgate.test", 9, true);
    let mut expired = cfg_a.clone();
    (expired.cert, expired.key) = (old.cert, old.key);
    let err = a.reload_tls(&expired, registry()).unwrap_err();
    assert_eq!(err.key(), "pqpsk.cert", "{err}");
    assert!(up(&a), "a refused reload closed the channel");
    let n = sink_a.installs(KEY_B).len();
    wait_for("rotations after the failed reload", || {
        sink_a.installs(KEY_B).len() > n && sink_b.installs(KEY_A).len() > n
    })
    .await;
    assert!(up(&a) && up(&b));
    let fell_back = |s: &FakeSink| s.records().contains(&Record::FallBack(KEY_B));
    assert!(!fell_back(&sink_a), "a refused reload fell back");

    // Revoke B (the CRL file is rewritten in place) and reload A only.
    ca.crl(&[2]);
    let done = a.reload_tls(&cfg_a, registry()).unwrap();
    assert_eq!(done.closed, [(KEY_B, Failure::CertRevoked)]);
    assert!(!done.crl_stale);
    // At once, not when B's last PSK expires: pq-preferred B falls back to its static PSK
    // (the last call for B), and the status says expired.
    let last_for_b = |s: &FakeSink| {
        let records = s.records();
        records.into_iter().rev().find(|r| match r {
            Record::Install(k, ..) | Record::Force(k) | Record::Expire(k) | Record::FallBack(k) => {
                *k == KEY_B
            }
        })
    };
    assert_eq!(last_for_b(&sink_a), Some(Record::FallBack(KEY_B)));
    let status = &a.status()[0].1;
    assert!(status.expired && !status.channel_up);
    assert_eq!(
        done.leaf, done.previous,
        "A's own certificate did not change"
    );
    wait_for("B's reconnects refused", || {
        !up(&a) && a.failures().get(Failure::CertRevoked) >= 1
    })
    .await;
    assert!(a.status()[0].1.failures.get(Failure::CertRevoked) >= 1);
    let refused = a.failures().get(Failure::CertRevoked);
    let installs = (sink_a.installs(KEY_B).len(), sink_b.installs(KEY_A).len());
    wait_for("more refusals", || {
        a.failures().get(Failure::CertRevoked) > refused
    })
    .await;
    assert!(!up(&a));
    assert_eq!(
        sink_a.installs(KEY_B).len(),
        installs.0,
        "A installed for B"
    );

    // Renew B's certificate at the same paths and reload B: the channel comes back.
    ca.issue_serial("b", "b.pqgate.test", 3, false);
    let done = b.reload_tls(&cfg_b, registry()).unwrap();
    assert!(done.closed.is_empty());
    assert_ne!(done.leaf, done.previous, "B's certificate changed");
    assert_eq!(done.leaf.as_ref().map(|s| s.serial.as_str()), Some("03"));
    wait_for("the channel again", || {
        up(&a)
            && up(&b)
            && sink_a.installs(KEY_B).len() > installs.0
            && sink_b.installs(KEY_A).len() > installs.1
    })
    .await;
    assert_same_psks(&sink_a, &sink_b, 2);
    assert!(!a.status()[0].1.expired, "a new PSK ends the expired state");
    b.shutdown().await;
    a.shutdown().await;
}
