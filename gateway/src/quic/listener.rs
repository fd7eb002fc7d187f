//! The QUIC listener: accepts pqgate connectors' QUIC connections on UDP `listen` (admitted up
//! to `max_connections` connections), checks ALPN and the negotiated group against the policy,
//! then relays each stream to the backend (streams admitted up to `max_connections`). Reload
//! swaps the state in place (new connections use the new certificate and policy, open ones
//! keep theirs); removal stops accepting and lets open streams finish.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{counter, gauge};
use pqgate_core::config::{Backend, KxPolicy, ListenerConfig};
use pqgate_core::metrics::{self as m, ConnectionOutcome, HandshakeOutcome};
use quinn::{Endpoint, EndpointConfig, TokioRuntime, VarInt};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use super::connector::session_facts;
use super::stream::QuicStream;
use super::{ALPN, QUIC_ACTIVE_STREAMS, QUIC_CONNECTIONS, STREAM_PREAMBLE, code};
use crate::proxy::backend::connect;
use crate::proxy::drain::DrainState;
use crate::proxy::record::ConnectionRecord;
use crate::proxy::relay::{RelayCounters, relay};
use crate::tls::SessionFacts;

/// A QUIC listener's config and QUIC state, swapped as a whole on reload.
pub(crate) struct QuicListenerState {
    /// Its config.
    pub config: ListenerConfig,
    /// Its quinn server config.
    pub server: quinn::ServerConfig,
    /// Stream admission slots (`max_connections`).
    pub slots: Arc<Semaphore>,
    /// QUIC connections open now.
    connections: AtomicU32,
}

impl QuicListenerState {
    /// Wraps a built listener.
    pub(crate) fn new(config: ListenerConfig, server: quinn::ServerConfig) -> Self {
        let slots = Arc::new(tokio::sync::Semaphore::new(
            config.limits.max_connections as usize,
        ));
        Self {
            config,
            server,
            slots,
            connections: AtomicU32::new(0),
        }
    }
}

struct Running {
    state: Arc<ArcSwap<QuicListenerState>>,
    endpoint: Endpoint,
    stop: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // No new connections; open ones finish their streams (see `serve_connection`).
        self.endpoint.set_server_config(None);
        let _ = self.stop.send(true);
    }
}

/// The running QUIC listeners, by address.
#[derive(Default)]
pub(crate) struct QuicListeners {
    running: HashMap<SocketAddr, Running>,
}

/// UDP endpoints bound for addresses no QUIC listener serves yet.
pub(crate) struct Bound(HashMap<SocketAddr, Endpoint>);

impl QuicListeners {
    /// How many run.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// Binds the UDP addresses that no running QUIC listener holds; the error names the
    /// address. Must run inside the tokio runtime.
    pub(crate) fn bind_new(
        &self,
        wanted: impl Iterator<Item = SocketAddr>,
    ) -> Result<Bound, (SocketAddr, std::io::Error)> {
        let mut bound = HashMap::new();
        for addr in wanted {
            if self.running.contains_key(&addr) {
                continue;
            }
            let endpoint = UdpSocket::bind(addr)
                .and_then(|s| {
                    Endpoint::new(EndpointConfig::default(), None, s, Arc::new(TokioRuntime))
                })
                .map_err(|e| (addr, e))?;
            bound.insert(addr, endpoint);
        }
        Ok(Bound(bound))
    }

    /// Replaces the running set with `states`, keyed by address (as TLS listeners do).
    pub(crate) fn swap_in(
        &mut self,
        states: Vec<QuicListenerState>,
        mut bound: Bound,
        shared: &Arc<DrainState>,
    ) {
        let mut next = HashMap::with_capacity(states.len());
        for state in states {
            let addr = state.config.listen;
            let server = state.server.clone();
            if let Some(existing) = self.running.remove(&addr) {
                existing.endpoint.set_server_config(Some(server));
                existing.state.store(Arc::new(state));
                next.insert(addr, existing);
            } else if let Some(endpoint) = bound.0.remove(&addr) {
                tracing::info!(name = %state.config.name, %addr, "listening (QUIC)");
                endpoint.set_server_config(Some(server));
                let state = Arc::new(ArcSwap::from_pointee(state));
                let (stop, rx) = watch::channel(false);
                tokio::spawn(accept_loop(
                    endpoint.clone(),
                    state.clone(),
                    shared.clone(),
                    rx,
                ));
                next.insert(
                    addr,
                    Running {
                        state,
                        endpoint,
                        stop,
                    },
                );
            }
        }
        for (addr, old) in self.running.drain() {
            tracing::info!(name = %old.state.load().config.name, %addr, "stopped accepting (removed)");
        }
        self.running = next;
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    state: Arc<ArcSwap<QuicListenerState>>,
    shared: Arc<DrainState>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let st = state.load_full();
        // Counted before the task starts, so a burst cannot overshoot the limit.
        let open = st.connections.fetch_add(1, Ordering::AcqRel);
        if open >= st.config.limits.max_connections {
            st.connections.fetch_sub(1, Ordering::AcqRel);
            counter!(m::CONNECTIONS_REJECTED, "listener" => st.config.name.clone()).increment(1);
            incoming.refuse();
            continue;
        }
        let peer = incoming.remote_address();
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            let up = gauge!(QUIC_CONNECTIONS, "listener" => st.config.name.clone());
            handshake_and_serve(&st, incoming, peer, &shared, stop, &up).await;
            st.connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn handshake_and_serve(
    st: &Arc<QuicListenerState>,
    incoming: quinn::Incoming,
    peer: SocketAddr,
    shared: &Arc<DrainState>,
    stop: watch::Receiver<bool>,
    up: &metrics::Gauge,
) {
    let name = st.config.name.as_str();
    let mut record = ConnectionRecord::new(name, peer);
    let started = Instant::now();
    let deadline = Duration::from_secs(st.config.limits.handshake_timeout_secs);
    let conn = match incoming.accept() {
        Ok(connecting) => timeout(deadline, connecting).await,
        Err(e) => Ok(Err(e)),
    };
    let conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let outcome = super::classify(&e);
            record.handshake_done(outcome, started.elapsed());
            tracing::info!(listener = name, %peer, outcome = outcome.label(), error = %e, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            record.handshake_done(HandshakeOutcome::Timeout, started.elapsed());
            return;
        }
    };
    let (facts, alpn) = session_facts(&conn);
    record.session = Some(facts.clone());
    if !admitted(st.config.policy, facts.group) || alpn.as_deref() != Some(ALPN) {
        record.handshake_done(HandshakeOutcome::PolicyRefused, started.elapsed());
        conn.close(VarInt::from_u32(code::POLICY), b"policy");
        return;
    }
    record.handshake_done(HandshakeOutcome::Ok, started.elapsed());
    tracing::info!(listener = name, %peer, group = facts.group, suite = facts.suite, "QUIC connection up");
    up.increment(1.0);
    serve_connection(st, &conn, peer, &facts, shared, stop).await;
    up.decrement(1.0);
}

/// Whether `group` (a label) is one the policy admits.
fn admitted(policy: KxPolicy, group: &str) -> bool {
    pqgate_agility::KNOWN_GROUPS
        .iter()
        .any(|g| g.name == group && policy.admits(g))
}

/// Accepts streams until the connection ends or the listener stops; then waits for the open
/// streams to finish and closes the connection.
async fn serve_connection(
    st: &Arc<QuicListenerState>,
    conn: &quinn::Connection,
    peer: SocketAddr,
    facts: &SessionFacts,
    shared: &Arc<DrainState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut streams = JoinSet::new();
    loop {
        let (send, recv) = tokio::select! {
            s = conn.accept_bi() => match s {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::info!(listener = %st.config.name, %peer, reason = %e, "QUIC connection closed");
                    break;
                }
            },
            _ = stop.changed() => break,
            Some(_) = streams.join_next(), if !streams.is_empty() => continue,
        };
        let stream = QuicStream::new(send, recv);
        let Ok(permit) = st.slots.clone().try_acquire_owned() else {
            counter!(m::CONNECTIONS_REJECTED, "listener" => st.config.name.clone()).increment(1);
            stream.abort(code::REFUSED);
            continue;
        };
        let (st, facts, guard) = (st.clone(), facts.clone(), shared.open_connection());
        streams.spawn(async move {
            let _permit = permit;
            let _guard = guard;
            serve_stream(&st, stream, peer, facts).await;
        });
    }
    while streams.join_next().await.is_some() {}
    conn.close(VarInt::from_u32(code::DONE), b"done");
}

async fn serve_stream(
    st: &QuicListenerState,
    mut stream: QuicStream,
    peer: SocketAddr,
    facts: SessionFacts,
) {
    let name = st.config.name.clone();
    let limits = &st.config.limits;
    let active = gauge!(QUIC_ACTIVE_STREAMS, "listener" => name.clone());
    let conns = gauge!(m::ACTIVE_CONNECTIONS, "listener" => name.clone());
    active.increment(1.0);
    conns.increment(1.0);
    let mut record = ConnectionRecord::new(&st.config.name, peer);
    record.session = Some(facts);
    let (outcome, detail) = 'done: {
        let wait = Duration::from_secs(limits.handshake_timeout_secs);
        match timeout(wait, stream.read_u8()).await {
            Ok(Ok(STREAM_PREAMBLE)) => {}
            _ => {
                stream.abort(code::PROTOCOL);
                break 'done (ConnectionOutcome::Error, Some("bad stream preamble".into()));
            }
        }
        let Backend::Tcp(target) = &st.config.backend else {
            stream.abort(code::PROTOCOL);
            break 'done (ConnectionOutcome::Error, Some("no TCP backend".into()));
        };
        let backend = match connect(target, Duration::from_secs(limits.connect_timeout_secs)).await
        {
            Ok(b) => b,
            Err(e) => {
                counter!(m::BACKEND_CONNECT_FAILURES, "listener" => name).increment(1);
                stream.abort(code::BACKEND_UNAVAILABLE);
                break 'done (
                    ConnectionOutcome::BackendUnavailable,
                    Some(format!("{target}: {e}")),
                );
            }
        };
        let counters = RelayCounters {
            up: counter!(m::BYTES, "listener" => name.clone(), "direction" => m::DIRECTION_IN),
            down: counter!(m::BYTES, "listener" => name, "direction" => m::DIRECTION_OUT),
        };
        let idle = Duration::from_secs(limits.idle_timeout_secs);
        let report = relay(&mut stream, backend, idle, counters).await;
        // The stream counts as open (drain waits) until the connector has everything.
        stream.delivered(idle).await;
        (record.up, record.down) = (report.up, report.down);
        (report.outcome, None)
    };
    record.finish(outcome, detail.as_deref());
    active.decrement(1.0);
    conns.decrement(1.0);
}
