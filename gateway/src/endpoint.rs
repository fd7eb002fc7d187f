//! The accept loop shared by listeners and connectors: admission against `max_connections`,
//! one task per connection, and the per-connection record that becomes one log line and one
//! set of metric updates when the connection ends.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{counter, gauge, histogram};
use pqgate_core::metrics::{self as m, ConnectionOutcome, HandshakeOutcome};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::shared::Shared;
use crate::tls::SessionFacts;

/// Pending connections the kernel queues per listening socket.
const LISTEN_BACKLOG: u32 = 1024;
/// At most one "max_connections reached" log line per listener per interval.
const REJECT_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A listener or connector: named, admission-limited, serving one connection at a time per task.
pub trait Endpoint: Send + Sync + 'static {
    /// Config name (metric label).
    fn name(&self) -> &str;
    /// Admission slots (`max_connections`).
    fn slots(&self) -> &Arc<Semaphore>;
    /// Serves one accepted connection to its end.
    fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) -> impl Future<Output = ()> + Send;
}

/// Binds a listening TCP socket with address reuse and our backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts until `stop` turns true; each connection runs with the state current at its accept.
pub async fn accept_loop<E: Endpoint>(
    socket: TcpListener,
    state: Arc<ArcSwap<E>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let (mut last_warn, mut rejected_since_warn): (Option<Instant>, u64) = (None, 0);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let endpoint = state.load_full();
        let Ok(permit) = endpoint.slots().clone().try_acquire_owned() else {
            counter!(m::CONNECTIONS_REJECTED, "listener" => endpoint.name().to_owned())
                .increment(1);
            rejected_since_warn += 1;
            if last_warn.is_none_or(|t: Instant| t.elapsed() >= REJECT_WARN_INTERVAL) {
                tracing::warn!(
                    listener = endpoint.name(),
                    %peer,
                    refused = rejected_since_warn,
                    "max_connections reached: connections refused"
                );
                (last_warn, rejected_since_warn) = (Some(Instant::now()), 0);
            }
            continue;
        };
        let guard = shared.open_connection();
        tokio::spawn(async move {
            let _permit = permit;
            let _guard = guard;
            let active = gauge!(m::ACTIVE_CONNECTIONS, "listener" => endpoint.name().to_owned());
            active.increment(1.0);
            let _ = tcp.set_nodelay(true);
            endpoint.serve(tcp, peer).await;
            active.decrement(1.0);
        });
    }
}

/// Everything logged and counted about one connection.
pub struct ConnectionRecord<'a> {
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
    pub fn new(listener: &'a str, peer: SocketAddr) -> Self {
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
    pub fn handshake_done(&self, outcome: HandshakeOutcome, took: Duration) {
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
    pub fn finish(self, outcome: ConnectionOutcome, detail: Option<&str>) {
        counter!(m::CONNECTIONS, "listener" => self.listener.to_owned(), "outcome" => outcome.label())
            .increment(1);
        let (group, suite, version, pq) = self
            .session
            .as_ref()
            .map_or(("none", "none", "none", false), |s| {
                (s.group, s.suite, s.version, s.post_quantum)
            });
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
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
