//! One peer's task: keeps a channel (connects as initiator, takes admitted ones as responder),
//! feeds the rotation machine its events at its deadlines, and carries out its actions: messages
//! on the channel, PSKs and handshakes to the [`super::PskSink`], failures to the metrics.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pqgate_core::pqpsk::machine::Action;
use pqgate_core::pqpsk::status::{
    METRIC_DEGRADED, METRIC_EXPIRED, METRIC_FAILURES, METRIC_ROTATIONS,
};
use pqgate_core::pqpsk::{Event, Failure, Message, Role, WgKey};
use pqgate_core::wg::Key32;
use rustls::AlertDescription;
use tokio::sync::{mpsc, watch};

use super::channel::{Chan, close, read_frame};
use super::crypto::ConnCrypto;
use super::node::{Inner, Peer};
use super::tls::client_cert_matches;
use crate::net::clock;

/// Longest a QUIC handshake may take before the attempt counts as a timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest an admitted connection may take to open its stream and send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest sleep between two looks at the machine, in milliseconds (a safety net: the machine's
/// own deadline is normally sooner).
const MAX_WAIT_MS: u64 = 5_000;

/// Maps a failed connection to a bounded reason, by the TLS alert it carried (RFC 9001 section
/// 4.8: crypto errors are 0x100 + alert).
pub(super) fn classify(e: &quinn::ConnectionError) -> Failure {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => u64::from(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        quinn::ConnectionError::TimedOut => return Failure::Timeout,
        _ => return Failure::Channel,
    };
    let Some(alert) = code.checked_sub(0x100).and_then(|a| u8::try_from(a).ok()) else {
        return Failure::Channel;
    };
    match AlertDescription::from(alert) {
        AlertDescription::CertificateExpired => Failure::CertExpired,
        AlertDescription::CertificateRevoked => Failure::CertRevoked,
        AlertDescription::UnknownCA => Failure::CertUnknownCa,
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::CertificateRequired
        | AlertDescription::AccessDenied
        | AlertDescription::DecryptError => Failure::CertOther,
        _ => Failure::Channel,
    }
}

fn key_text(k: &[u8; 32]) -> String {
    Key32::from_bytes(*k).to_string()
}

/// Authenticates an incoming connection and hands it to its peer's task.
pub(super) async fn admit(inner: &Inner, incoming: quinn::Incoming) -> Result<(), Failure> {
    let connecting = incoming.accept().map_err(|e| classify(&e))?;
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|e| classify(&e))?;
    let (send, mut recv) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|e| classify(&e))?;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut recv))
        .await
        .map_err(|_| Failure::Timeout)??;
    let Message::Hello {
        initiator,
        responder,
        kem,
    } = hello
    else {
        conn.close(close::PROTOCOL.into(), b"expected Hello");
        return Err(Failure::Protocol);
    };
    let peers = inner.peers();
    let peer = peers.iter().find(|p| {
        p.remote == initiator
            && p.lock().accepts_hello(&initiator, &responder, kem)
            && client_cert_matches(&conn, &p.name)
    });
    let Some(peer) = peer else {
        conn.close(close::UNKNOWN_PEER.into(), b"unknown peer");
        return Err(Failure::UnknownPeer);
    };
    peer.accepted
        .send(Chan::start(conn, send, recv))
        .await
        .map_err(|_| Failure::Channel)
}

async fn connect(inner: Arc<Inner>, name: String, addr: SocketAddr) -> Result<Chan, Failure> {
    let connecting = inner
        .endpoint
        .connect_with(inner.client(), addr, &name)
        .map_err(|_| Failure::Channel)?;
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|e| classify(&e))?;
    let (send, recv) = conn.open_bi().await.map_err(|e| classify(&e))?;
    Ok(Chan::start(conn, send, recv))
}

type Connecting = Pin<Box<dyn Future<Output = Result<Chan, Failure>> + Send>>;

/// One peer's task state between events.
struct Task {
    inner: Arc<Inner>,
    peer: Arc<Peer>,
    initiator: bool,
    chan: Option<Chan>,
    connecting: Option<Connecting>,
    /// Initiator: no connection attempt before this time (unix ms).
    connect_at: u64,
    retry_ms: u64,
}

impl Task {
    /// Starts a connection attempt when one is due; returns how long to sleep at most.
    fn prepare(&mut self, now: u64) -> Duration {
        let idle = self.initiator && self.chan.is_none() && self.connecting.is_none();
        if let (true, Some(addr)) = (idle && now >= self.connect_at, self.peer.address) {
            let attempt = connect(self.inner.clone(), self.peer.name.clone(), addr);
            self.connecting = Some(Box::pin(attempt));
        }
        let mut deadline = self.peer.lock().next_deadline().unwrap_or(u64::MAX);
        if self.initiator && self.chan.is_none() && self.connecting.is_none() {
            deadline = deadline.min(self.connect_at);
        }
        Duration::from_millis(deadline.saturating_sub(now).clamp(1, MAX_WAIT_MS))
    }

    /// Waits after a failed attempt or a lost channel before connecting again (no tight loop
    /// against a peer that accepts the handshake and then refuses).
    fn back_off(&mut self) {
        self.connect_at = clock::unix_ms().unwrap_or(0).saturating_add(self.retry_ms);
    }

    /// Takes `c` as the current channel unless the current TLS material no longer trusts its
    /// peer (a reload between its handshake and now): then it is closed and counted.
    fn adopt(&mut self, c: Chan) -> Option<Event> {
        self.peer.set_conn(&c.conn);
        if let Err(f) = self.inner.recheck(&self.peer, &c.conn) {
            self.inner.distrust(&self.peer, &c.conn, f);
            self.peer.clear_conn();
            if self.initiator {
                self.back_off();
            }
            return None;
        }
        self.chan = Some(c);
        Some(Event::ChannelUp)
    }

    fn connected(&mut self, res: Result<Chan, Failure>) -> Option<Event> {
        self.connecting = None;
        match res {
            Ok(c) => self.adopt(c),
            Err(f) => {
                self.peer.lock().count(f);
                metrics::counter!(METRIC_FAILURES, "reason" => f.label()).increment(1);
                let who = key_text(&self.peer.remote);
                tracing::debug!(peer = %who, reason = f.label(), "PQ PSK connect failed");
                self.back_off();
                None
            }
        }
    }

    fn received(&mut self, msg: Result<Message, Failure>) -> Event {
        match msg {
            Ok(m) => Event::Message(m),
            Err(f) => {
                if f == Failure::Protocol {
                    self.peer.lock().count(f);
                    metrics::counter!(METRIC_FAILURES, "reason" => f.label()).increment(1);
                    if let Some(c) = &self.chan {
                        c.close(close::PROTOCOL, b"malformed message");
                    }
                }
                Event::ChannelLost
            }
        }
    }

    /// Drops the channel; the initiator waits for the back-off before reconnecting.
    fn lost(&mut self) {
        self.peer.clear_conn();
        if self.chan.take().is_some() && self.initiator {
            self.back_off();
        }
    }

    async fn step(&mut self, event: Event) {
        let had = self.chan.is_some();
        step(&self.inner, &self.peer, &mut self.chan, event).await;
        if had && self.chan.is_none() {
            self.peer.clear_conn();
            if self.initiator {
                self.back_off();
            }
        }
    }
}

/// The peer's task, until `stop` changes.
pub(super) async fn run(
    inner: Arc<Inner>,
    peer: Arc<Peer>,
    mut accepted: mpsc::Receiver<Chan>,
    mut stop: watch::Receiver<bool>,
    retry_ms: u64,
) {
    let initiator = peer.lock().role() == Role::Initiator;
    let mut t = Task {
        inner,
        peer,
        initiator,
        chan: None,
        connecting: None,
        connect_at: 0,
        retry_ms,
    };
    loop {
        let wait = t.prepare(clock::unix_ms().unwrap_or(0));
        let event = tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => Some(Event::Tick),
            res = async {
                match t.connecting.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            }, if t.connecting.is_some() => t.connected(res),
            Some(c) = accepted.recv() => {
                if t.chan.take().is_some() {
                    t.step(Event::ChannelLost).await;
                }
                t.adopt(c)
            }
            msg = async {
                match t.chan.as_mut() {
                    Some(c) => c.recv().await,
                    None => std::future::pending().await,
                }
            }, if t.chan.is_some() => {
                let ev = t.received(msg);
                if matches!(ev, Event::ChannelLost) {
                    t.lost();
                }
                Some(ev)
            }
        };
        if let Some(event) = event {
            t.step(event).await;
        }
    }
}

/// Runs `f`, which may do KEM work (HQC ~5 ms, a McEliece decapsulation ~30 ms), without
/// stalling the other tasks of a multi-threaded runtime: `block_in_place` hands this worker's
/// queue to another thread meanwhile. On a current-thread runtime it simply runs.
fn off_the_async_workers<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Feeds one event (and the `ChannelLost` that a failed send causes) and carries out the actions.
async fn step(inner: &Inner, peer: &Peer, chan: &mut Option<Chan>, event: Event) {
    let mut queue = VecDeque::from([event]);
    while let Some(ev) = queue.pop_front() {
        if matches!(ev, Event::ChannelLost) {
            metrics::counter!(METRIC_FAILURES, "reason" => Failure::Channel.label()).increment(1);
        }
        let actions = off_the_async_workers(|| {
            let crypto = ConnCrypto {
                conn: chan.as_ref().map(|c| &c.conn),
                keys: &inner.keys,
            };
            peer.lock()
                .handle(clock::unix_ms().unwrap_or(0), ev, &crypto)
        });
        for a in actions {
            if let Some(lost) = act(inner, peer, chan, a).await {
                queue.push_back(lost);
            }
        }
    }
}

/// Carries out an expiry action (`Expire`: pq-required, the peer stops; `Degraded`:
/// pq-preferred, its static PSK from the next handshake); other actions are ignored.
pub(super) fn expiry(inner: &Inner, remote: WgKey, a: &Action) {
    let who = key_text(&remote);
    match a {
        Action::Expire => {
            inner.sink.expire(remote);
            metrics::counter!(METRIC_EXPIRED).increment(1);
            tracing::warn!(peer = %who, "no current PQ PSK: pq-required peer stopped");
        }
        Action::Degraded => {
            inner.sink.fall_back(remote);
            metrics::counter!(METRIC_DEGRADED).increment(1);
            tracing::warn!(
                peer = %who,
                "no current PQ PSK: pq-preferred peer falls back to its static PSK (or none)"
            );
        }
        _ => {}
    }
}

/// Carries out one action; returns `ChannelLost` when the channel went away doing it.
async fn act(inner: &Inner, peer: &Peer, chan: &mut Option<Chan>, a: Action) -> Option<Event> {
    let who = key_text(&peer.remote);
    match a {
        Action::Send(m) => {
            let c = chan.as_mut()?;
            if c.send(&m).await.is_err() {
                *chan = None;
                return Some(Event::ChannelLost);
            }
        }
        Action::Install { epoch, psk } => {
            // Under the machine's lock, as a reload's distrust is: a PSK derived before a
            // distrust expired the peer (installing leaves the expired state, and only a
            // distrust from another task can come in between) is dropped, never installed
            // after the expiry.
            let machine = peer.lock();
            if machine.expired() {
                tracing::debug!(peer = %who, epoch, "PQ PSK dropped: the peer was distrusted");
                return None;
            }
            inner.sink.install(peer.remote, psk, epoch);
            if let Some(c) = chan.as_ref() {
                let initiator = machine.role() == Role::Initiator;
                let conn = &c.conn;
                inner
                    .sink
                    .install_agile(peer.remote, epoch, initiator, &|label, context, out| {
                        conn.export_keying_material(out, label, context).is_ok()
                    });
            }
            drop(machine);
            metrics::counter!(METRIC_ROTATIONS).increment(1);
            tracing::info!(peer = %who, epoch, "PQ PSK installed");
        }
        Action::ForceHandshake => inner.sink.force_handshake(peer.remote),
        Action::Expire | Action::Degraded => expiry(inner, peer.remote, &a),
        Action::Failed(f) => {
            metrics::counter!(METRIC_FAILURES, "reason" => f.label()).increment(1);
            tracing::debug!(peer = %who, reason = f.label(), "PQ PSK rotation failure");
        }
        Action::CloseChannel => {
            let c = chan.take()?;
            c.close(close::PROTOCOL, b"protocol error");
            return Some(Event::ChannelLost);
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_with_alert(alert: u8) -> quinn::ConnectionError {
        quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(alert),
            frame_type: None,
            reason: bytes::Bytes::new(),
        })
    }

    #[test]
    fn tls_alerts_map_to_certificate_reasons() {
        let cases = [
            (45, Failure::CertExpired),
            (44, Failure::CertRevoked),
            (48, Failure::CertUnknownCa),
            (42, Failure::CertOther),
            (116, Failure::CertOther),
            (40, Failure::Channel),
        ];
        for (alert, want) in cases {
            assert_eq!(classify(&closed_with_alert(alert)), want, "alert {alert}");
        }
        assert_eq!(
            classify(&quinn::ConnectionError::TimedOut),
            Failure::Timeout
        );
        assert_eq!(classify(&quinn::ConnectionError::Reset), Failure::Channel);
        let app = quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::PROTOCOL_VIOLATION,
            frame_type: None,
            reason: bytes::Bytes::new(),
        });
        assert_eq!(classify(&app), Failure::Channel);
    }
}
