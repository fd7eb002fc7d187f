//! The per-peer rotation state machine, `Idle -> Rotating(epoch) -> Installed(epoch)`. Inputs are
//! events with the caller's `now` (unix milliseconds) and a [`ChannelCrypto`] for the channel's
//! TLS exporter and the KEM operations; outputs are [`Action`]s for the driver to carry out in
//! order. The initiator (the lower WireGuard key) proposes each epoch; the responder derives,
//! installs and confirms; only then does the initiator install and force a handshake, so both
//! sides hold the new PSK before the handshake that uses it.

use zeroize::Zeroizing;

use super::config::PqMode;
use super::derive::{CONTEXT_LEN, EXPORTER_LEN, KdfHash, derive_psk, exporter_context};
use super::epoch::Schedule;
use super::status::{Failure, FailureCounts, PeerStatus};
use super::wire::{KemId, Message, RefuseReason};
use super::{Psk, WgKey};

/// KEM secrets, wiped on drop.
pub type Secret = Zeroizing<Vec<u8>>;

/// Why the channel's crypto could not do what the machine asked.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// The TLS exporter failed (no handshake, or the session cannot export).
    #[error("TLS exporter failed")]
    Exporter,
    /// A KEM operation failed or its input was malformed.
    #[error("KEM {op} failed: {reason}")]
    Kem {
        /// Which operation.
        op: &'static str,
        /// Why.
        reason: String,
    },
}

/// The channel's keying material and the KEMs, supplied by the driver (tests pass fakes).
pub trait ChannelCrypto {
    /// The channel's TLS exporter: label [`super::EXPORTER_LABEL`], this context, 32 bytes.
    fn exporter(
        &self,
        context: &[u8; CONTEXT_LEN],
    ) -> Result<Zeroizing<[u8; EXPORTER_LEN]>, CryptoError>;
    /// This node's long-term public key for a static KEM.
    fn static_public(&self, kem: KemId) -> Result<Vec<u8>, CryptoError>;
    /// Whether `public` has the shape of a `kem` public key (checked when a peer's static key
    /// arrives, so a bad one closes the channel instead of failing every rotation).
    fn public_key_ok(&self, kem: KemId, public: &[u8]) -> bool;
    /// A fresh key pair `(public, secret)`.
    fn keypair(&self, kem: KemId) -> Result<(Vec<u8>, Secret), CryptoError>;
    /// Encapsulates to `public`: `(ciphertext, shared secret)`.
    fn encapsulate(&self, kem: KemId, public: &[u8]) -> Result<(Vec<u8>, Secret), CryptoError>;
    /// Decapsulates with an ephemeral secret key.
    fn decapsulate(&self, kem: KemId, secret: &[u8], ct: &[u8]) -> Result<Secret, CryptoError>;
    /// Decapsulates with this node's long-term secret key.
    fn decapsulate_static(&self, kem: KemId, ct: &[u8]) -> Result<Secret, CryptoError>;
}

/// Which side of the protocol a node is for one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opens the channel and proposes epochs (the lower WireGuard public key).
    Initiator,
    /// Accepts the channel and confirms epochs.
    Responder,
}

impl Role {
    /// The local role: the lower key (bytewise) initiates.
    pub fn for_keys(local: &WgKey, remote: &WgKey) -> Self {
        if local < remote {
            Self::Initiator
        } else {
            Self::Responder
        }
    }
}

/// What the machine needs to know about one peer.
#[derive(Clone, Debug)]
pub struct PeerParams {
    /// This node's WireGuard public key.
    pub local: WgKey,
    /// The peer's WireGuard public key.
    pub remote: WgKey,
    /// The second KEM.
    pub kem: KemId,
    /// The derivation hash.
    pub hash: KdfHash,
    /// What happens when the last PQ PSK expires.
    pub mode: PqMode,
    /// Epoch timing.
    pub schedule: Schedule,
}

/// An input.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A channel to the peer is authenticated (for the responder: its Hello was accepted).
    ChannelUp,
    /// A message arrived on the channel.
    Message(Message),
    /// Time passed (call at [`PeerMachine::next_deadline`] at the latest).
    Tick,
    /// The channel is gone.
    ChannelLost,
}

/// An output, to be carried out in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Send a message on the channel.
    Send(Message),
    /// Set the peer's PSK for its next handshake (the current session keeps its keys).
    Install {
        /// Epoch.
        epoch: u64,
        /// The PSK.
        psk: Psk,
    },
    /// Start a WireGuard handshake with the peer now (after the initiator's `Install`).
    ForceHandshake,
    /// pq-required: the last PQ PSK expired (or none exists yet): stop carrying data.
    Expire,
    /// pq-preferred: the last PQ PSK expired; traffic goes on, warn.
    Degraded,
    /// Count and log a failure.
    Failed(Failure),
    /// Close the channel (the peer broke the protocol).
    CloseChannel,
}

/// Where a machine stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No rotation running, nothing installed.
    Idle,
    /// Waiting for `Installed(epoch)` (initiator).
    Rotating(u64),
    /// The PSK of `epoch` is installed and no rotation is running.
    Installed(u64),
}

enum Pending {
    None,
    Shared(Secret),
    EphemeralSecret(Secret),
}

struct Rotating {
    epoch: u64,
    since: u64,
    pending: Pending,
}

/// Per-channel state, reset with every new channel.
#[derive(Default)]
struct Channel {
    /// Initiator: the responder's static KEM key, once received.
    static_public: Option<Vec<u8>>,
    /// Initiator: ready to rotate (Hello sent, static key received when needed).
    ready: bool,
    /// Initiator: no rotation has completed on this channel yet.
    fresh: bool,
    /// Responder: the last epoch accepted on this channel.
    last_epoch: Option<u64>,
}

/// One peer's rotation state.
pub struct PeerMachine {
    p: PeerParams,
    role: Role,
    channel: Option<Channel>,
    rotating: Option<Rotating>,
    installed: Option<(u64, u64)>,
    expired: bool,
    retry_at: u64,
    rotations: u64,
    failures: FailureCounts,
}

impl PeerMachine {
    /// A machine with nothing installed and no channel.
    pub fn new(p: PeerParams) -> Self {
        Self {
            role: Role::for_keys(&p.local, &p.remote),
            p,
            channel: None,
            rotating: None,
            installed: None,
            expired: false,
            retry_at: 0,
            rotations: 0,
            failures: FailureCounts::default(),
        }
    }

    /// This node's role for the peer.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's parameters.
    pub fn params(&self) -> &PeerParams {
        &self.p
    }

    /// Whether the last PQ PSK expired (or was distrusted, or none came yet in pq-required) and
    /// no new one was installed since. A driver carrying out an [`Action::Install`] that finds
    /// this set drops it: a distrust came in between.
    pub fn expired(&self) -> bool {
        self.expired
    }

    /// Where the machine stands.
    pub fn phase(&self) -> Phase {
        match (&self.rotating, self.installed) {
            (Some(r), _) => Phase::Rotating(r.epoch),
            (None, Some((epoch, _))) => Phase::Installed(epoch),
            (None, None) => Phase::Idle,
        }
    }

    /// Whether a responder should accept a channel whose Hello says this.
    pub fn accepts_hello(&self, initiator: &WgKey, responder: &WgKey, kem: KemId) -> bool {
        self.role == Role::Responder
            && *initiator == self.p.remote
            && *responder == self.p.local
            && kem == self.p.kem
    }

    /// Counts a failure seen by the driver (a refused certificate, a failed connect).
    pub fn count(&mut self, f: Failure) {
        self.failures.add(f);
    }

    /// A status snapshot.
    pub fn status(&self) -> PeerStatus {
        PeerStatus {
            epoch: self.installed.map(|(e, _)| e),
            last_rotation_ms: self.installed.map(|(_, at)| at),
            rotations: self.rotations,
            kem: self.p.kem,
            channel_up: self.channel.is_some(),
            expired: self.expired,
            failures: self.failures.clone(),
        }
    }

    /// Feeds one event.
    pub fn handle(&mut self, now: u64, event: Event, crypto: &dyn ChannelCrypto) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::ChannelUp => self.on_channel_up(now, crypto, &mut out),
            Event::Message(m) => self.on_message(now, m, crypto, &mut out),
            Event::Tick => self.on_tick(now, crypto, &mut out),
            Event::ChannelLost => self.on_channel_lost(),
        }
        for a in &out {
            if let Action::Failed(f) = a {
                self.failures.add(*f);
            }
        }
        out
    }

    /// The peer's certificate is no longer trusted (a TLS reload revoked it, it expired, or its
    /// CA went): its installed PSK must carry no more data, now rather than at its epoch's
    /// expiry. Enters the expired state with the same actions an expiry in a tick gives
    /// ([`Action::Expire`] for pq-required, [`Action::Degraded`] for pq-preferred; none when
    /// already expired) and forgets the channel and any rotation on it, so a message still in
    /// flight on the distrusted channel cannot install a PSK. The next PSK installed (from a new,
    /// trusted channel) leaves the expired state as after any expiry. The reason is counted by
    /// the caller ([`PeerMachine::count`]).
    pub fn distrusted(&mut self) -> Vec<Action> {
        self.channel = None;
        self.rotating = None;
        if self.expired {
            return Vec::new();
        }
        self.expired = true;
        vec![match self.p.mode {
            PqMode::Required => Action::Expire,
            PqMode::Preferred => Action::Degraded,
        }]
    }

    /// The latest time the driver must deliver the next [`Event::Tick`].
    pub fn next_deadline(&self) -> Option<u64> {
        let mut d: Option<u64> = None;
        let mut at = |t: u64| d = Some(d.map_or(t, |d| d.min(t)));
        match self.installed {
            Some((epoch, _)) if !self.expired => at(self.p.schedule.expiry(epoch)),
            None if self.p.mode == PqMode::Required && !self.expired => at(0),
            _ => {}
        }
        if let Some(r) = &self.rotating {
            at(r.since.saturating_add(self.p.schedule.answer_timeout_ms()));
        } else if let Some(ch) = &self.channel
            && ch.ready
        {
            let due = match self.installed {
                Some((epoch, _)) if !ch.fresh => self.p.schedule.start(epoch.saturating_add(1)),
                _ => 0,
            };
            at(due.max(self.retry_at));
        }
        d
    }

    fn on_channel_up(&mut self, now: u64, crypto: &dyn ChannelCrypto, out: &mut Vec<Action>) {
        self.rotating = None;
        let mut ch = Channel {
            fresh: true,
            ..Channel::default()
        };
        match self.role {
            Role::Initiator => {
                out.push(Action::Send(Message::Hello {
                    initiator: self.p.local,
                    responder: self.p.remote,
                    kem: self.p.kem,
                }));
                ch.ready = !self.p.kem.is_static();
                self.channel = Some(ch);
                self.retry_at = now;
                self.maybe_rotate(now, crypto, out);
            }
            Role::Responder => {
                if self.p.kem.is_static() {
                    match crypto.static_public(self.p.kem) {
                        Ok(public) => out.push(Action::Send(Message::StaticKey {
                            kem: self.p.kem,
                            public,
                        })),
                        Err(_) => {
                            out.extend([Action::Failed(Failure::Kem), Action::CloseChannel]);
                            return;
                        }
                    }
                }
                self.channel = Some(ch);
            }
        }
    }

    fn on_channel_lost(&mut self) {
        if self.channel.take().is_some() {
            self.failures.add(Failure::Channel);
        }
        self.rotating = None;
    }

    fn protocol_error(&mut self, out: &mut Vec<Action>) {
        out.extend([Action::Failed(Failure::Protocol), Action::CloseChannel]);
        self.rotating = None;
    }

    fn on_message(
        &mut self,
        now: u64,
        m: Message,
        crypto: &dyn ChannelCrypto,
        out: &mut Vec<Action>,
    ) {
        if self.channel.is_none() {
            return self.protocol_error(out);
        }
        match (self.role, m) {
            (Role::Initiator, Message::StaticKey { kem, public }) => {
                let ch = self.channel.get_or_insert_with(Channel::default);
                if !kem.is_static()
                    || kem != self.p.kem
                    || ch.static_public.is_some()
                    || !crypto.public_key_ok(kem, &public)
                {
                    return self.protocol_error(out);
                }
                ch.static_public = Some(public);
                ch.ready = true;
                self.maybe_rotate(now, crypto, out);
            }
            (Role::Initiator, Message::Installed { epoch, reply }) => {
                self.complete(now, epoch, &reply, crypto, out)
            }
            (Role::Initiator, Message::Refuse { epoch, .. }) => match &self.rotating {
                Some(r) if r.epoch == epoch => {
                    self.rotating = None;
                    self.retry_at = now.saturating_add(self.p.schedule.retry_ms());
                    out.push(Action::Failed(Failure::PeerRefused));
                }
                _ => self.protocol_error(out),
            },
            (Role::Responder, Message::Rotate { epoch, offer }) => {
                self.respond(now, epoch, &offer, crypto, out)
            }
            _ => self.protocol_error(out),
        }
    }

    fn on_tick(&mut self, now: u64, crypto: &dyn ChannelCrypto, out: &mut Vec<Action>) {
        match self.installed {
            Some((epoch, _)) if !self.expired && now >= self.p.schedule.expiry(epoch) => {
                self.expired = true;
                out.push(Action::Failed(Failure::Expired));
                out.push(match self.p.mode {
                    PqMode::Required => Action::Expire,
                    PqMode::Preferred => Action::Degraded,
                });
            }
            // Fail closed from the start: no data before the first PQ PSK.
            None if self.p.mode == PqMode::Required && !self.expired => {
                self.expired = true;
                out.push(Action::Expire);
            }
            _ => {}
        }
        if let Some(r) = &self.rotating
            && now >= r.since.saturating_add(self.p.schedule.answer_timeout_ms())
        {
            self.rotating = None;
            self.retry_at = now.saturating_add(self.p.schedule.retry_ms());
            out.push(Action::Failed(Failure::Timeout));
        }
        self.maybe_rotate(now, crypto, out);
    }

    /// The initiator starts a rotation when the channel is ready and the installed epoch is
    /// behind the clock (or the channel is new).
    fn maybe_rotate(&mut self, now: u64, crypto: &dyn ChannelCrypto, out: &mut Vec<Action>) {
        let Some(ch) = &self.channel else { return };
        if self.role != Role::Initiator
            || !ch.ready
            || self.rotating.is_some()
            || now < self.retry_at
        {
            return;
        }
        let target = self.p.schedule.epoch_at(now);
        if !ch.fresh && self.installed.is_some_and(|(e, _)| e >= target) {
            return;
        }
        let kem = self.p.kem;
        let offer = if kem == KemId::None {
            Ok((Vec::new(), Pending::None))
        } else if kem.is_static() {
            let public = ch.static_public.as_deref().unwrap_or_default();
            crypto
                .encapsulate(kem, public)
                .map(|(ct, ss)| (ct, Pending::Shared(ss)))
        } else {
            crypto
                .keypair(kem)
                .map(|(pk, sk)| (pk, Pending::EphemeralSecret(sk)))
        };
        match offer {
            Ok((offer, pending)) => {
                self.rotating = Some(Rotating {
                    epoch: target,
                    since: now,
                    pending,
                });
                out.push(Action::Send(Message::Rotate {
                    epoch: target,
                    offer,
                }));
            }
            Err(_) => {
                self.retry_at = now.saturating_add(self.p.schedule.retry_ms());
                out.push(Action::Failed(Failure::Kem));
            }
        }
    }

    /// The initiator's last step: the responder confirmed `epoch`.
    fn complete(
        &mut self,
        now: u64,
        epoch: u64,
        reply: &[u8],
        crypto: &dyn ChannelCrypto,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.rotating.take_if(|r| r.epoch == epoch) else {
            return self.protocol_error(out);
        };
        let shared = match r.pending {
            Pending::None | Pending::Shared(_) if !reply.is_empty() => {
                return self.protocol_error(out);
            }
            Pending::None => Ok(Secret::default()),
            Pending::Shared(ss) => Ok(ss),
            Pending::EphemeralSecret(sk) => crypto.decapsulate(self.p.kem, &sk, reply),
        };
        let psk = match shared {
            Ok(ss) => self.derive(epoch, &ss, crypto),
            Err(_) => Err(Failure::Kem),
        };
        match psk {
            Ok(psk) => {
                self.installed_now(epoch, now);
                if let Some(ch) = &mut self.channel {
                    ch.fresh = false;
                }
                out.extend([Action::Install { epoch, psk }, Action::ForceHandshake]);
            }
            Err(f) => {
                self.retry_at = now.saturating_add(self.p.schedule.retry_ms());
                out.push(Action::Failed(f));
            }
        }
    }

    /// The responder's step: check the epoch, run the KEM, derive, install, confirm.
    fn respond(
        &mut self,
        now: u64,
        epoch: u64,
        offer: &[u8],
        crypto: &dyn ChannelCrypto,
        out: &mut Vec<Action>,
    ) {
        let last = self.channel.as_ref().and_then(|c| c.last_epoch);
        let stale = last.is_some_and(|l| epoch <= l)
            || self.installed.is_some_and(|(e, _)| epoch < e)
            || !self.p.schedule.acceptable(epoch, now);
        let refuse = |reason, failure, out: &mut Vec<Action>| {
            out.push(Action::Failed(failure));
            out.push(Action::Send(Message::Refuse { epoch, reason }));
        };
        if stale {
            return refuse(RefuseReason::BadEpoch, Failure::BadEpoch, out);
        }
        let kem = self.p.kem;
        let shared = if kem == KemId::None {
            if offer.is_empty() {
                Ok((Vec::new(), Secret::default()))
            } else {
                Err(CryptoError::Kem {
                    op: "offer",
                    reason: "unexpected KEM data".into(),
                })
            }
        } else if kem.is_static() {
            crypto
                .decapsulate_static(kem, offer)
                .map(|ss| (Vec::new(), ss))
        } else {
            crypto.encapsulate(kem, offer)
        };
        let Ok((reply, ss)) = shared else {
            return refuse(RefuseReason::Kem, Failure::Kem, out);
        };
        let psk = match self.derive(epoch, &ss, crypto) {
            Ok(psk) => psk,
            Err(f) => return refuse(RefuseReason::Derive, f, out),
        };
        if let Some(ch) = &mut self.channel {
            ch.last_epoch = Some(epoch);
        }
        self.installed_now(epoch, now);
        out.push(Action::Install { epoch, psk });
        out.push(Action::Send(Message::Installed { epoch, reply }));
    }

    fn installed_now(&mut self, epoch: u64, now: u64) {
        self.installed = Some((epoch, now));
        self.rotations = self.rotations.saturating_add(1);
        self.expired = false;
    }

    fn derive(&self, epoch: u64, ss: &[u8], crypto: &dyn ChannelCrypto) -> Result<Psk, Failure> {
        let (initiator, responder) = match self.role {
            Role::Initiator => (&self.p.local, &self.p.remote),
            Role::Responder => (&self.p.remote, &self.p.local),
        };
        let exporter = crypto
            .exporter(&exporter_context(epoch, initiator, responder))
            .map_err(|_| Failure::Derive)?;
        let kem = self.p.kem.registry_name().map(|name| (name, ss));
        derive_psk(self.p.hash, epoch, initiator, responder, &exporter, kem)
            .map_err(|_| Failure::Derive)
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
