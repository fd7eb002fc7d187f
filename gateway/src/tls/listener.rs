//! TLS termination: read the ClientHello, pick the route by SNI, complete the handshake under
//! the handshake timeout with that route's prebuilt config, check the policy once more, then
//! serve the built-in page or relay to the backend (optionally behind a PROXY v2 header).

use std::net::SocketAddr;
use std::time::Duration;

use metrics::counter;
use pqgate_core::config::{Backend, HostPort, ListenerConfig};
use pqgate_core::metrics::{self as m, ConnectionOutcome, HandshakeOutcome};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::proxy::accept::{Admission, Service};
use crate::proxy::backend::{connect, proxy_header};
use crate::proxy::builtin_page::{self, PageContext};
use crate::proxy::record::ConnectionRecord;
use crate::proxy::relay::{RelayCounters, relay};
use crate::tls::server_config::ListenerTls;
use crate::tls::{SessionFacts, handshake_outcome};

/// A listener's config and TLS state, swapped as a whole on reload.
pub(crate) struct ListenerState {
    /// Its config.
    pub config: ListenerConfig,
    /// Its TLS configs and routes.
    pub tls: ListenerTls,
    /// Name and admission slots.
    pub(crate) admission: Admission,
}

impl ListenerState {
    /// Wraps a built listener.
    pub(crate) fn new(config: ListenerConfig, tls: ListenerTls) -> Self {
        let admission = Admission::new(&config.name, config.limits.max_connections);
        Self {
            config,
            tls,
            admission,
        }
    }
}

impl Service for ListenerState {
    fn admission(&self) -> &Admission {
        &self.admission
    }

    async fn handle(
        &self,
        tcp: TcpStream,
        record: &mut ConnectionRecord<'_>,
    ) -> (ConnectionOutcome, Option<String>) {
        let limits = &self.config.limits;
        let local = tcp.local_addr().ok();
        let started = Instant::now();
        let deadline = Duration::from_secs(limits.handshake_timeout_secs);
        let handshake = timeout(deadline, self.handshake(tcp, &mut record.sni)).await;
        let (mut tls, backend) = match handshake_outcome(handshake, record, started) {
            Ok(done) => done,
            Err(end) => return end,
        };
        let facts = SessionFacts::of(tls.get_ref().1);
        let admitted = pqgate_agility::KNOWN_GROUPS
            .iter()
            .any(|g| g.name == facts.group && self.tls.policy.admits(g));
        record.session = Some(facts.clone());
        if !admitted {
            record.handshake_done(HandshakeOutcome::PolicyRefused, started.elapsed());
            let _ = tls.shutdown().await;
            return (
                ConnectionOutcome::HandshakeFailed,
                Some("negotiated group outside policy".into()),
            );
        }
        record.handshake_done(HandshakeOutcome::Ok, started.elapsed());
        let idle = Duration::from_secs(limits.idle_timeout_secs);
        match backend {
            Backend::BuiltinInfo => {
                let ctx = PageContext {
                    listener: &self.config.name,
                    sni: record.sni.as_deref(),
                };
                match builtin_page::serve(&mut tls, &facts, &ctx, idle).await {
                    Ok(traffic) => {
                        let (up, down) = (traffic.read, traffic.written);
                        let name = self.config.name.clone();
                        counter!(m::BYTES, "listener" => name.clone(), "direction" => m::DIRECTION_IN)
                            .increment(up);
                        counter!(m::BYTES, "listener" => name, "direction" => m::DIRECTION_OUT)
                            .increment(down);
                        (record.up, record.down) = (up, down);
                        (ConnectionOutcome::Completed, None)
                    }
                    Err(e) => (ConnectionOutcome::Error, Some(e.to_string())),
                }
            }
            Backend::Tcp(target) => self.to_backend(tls, &target, local, &facts, record).await,
        }
    }
}

impl ListenerState {
    /// Reads the ClientHello, routes it, and completes the handshake.
    async fn handshake(
        &self,
        tcp: TcpStream,
        sni_out: &mut Option<String>,
    ) -> std::io::Result<(TlsStream<TcpStream>, Backend)> {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
        let sni = start.client_hello().server_name().map(str::to_owned);
        let route = self.tls.route(sni.as_deref());
        *sni_out = sni;
        let stream = start.into_stream(route.config.clone()).await?;
        Ok((stream, route.backend.clone()))
    }

    async fn to_backend(
        &self,
        mut tls: TlsStream<TcpStream>,
        target: &HostPort,
        local: Option<SocketAddr>,
        facts: &SessionFacts,
        record: &mut ConnectionRecord<'_>,
    ) -> (ConnectionOutcome, Option<String>) {
        let limits = &self.config.limits;
        let name = self.config.name.clone();
        let mut backend =
            match connect(target, Duration::from_secs(limits.connect_timeout_secs)).await {
                Ok(b) => b,
                Err(e) => {
                    counter!(m::BACKEND_CONNECT_FAILURES, "listener" => name).increment(1);
                    let _ = tls.shutdown().await;
                    return (
                        ConnectionOutcome::BackendUnavailable,
                        Some(format!("{target}: {e}")),
                    );
                }
            };
        if self.config.proxy_protocol {
            let header = proxy_header(record.peer, local, facts, record.sni.as_deref());
            if let Err(e) = backend.write_all(&header).await {
                return (ConnectionOutcome::Error, Some(format!("PROXY header: {e}")));
            }
        }
        let counters = RelayCounters {
            up: counter!(m::BYTES, "listener" => name.clone(), "direction" => m::DIRECTION_IN),
            down: counter!(m::BYTES, "listener" => name, "direction" => m::DIRECTION_OUT),
        };
        let report = relay(
            tls,
            backend,
            Duration::from_secs(limits.idle_timeout_secs),
            counters,
        )
        .await;
        (record.up, record.down) = (report.up, report.down);
        (report.outcome, None)
    }
}
