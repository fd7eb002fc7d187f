//! TLS origination: accept plaintext, connect to the remote, complete a verified handshake
//! under the connector's policy, then relay.

use std::time::Duration;

use metrics::counter;
use pqgate_core::config::ConnectorConfig;
use pqgate_core::metrics::{self as m, ConnectionOutcome, HandshakeOutcome};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;

use crate::proxy::accept::{Admission, Service};
use crate::proxy::backend::connect;
use crate::proxy::record::ConnectionRecord;
use crate::proxy::relay::{RelayCounters, relay};
use crate::tls::client_config::ConnectorTls;
use crate::tls::{SessionFacts, handshake_outcome};

/// A connector's config and TLS state, swapped as a whole on reload.
pub(crate) struct ConnectorState {
    /// Its config.
    pub config: ConnectorConfig,
    /// Its TLS client config.
    pub tls: ConnectorTls,
    /// Name and admission slots.
    pub(crate) admission: Admission,
}

impl ConnectorState {
    /// Wraps a built connector.
    pub(crate) fn new(config: ConnectorConfig, tls: ConnectorTls) -> Self {
        let admission = Admission::new(&config.name, config.limits.max_connections);
        Self {
            config,
            tls,
            admission,
        }
    }
}

impl Service for ConnectorState {
    fn admission(&self) -> &Admission {
        &self.admission
    }

    async fn handle(
        &self,
        plain: TcpStream,
        record: &mut ConnectionRecord<'_>,
    ) -> (ConnectionOutcome, Option<String>) {
        let c = &self.config;
        let name = c.name.clone();
        record.sni = Some(self.tls.server_name.to_str().into_owned());
        let remote = match connect(
            &c.remote,
            Duration::from_secs(c.limits.connect_timeout_secs),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                counter!(m::BACKEND_CONNECT_FAILURES, "listener" => name).increment(1);
                return (
                    ConnectionOutcome::BackendUnavailable,
                    Some(format!("{}: {e}", c.remote)),
                );
            }
        };
        let started = Instant::now();
        let connector = TlsConnector::from(self.tls.config.clone());
        let deadline = Duration::from_secs(c.limits.handshake_timeout_secs);
        let handshake = timeout(
            deadline,
            connector.connect(self.tls.server_name.clone(), remote),
        )
        .await;
        let tls = match handshake_outcome(handshake, record, started) {
            Ok(done) => done,
            Err(end) => return end,
        };
        record.session = Some(SessionFacts::of(tls.get_ref().1));
        record.handshake_done(HandshakeOutcome::Ok, started.elapsed());
        let counters = RelayCounters {
            up: counter!(m::BYTES, "listener" => name.clone(), "direction" => m::DIRECTION_IN),
            down: counter!(m::BYTES, "listener" => name, "direction" => m::DIRECTION_OUT),
        };
        let report = relay(
            plain,
            tls,
            Duration::from_secs(c.limits.idle_timeout_secs),
            counters,
        )
        .await;
        (record.up, record.down) = (report.up, report.down);
        (report.outcome, None)
    }
}
