//! Unit tests of the rotation state machine: two machines wired back to back through a fake
//! channel whose exporter and KEMs are deterministic stand-ins.

use std::collections::VecDeque;

use super::*;

const INTERVAL: u64 = 10_000;
const LOW: WgKey = [0x11; 32];
const HIGH: WgKey = [0x22; 32];

/// Stand-in crypto: the exporter is SHA-256(connection secret || context); the "KEM" returns a
/// shared secret that both ends compute equally only when the bytes arrive intact.
struct Fake {
    conn: u8,
    fail_kem: bool,
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn kem_err() -> CryptoError {
    CryptoError::Kem {
        op: "fake",
        reason: "asked to fail".into(),
    }
}

impl ChannelCrypto for Fake {
    fn exporter(&self, context: &[u8; CONTEXT_LEN]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        Ok(Zeroizing::new(sha(&[&[self.conn], context])))
    }
    fn static_public(&self, _: KemId) -> Result<Vec<u8>, CryptoError> {
        Ok(b"static".to_vec())
    }
    fn public_key_ok(&self, _: KemId, public: &[u8]) -> bool {
        public == b"static"
    }
    fn keypair(&self, _: KemId) -> Result<(Vec<u8>, Secret), CryptoError> {
        if self.fail_kem {
            return Err(kem_err());
        }
        Ok((b"eph".to_vec(), Secret::new(b"eph".to_vec())))
    }
    fn encapsulate(&self, _: KemId, public: &[u8]) -> Result<(Vec<u8>, Secret), CryptoError> {
        let ct = sha(&[public, b"ct"]).to_vec();
        Ok((ct.clone(), Secret::new(sha(&[public, &ct]).to_vec())))
    }
    fn decapsulate(&self, _: KemId, secret: &[u8], ct: &[u8]) -> Result<Secret, CryptoError> {
        Ok(Secret::new(sha(&[secret, ct]).to_vec()))
    }
    fn decapsulate_static(&self, _: KemId, ct: &[u8]) -> Result<Secret, CryptoError> {
        Ok(Secret::new(sha(&[b"static", ct]).to_vec()))
    }
}

fn params(local: WgKey, remote: WgKey, kem: KemId, mode: PqMode) -> PeerParams {
    PeerParams {
        local,
        remote,
        kem,
        hash: KdfHash::Sha256,
        mode,
        schedule: Schedule::new(INTERVAL).unwrap(),
    }
}

/// Two machines and what each installed, with a message queue between them.
struct Pair {
    init: PeerMachine,
    resp: PeerMachine,
    crypto: Fake,
    init_installs: Vec<(u64, Psk)>,
    resp_installs: Vec<(u64, Psk)>,
    /// Every side effect in order, as (side, what), side 'I' or 'R'.
    log: Vec<(char, String)>,
}

impl Pair {
    fn new(kem: KemId, mode: PqMode) -> Self {
        Self {
            init: PeerMachine::new(params(LOW, HIGH, kem, mode)),
            resp: PeerMachine::new(params(HIGH, LOW, kem, mode)),
            crypto: Fake {
                conn: 1,
                fail_kem: false,
            },
            init_installs: Vec::new(),
            resp_installs: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Feeds `event` to one side, then delivers messages back and forth until quiet.
    fn run(&mut self, now: u64, to_init: bool, event: Event) {
        self.pump(now, VecDeque::from([(to_init, event)]));
    }

    fn pump(&mut self, now: u64, mut queue: VecDeque<(bool, Event)>) {
        while let Some((to_init, ev)) = queue.pop_front() {
            let m = if to_init {
                &mut self.init
            } else {
                &mut self.resp
            };
            let out = m.handle(now, ev, &self.crypto);
            self.record(to_init, out, &mut queue);
        }
    }

    /// Logs side effects and queues sent messages for the other side.
    fn record(&mut self, to_init: bool, out: Vec<Action>, queue: &mut VecDeque<(bool, Event)>) {
        let side = if to_init { 'I' } else { 'R' };
        for a in out {
            match a {
                Action::Send(Message::Hello { .. }) => self.log.push((side, "hello".into())),
                Action::Send(msg) => queue.push_back((!to_init, Event::Message(msg))),
                Action::Install { epoch, psk } => {
                    self.log.push((side, format!("install {epoch}")));
                    if to_init {
                        self.init_installs.push((epoch, psk));
                    } else {
                        self.resp_installs.push((epoch, psk));
                    }
                }
                other => self.log.push((side, format!("{other:?}"))),
            }
        }
    }

    /// As on the wire: the initiator's Hello reaches the responder's driver, which raises the
    /// responder's ChannelUp before the initiator's next messages.
    fn up(&mut self, now: u64) {
        let out = self.init.handle(now, Event::ChannelUp, &self.crypto);
        let mut queue = VecDeque::from([(false, Event::ChannelUp)]);
        self.record(true, out, &mut queue);
        self.pump(now, queue);
    }

    fn tick_both(&mut self, now: u64) {
        self.run(now, true, Event::Tick);
        self.run(now, false, Event::Tick);
    }
}

#[test]
fn roles_follow_the_key_order() {
    assert_eq!(Role::for_keys(&LOW, &HIGH), Role::Initiator);
    assert_eq!(Role::for_keys(&HIGH, &LOW), Role::Responder);
}

#[test]
fn three_epochs_install_identical_psks_responder_first() {
    for kem in [KemId::None, KemId::McEliece460896, KemId::Hqc128] {
        let mut p = Pair::new(kem, PqMode::Preferred);
        let t0 = 5 * INTERVAL + 100;
        p.up(t0);
        for k in 1..=2 {
            let now = (5 + k) * INTERVAL + 1;
            assert!(p.init.next_deadline().unwrap() <= now);
            p.tick_both(now);
        }
        let epochs: Vec<u64> = p.init_installs.iter().map(|(e, _)| *e).collect();
        assert_eq!(epochs, [5, 6, 7], "{kem:?}");
        assert_eq!(p.init_installs, p.resp_installs, "{kem:?}");
        assert_ne!(p.init_installs[0].1, p.init_installs[1].1);
        // Per epoch: the responder installs, then the initiator installs and forces a handshake.
        let order: Vec<String> = p
            .log
            .iter()
            .filter(|(_, w)| w != "hello")
            .map(|(s, w)| format!("{s} {w}"))
            .collect();
        assert_eq!(
            &order[..3],
            ["R install 5", "I install 5", "I ForceHandshake"],
            "{kem:?}"
        );
        assert_eq!(p.init.phase(), Phase::Installed(7));
        let st = p.resp.status();
        assert_eq!((st.epoch, st.rotations, st.kem), (Some(7), 3, kem));
        assert_eq!(st.last_rotation_ms, Some(7 * INTERVAL + 1));
    }
}

#[test]
fn kems_change_the_psk() {
    let mut psks = Vec::new();
    for kem in [KemId::None, KemId::McEliece460896, KemId::Hqc128] {
        let mut p = Pair::new(kem, PqMode::Preferred);
        p.up(INTERVAL);
        psks.push(p.init_installs.remove(0).1);
    }
    assert_ne!(psks[0], psks[1]);
    assert_ne!(psks[1], psks[2]);
}

#[test]
fn a_new_channel_rotates_at_once_and_gets_a_new_psk() {
    let mut p = Pair::new(KemId::None, PqMode::Required);
    p.up(INTERVAL + 5);
    p.run(INTERVAL + 10, true, Event::ChannelLost);
    p.run(INTERVAL + 10, false, Event::ChannelLost);
    p.crypto.conn = 2;
    p.up(INTERVAL + 20);
    assert_eq!(p.init_installs.len(), 2);
    assert_eq!(p.resp_installs.len(), 2);
    assert_eq!(p.init_installs[1].0, 1);
    assert_ne!(p.init_installs[0].1, p.init_installs[1].1);
    assert_eq!(p.init_installs, p.resp_installs);
    assert_eq!(p.init.status().failures.get(Failure::Channel), 1);
}

#[test]
fn pq_required_fails_closed_and_expires() {
    let mut p = Pair::new(KemId::None, PqMode::Required);
    // Nothing installed yet: the first tick expires (no data before a PQ PSK).
    p.run(0, true, Event::Tick);
    assert!(p.log.iter().any(|(s, w)| *s == 'I' && w == "Expire"));
    p.log.clear();
    p.up(INTERVAL);
    p.run(INTERVAL + 1, true, Event::ChannelLost);
    p.run(INTERVAL + 1, false, Event::ChannelLost);
    let expiry = Schedule::new(INTERVAL).unwrap().expiry(1);
    assert_eq!(p.resp.next_deadline(), Some(expiry));
    p.tick_both(expiry - 1);
    assert!(!p.log.iter().any(|(_, w)| w == "Expire"));
    p.tick_both(expiry);
    let expires = p.log.iter().filter(|(_, w)| w == "Expire").count();
    assert_eq!(expires, 2);
    assert!(p.init.status().expired);
    assert_eq!(p.resp.status().failures.get(Failure::Expired), 1);
    // Only once.
    p.tick_both(expiry + 1);
    assert_eq!(p.log.iter().filter(|(_, w)| w == "Expire").count(), 2);
}

#[test]
fn pq_preferred_degrades_instead() {
    let mut p = Pair::new(KemId::None, PqMode::Preferred);
    p.run(0, true, Event::Tick);
    assert!(p.log.is_empty(), "{:?}", p.log);
    p.up(INTERVAL);
    p.run(INTERVAL, true, Event::ChannelLost);
    p.tick_both(Schedule::new(INTERVAL).unwrap().expiry(1));
    assert_eq!(p.log.iter().filter(|(_, w)| w == "Degraded").count(), 2);
    assert!(!p.log.iter().any(|(_, w)| w == "Expire"));
}

#[test]
fn responder_refuses_bad_epochs() {
    let mut p = Pair::new(KemId::None, PqMode::Preferred);
    p.run(10 * INTERVAL, false, Event::ChannelUp);
    let c = &p.crypto;
    let rotate = |epoch| {
        Event::Message(Message::Rotate {
            epoch,
            offer: Vec::new(),
        })
    };
    for epoch in [8, 12, u64::MAX] {
        let out = p.resp.handle(10 * INTERVAL, rotate(epoch), c);
        assert!(matches!(
            out.last(),
            Some(Action::Send(Message::Refuse {
                reason: RefuseReason::BadEpoch,
                ..
            }))
        ));
    }
    let out = p.resp.handle(10 * INTERVAL, rotate(10), c);
    assert!(matches!(out[0], Action::Install { epoch: 10, .. }));
    // Replayed on the same channel: refused.
    let out = p.resp.handle(10 * INTERVAL, rotate(10), c);
    assert!(matches!(out[0], Action::Failed(Failure::BadEpoch)));
    // KEM data where none was negotiated: refused.
    let out = p.resp.handle(
        10 * INTERVAL,
        Event::Message(Message::Rotate {
            epoch: 11,
            offer: vec![1],
        }),
        c,
    );
    assert!(matches!(out[0], Action::Failed(Failure::Kem)));
    assert_eq!(p.resp.status().failures.get(Failure::BadEpoch), 4);
}

#[test]
fn out_of_place_messages_close_the_channel() {
    let mut p = Pair::new(KemId::McEliece460896, PqMode::Preferred);
    let c = &p.crypto;
    // No channel yet.
    let out = p.resp.handle(
        0,
        Event::Message(Message::Installed {
            epoch: 0,
            reply: vec![],
        }),
        c,
    );
    assert!(matches!(
        out[..],
        [Action::Failed(Failure::Protocol), Action::CloseChannel]
    ));
    p.resp.handle(0, Event::ChannelUp, c);
    let hello = Message::Hello {
        initiator: LOW,
        responder: HIGH,
        kem: KemId::McEliece460896,
    };
    let out = p.resp.handle(0, Event::Message(hello), c);
    assert!(matches!(
        out[..],
        [Action::Failed(Failure::Protocol), Action::CloseChannel]
    ));
    // Initiator: an Installed for an epoch it never proposed.
    p.init.handle(0, Event::ChannelUp, c);
    let out = p.init.handle(
        0,
        Event::Message(Message::Installed {
            epoch: 3,
            reply: vec![],
        }),
        c,
    );
    assert!(matches!(
        out[..],
        [Action::Failed(Failure::Protocol), Action::CloseChannel]
    ));
    // A second static key on one channel.
    let sk = || {
        Event::Message(Message::StaticKey {
            kem: KemId::McEliece460896,
            public: b"static".to_vec(),
        })
    };
    let out = p.init.handle(0, sk(), c);
    assert!(matches!(out[..], [Action::Send(Message::Rotate { .. })]));
    let out = p.init.handle(0, sk(), c);
    assert!(matches!(
        out[..],
        [Action::Failed(Failure::Protocol), Action::CloseChannel]
    ));
    // A static key of the wrong shape on a new channel.
    p.init.handle(0, Event::ChannelLost, c);
    p.init.handle(0, Event::ChannelUp, c);
    let bad = Event::Message(Message::StaticKey {
        kem: KemId::McEliece460896,
        public: b"short".to_vec(),
    });
    let out = p.init.handle(0, bad, c);
    assert!(matches!(
        out[..],
        [Action::Failed(Failure::Protocol), Action::CloseChannel]
    ));
}

#[test]
fn hello_checks() {
    let p = Pair::new(KemId::Hqc128, PqMode::Preferred);
    assert!(p.resp.accepts_hello(&LOW, &HIGH, KemId::Hqc128));
    assert!(!p.resp.accepts_hello(&LOW, &HIGH, KemId::None));
    assert!(!p.resp.accepts_hello(&HIGH, &LOW, KemId::Hqc128));
    assert!(!p.resp.accepts_hello(&LOW, &[0x33; 32], KemId::Hqc128));
    assert!(!p.init.accepts_hello(&HIGH, &LOW, KemId::Hqc128));
}

#[test]
fn timeouts_and_kem_failures_retry_later() {
    let mut p = Pair::new(KemId::Hqc128, PqMode::Preferred);
    let s = Schedule::new(INTERVAL).unwrap();
    // The initiator proposes but no answer comes.
    let out = p.init.handle(INTERVAL, Event::ChannelUp, &p.crypto);
    assert!(matches!(
        out.last(),
        Some(Action::Send(Message::Rotate { epoch: 1, .. }))
    ));
    let timeout = INTERVAL + s.answer_timeout_ms();
    assert_eq!(p.init.next_deadline(), Some(timeout));
    let out = p.init.handle(timeout, Event::Tick, &p.crypto);
    assert!(matches!(out[..], [Action::Failed(Failure::Timeout)]));
    assert_eq!(p.init.next_deadline(), Some(timeout + s.retry_ms()));
    // Key generation fails: counted, retried after the back-off.
    p.crypto.fail_kem = true;
    let out = p
        .init
        .handle(timeout + s.retry_ms(), Event::Tick, &p.crypto);
    assert!(matches!(out[..], [Action::Failed(Failure::Kem)]));
    p.crypto.fail_kem = false;
    let out = p
        .init
        .handle(timeout + 2 * s.retry_ms(), Event::Tick, &p.crypto);
    assert!(matches!(out[..], [Action::Send(Message::Rotate { .. })]));
    let st = p.init.status();
    assert_eq!(
        (
            st.failures.get(Failure::Timeout),
            st.failures.get(Failure::Kem)
        ),
        (1, 1)
    );
}

#[test]
fn a_refusal_is_counted_and_retried() {
    let mut p = Pair::new(KemId::None, PqMode::Preferred);
    p.init.handle(INTERVAL, Event::ChannelUp, &p.crypto);
    let refuse = Message::Refuse {
        epoch: 1,
        reason: RefuseReason::BadEpoch,
    };
    let out = p.init.handle(INTERVAL, Event::Message(refuse), &p.crypto);
    assert!(matches!(out[..], [Action::Failed(Failure::PeerRefused)]));
    assert_eq!(p.init.phase(), Phase::Idle);
}

#[test]
fn a_distrusted_peer_expires_at_once_and_a_new_channel_brings_it_back() {
    let expiry = Schedule::new(INTERVAL).unwrap().expiry(1);
    for (mode, action) in [
        (PqMode::Required, "Expire"),
        (PqMode::Preferred, "Degraded"),
    ] {
        let mut p = Pair::new(KemId::Hqc128, mode);
        p.up(INTERVAL + 5);
        assert_eq!(p.init_installs.len(), 1);
        p.log.clear();
        // Long before epoch 1 expires: the same action as its expiry, once, on both sides.
        for m in [&mut p.init, &mut p.resp] {
            let out = m.distrusted();
            assert_eq!(format!("{out:?}"), format!("[{action}]"), "{mode:?}");
            let st = m.status();
            assert!(st.expired && m.expired() && !st.channel_up, "{mode:?}");
            assert_eq!(st.epoch, Some(1));
            assert_eq!(m.phase(), Phase::Installed(1));
            assert!(m.distrusted().is_empty(), "only once");
            // No expiry deadline left to act on, and ticks add nothing.
            assert!(m.next_deadline().is_none_or(|d| d > expiry));
        }
        p.tick_both(expiry + 1);
        assert!(p.log.is_empty(), "{:?}", p.log);
        // A message still in flight on the distrusted channel installs nothing.
        let out = p.resp.handle(
            INTERVAL + 6,
            Event::Message(Message::Rotate {
                epoch: 1,
                offer: b"eph".to_vec(),
            }),
            &p.crypto,
        );
        assert!(!out.iter().any(|a| matches!(a, Action::Install { .. })));
        assert!(p.resp.status().expired);
        // The peer comes back on a new (trusted) channel: a new PSK and out of the expired state.
        p.run(expiry + 1, true, Event::ChannelLost);
        p.run(expiry + 1, false, Event::ChannelLost);
        p.crypto.conn = 2;
        p.up(expiry + 2);
        assert_eq!(p.init_installs.len(), 2, "{mode:?}");
        assert_eq!(p.init_installs, p.resp_installs);
        assert_ne!(p.init_installs[0].1, p.init_installs[1].1);
        for m in [&p.init, &p.resp] {
            let st = m.status();
            assert!(!st.expired && !m.expired() && st.channel_up, "{mode:?}");
            assert_eq!(st.epoch, Some(3));
        }
    }
}
