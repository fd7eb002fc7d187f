//! The record of one proxied connection: what is known of it (peer, SNI, session facts, bytes)
//! becomes one log line and one set of metric updates when it ends.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, histogram};
use pqgate_core::metrics::{self as m, ConnectionOutcome, HandshakeOutcome};
use tokio::time::Instant;

use crate::tls::SessionFacts;

/// The log target of the per-connection line (`log.level = "warn,pqgate::endpoint=info"` keeps
/// only it).
pub(crate) const AUDIT_TARGET: &str = "pqgate::endpoint";

/// Everything logged and counted about one connection.
pub(crate) struct ConnectionRecord<'a> {
    /// Listener or connector name.
    pub listener: &'a str,
    /// The client's address.
    pub peer: SocketAddr,
    /// When the connection was accepted.
    pub started: Instant,
    /// The server name, when known.
    pub sni: Option<String>,
    /// Session facts once the handshake completed.
    pub session: Option<SessionFacts>,
    /// Bytes client to backend.
    pub up: u64,
    /// Bytes backend to client.
    pub down: u64,
}

impl<'a> ConnectionRecord<'a> {
    /// Starts a record for a connection accepted now.
    pub(crate) fn new(listener: &'a str, peer: SocketAddr) -> Self {
        Self {
            listener,
            peer,
            started: Instant::now(),
            sni: None,
            session: None,
            up: 0,
            down: 0,
        }
    }

    /// Counts a handshake's end.
    pub(crate) fn handshake_done(&self, outcome: HandshakeOutcome, took: Duration) {
        let group = self.session.as_ref().map_or("none", |s| s.group);
        let name = self.listener.to_owned();
        counter!(m::TLS_HANDSHAKES, "listener" => name.clone(), "group" => group, "outcome" => outcome.label())
            .increment(1);
        if outcome == HandshakeOutcome::PolicyRefused {
            counter!(m::POLICY_REFUSALS, "listener" => name.clone()).increment(1);
        }
        if let (HandshakeOutcome::Ok, Some(s)) = (outcome, &self.session) {
            histogram!(m::TLS_HANDSHAKE_SECONDS, "listener" => name.clone())
                .record(took.as_secs_f64());
            let pq = if s.post_quantum { "true" } else { "false" };
            counter!(m::TLS_SESSIONS, "listener" => name, "group" => s.group, "suite" => s.suite, "pq" => pq)
                .increment(1);
        }
    }

    /// Emits the one log line and the outcome count for this connection.
    pub(crate) fn finish(self, outcome: ConnectionOutcome, detail: Option<&str>) {
        counter!(m::CONNECTIONS, "listener" => self.listener.to_owned(), "outcome" => outcome.label())
            .increment(1);
        let (group, suite, version, pq) = self
            .session
            .as_ref()
            .map_or(("none", "none", "none", false), |s| {
                (s.group, s.suite, s.version, s.post_quantum)
            });
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The audit line keeps the target it has always had (log filters and SIEM rules match
        // it), whichever module emits it.
        tracing::info!(
            target: AUDIT_TARGET,
            listener = self.listener,
            peer = %self.peer,
            sni = self.sni.as_deref().unwrap_or("-"),
            version,
            group,
            suite,
            post_quantum = pq,
            bytes_up = self.up,
            bytes_down = self.down,
            duration_ms,
            outcome = outcome.label(),
            detail = detail.unwrap_or("-"),
            "connection closed"
        );
    }
}
