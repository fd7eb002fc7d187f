//! The QUIC connector: accepts plaintext TCP on `listen` (admission as for TLS connectors) and
//! carries each connection as one stream of a single QUIC connection to `remote`. A link task,
//! started by the first TCP connection, keeps that connection up: it reconnects with bounded
//! exponential backoff when the connection drops or a handshake fails, and closes it when the
//! connector's state is dropped (removed, or replaced by a reload once its streams are done).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge};
use pqgate_core::config::ConnectorConfig;
use pqgate_core::metrics::{self as m, ConnectionOutcome, HandshakeOutcome};
use quinn::{Endpoint, VarInt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use super::record::QuicHandshake;
use super::stream::QuicStream;
use super::tls::ConnectorQuic;
use super::{QUIC_ACTIVE_STREAMS, QUIC_CONNECTIONS, QUIC_RECONNECTS, STREAM_PREAMBLE, code};
use crate::proxy::accept::{Admission, Service};
use crate::proxy::record::ConnectionRecord;
use crate::proxy::relay::{RelayCounters, relay};
use crate::tls::SessionFacts;

/// First wait before reconnecting after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between reconnect attempts: a remote that comes back is in use within this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The established connection and what it negotiated.
#[derive(Clone)]
struct Live {
    conn: quinn::Connection,
    facts: SessionFacts,
    /// Kept alive as long as the connection is used.
    _endpoint: Endpoint,
}

/// What the link task needs.
struct LinkSpec {
    config: ConnectorConfig,
    quic: ConnectorQuic,
}

/// The connector's one QUIC connection, kept up by a task while this lives.
struct Link {
    spec: Arc<LinkSpec>,
    live: watch::Sender<Option<Live>>,
    stop: watch::Sender<bool>,
    started: OnceLock<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A QUIC connector's config and link, swapped as a whole on reload.
pub(crate) struct QuicConnectorState {
    /// Its config.
    pub config: ConnectorConfig,
    /// Name and admission slots.
    pub(crate) admission: Admission,
    link: Link,
}

impl QuicConnectorState {
    /// Wraps a built connector; nothing runs until the first TCP connection.
    pub(crate) fn new(config: ConnectorConfig, quic: ConnectorQuic) -> Self {
        let admission = Admission::new(&config.name, config.limits.max_connections);
        let spec = Arc::new(LinkSpec {
            config: config.clone(),
            quic,
        });
        let link = Link {
            spec,
            live: watch::channel(None).0,
            stop: watch::channel(false).0,
            started: OnceLock::new(),
        };
        Self {
            config,
            admission,
            link,
        }
    }

    /// The live connection, starting the link task on first use and waiting up to the connect
    /// and handshake timeouts for it.
    async fn connection(&self) -> Option<Live> {
        self.link.started.get_or_init(|| {
            let (spec, live, stop) = (
                self.link.spec.clone(),
                self.link.live.clone(),
                self.link.stop.subscribe(),
            );
            tokio::spawn(run_link(spec, live, stop));
        });
        let limits = &self.config.limits;
        let wait = Duration::from_secs(limits.connect_timeout_secs + limits.handshake_timeout_secs);
        let mut rx = self.link.live.subscribe();
        let found = timeout(wait, rx.wait_for(|l| l.is_some())).await;
        match found {
            Ok(Ok(live)) => live.clone(),
            _ => None,
        }
    }
}

impl Service for QuicConnectorState {
    fn admission(&self) -> &Admission {
        &self.admission
    }

    async fn handle(
        &self,
        plain: TcpStream,
        record: &mut ConnectionRecord<'_>,
    ) -> (ConnectionOutcome, Option<String>) {
        let name = self.config.name.clone();
        let Some(live) = self.connection().await else {
            counter!(m::BACKEND_CONNECT_FAILURES, "listener" => name).increment(1);
            return (
                ConnectionOutcome::BackendUnavailable,
                Some(format!("no QUIC connection to {}", self.config.remote)),
            );
        };
        record.session = Some(live.facts.clone());
        let limits = &self.config.limits;
        let wait = Duration::from_secs(limits.connect_timeout_secs);
        let (mut send, recv) = match timeout(wait, live.conn.open_bi()).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return (ConnectionOutcome::Error, Some(format!("open stream: {e}"))),
            Err(_) => {
                return (
                    ConnectionOutcome::Error,
                    Some("open stream: timeout".into()),
                );
            }
        };
        if let Err(e) = send.write_all(&[STREAM_PREAMBLE]).await {
            return (ConnectionOutcome::Error, Some(format!("stream: {e}")));
        }
        let active = gauge!(QUIC_ACTIVE_STREAMS, "listener" => name.clone());
        active.increment(1.0);
        let counters = RelayCounters {
            up: counter!(m::BYTES, "listener" => name.clone(), "direction" => m::DIRECTION_IN),
            down: counter!(m::BYTES, "listener" => name, "direction" => m::DIRECTION_OUT),
        };
        let idle = Duration::from_secs(limits.idle_timeout_secs);
        let mut stream = QuicStream::new(send, recv);
        let report = relay(plain, &mut stream, idle, counters).await;
        stream.delivered(idle).await;
        active.decrement(1.0);
        (record.up, record.down) = (report.up, report.down);
        (report.outcome, None)
    }
}

/// Reads the negotiated facts (and ALPN) off an established connection.
pub(crate) fn session_facts(conn: &quinn::Connection) -> (SessionFacts, Option<Vec<u8>>) {
    let h = QuicHandshake::of(conn);
    let info = h.group.and_then(pqgate_agility::group_info);
    let facts = SessionFacts {
        version: "TLSv1.3",
        suite: pqgate_agility::suite_label(h.suite),
        group: pqgate_agility::group_label(h.group),
        post_quantum: info.is_some_and(|i| i.post_quantum),
        alpn: h.alpn.clone(),
        peer_cert: conn.peer_identity().is_some(),
    };
    (facts, h.alpn)
}

/// Keeps one connection up until `stop`.
async fn run_link(
    spec: Arc<LinkSpec>,
    live: watch::Sender<Option<Live>>,
    mut stop: watch::Receiver<bool>,
) {
    let name = spec.config.name.clone();
    let up = gauge!(QUIC_CONNECTIONS, "listener" => name.clone());
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = tokio::select! {
            a = connect_once(&spec) => a,
            _ = stop.changed() => return,
        };
        match attempt {
            Ok(l) => {
                backoff = BACKOFF_MIN;
                let conn = l.conn.clone();
                live.send_replace(Some(l));
                up.increment(1.0);
                let reason = tokio::select! {
                    r = conn.closed() => r.to_string(),
                    _ = stop.changed() => {
                        live.send_replace(None);
                        up.decrement(1.0);
                        conn.close(VarInt::from_u32(code::DONE), b"connector stopped");
                        return;
                    }
                };
                live.send_replace(None);
                up.decrement(1.0);
                tracing::warn!(connector = %name, %reason, "QUIC connection lost; reconnecting");
            }
            Err(detail) => {
                tracing::warn!(connector = %name, error = %detail, retry_in_ms = backoff.as_millis() as u64, "QUIC connect failed");
            }
        }
        counter!(QUIC_RECONNECTS, "listener" => name.clone()).increment(1);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection attempt to each address of the remote in turn; counts the handshake.
async fn connect_once(spec: &LinkSpec) -> Result<Live, String> {
    let c = &spec.config;
    let addrs = tokio::net::lookup_host((c.remote.host.as_str(), c.remote.port))
        .await
        .map_err(|e| format!("{}: {e}", c.remote))?;
    let mut last = format!("{}: name resolved to no address", c.remote);
    for addr in addrs {
        match handshake(spec, addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

async fn handshake(spec: &LinkSpec, addr: SocketAddr) -> Result<Live, String> {
    let c = &spec.config;
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = Endpoint::client(local).map_err(|e| format!("bind {local}: {e}"))?;
    let mut record = ConnectionRecord::new(&c.name, addr);
    let started = Instant::now();
    let connecting = endpoint
        .connect_with(spec.quic.client.clone(), addr, &spec.quic.server_name)
        .map_err(|e| e.to_string())?;
    let deadline =
        Duration::from_secs(c.limits.connect_timeout_secs + c.limits.handshake_timeout_secs);
    let conn = match timeout(deadline, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            record.handshake_done(super::classify(&e), started.elapsed());
            return Err(e.to_string());
        }
        Err(_) => {
            record.handshake_done(HandshakeOutcome::Timeout, started.elapsed());
            return Err("handshake timeout".into());
        }
    };
    let (facts, _) = session_facts(&conn);
    record.session = Some(facts.clone());
    record.handshake_done(HandshakeOutcome::Ok, started.elapsed());
    tracing::info!(connector = %c.name, remote = %addr, group = facts.group, suite = facts.suite, "QUIC connection up");
    Ok(Live {
        conn,
        facts,
        _endpoint: endpoint,
    })
}
