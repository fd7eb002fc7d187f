//! The accept loop shared by listeners and connectors: admission against `max_connections`,
//! then one task per connection, served by the [`Service`] current at its accept.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{counter, gauge};
use pqgate_core::metrics::{self as m, ConnectionOutcome};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::proxy::drain::DrainState;
use crate::proxy::record::ConnectionRecord;

/// Pending connections the kernel queues per listening socket.
const LISTEN_BACKLOG: u32 = 1024;
/// At most one "max_connections reached" log line per listener per interval.
const REJECT_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A listener's or connector's name (the metric label) and admission slots
/// (`max_connections`).
pub(crate) struct Admission {
    /// Config name.
    pub(crate) name: String,
    /// Admission slots.
    pub(crate) slots: Arc<Semaphore>,
}

impl Admission {
    /// `max_connections` slots for the endpoint `name`.
    pub(crate) fn new(name: &str, max_connections: u32) -> Self {
        Self {
            name: name.to_owned(),
            slots: Arc::new(Semaphore::new(max_connections as usize)),
        }
    }
}

/// A listener or connector: named, admission-limited, serving one connection at a time per task.
pub(crate) trait Service: Send + Sync + 'static {
    /// Its name and admission slots.
    fn admission(&self) -> &Admission;
    /// Serves one accepted connection to its end, filling in `record` (which the accept loop
    /// then logs and counts); the outcome and an optional detail for the log line.
    fn handle(
        &self,
        tcp: TcpStream,
        record: &mut ConnectionRecord<'_>,
    ) -> impl Future<Output = (ConnectionOutcome, Option<String>)> + Send;
}

/// Binds a listening TCP socket with address reuse and our backlog.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
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
pub(crate) async fn accept_loop<E: Service>(
    socket: TcpListener,
    state: Arc<ArcSwap<E>>,
    shared: Arc<DrainState>,
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
        let Ok(permit) = endpoint.admission().slots.clone().try_acquire_owned() else {
            counter!(m::CONNECTIONS_REJECTED, "listener" => endpoint.admission().name.clone())
                .increment(1);
            rejected_since_warn += 1;
            if last_warn.is_none_or(|t: Instant| t.elapsed() >= REJECT_WARN_INTERVAL) {
                tracing::warn!(
                    listener = %endpoint.admission().name,
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
            let active =
                gauge!(m::ACTIVE_CONNECTIONS, "listener" => endpoint.admission().name.clone());
            active.increment(1.0);
            let _ = tcp.set_nodelay(true);
            let mut record = ConnectionRecord::new(&endpoint.admission().name, peer);
            let (outcome, detail) = endpoint.handle(tcp, &mut record).await;
            record.finish(outcome, detail.as_deref());
            active.decrement(1.0);
        });
    }
}
