//! The daemon: binds and runs every listener and connector, reloads on SIGHUP (a new config is
//! built and bound completely before anything is swapped, so a bad one changes nothing), and
//! drains on SIGTERM. Reports to systemd throughout.

pub(crate) mod assemble;
pub(crate) mod notify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;
use pqgate_agility::Registry;
use pqgate_core::metrics::{self as m, ConnectionOutcome};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::{self, ConfigErrors, Loaded};
use crate::daemon::assemble::{Built, SelfSignedMode, build};
use crate::proxy::accept::{Service, accept_loop, bind};
use crate::proxy::drain::DrainState;
use crate::tls::connector::ConnectorState;
use crate::tls::listener::ListenerState;
use crate::wg::tunnels::Tunnels;

/// Why the daemon could not start or apply a config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DaemonError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// An address could not be bound.
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        /// Config key path.
        key: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// A WireGuard interface could not be brought up or changed.
    #[error(transparent)]
    Wireguard(#[from] crate::wg::tunnels::TunnelError),
    /// The firewall could not be applied (nft's message included).
    #[error("firewall: {0}")]
    Firewall(#[from] crate::firewall::FirewallError),
    /// A `[wireguard.pq]` channel could not start.
    #[error(transparent)]
    Pq(#[from] crate::wg::pq::PqError),
}

/// One running listener or connector.
struct Running<E> {
    state: Arc<ArcSwap<E>>,
    stop: watch::Sender<bool>,
}

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The running gateway.
pub(crate) struct Daemon {
    config_path: Option<PathBuf>,
    shared: Arc<DrainState>,
    listeners: HashMap<SocketAddr, Running<ListenerState>>,
    connectors: HashMap<SocketAddr, Running<ConnectorState>>,
    /// Listeners with `transport = "quic"` (UDP).
    quic_listeners: crate::quic::QuicListeners,
    /// Connectors with `transport = "quic"` (TCP in, QUIC streams out).
    quic_connectors: HashMap<SocketAddr, Running<crate::quic::QuicConnectorState>>,
    admin_stop: Option<watch::Sender<bool>>,
    drain_timeout: Duration,
    admin_addr: Option<SocketAddr>,
    registry: Arc<Registry>,
    firewall: crate::firewall::Firewall,
    /// Settings applied only at start, to warn when a reload changes them.
    restart_only: RestartOnly,
    /// The `[[wireguard]]` interfaces; `None` once shut down.
    tunnels: Option<Tunnels>,
    /// The PQ PSK channels of interfaces with `[wireguard.pq]`.
    pq: crate::wg::pq::PqTunnels,
}

/// The settings a reload cannot change.
#[derive(PartialEq)]
struct RestartOnly {
    log: pqgate_core::config::LogConfig,
    admin: pqgate_core::config::AdminConfig,
    worker_threads: usize,
    plugins: pqgate_core::config::PluginsConfig,
    plugin_files: Vec<pqgate_core::config::PluginConfig>,
}

impl RestartOnly {
    fn of(config: &pqgate_core::config::Config) -> Self {
        Self {
            log: config.log.clone(),
            admin: config.admin.clone(),
            worker_threads: config.service.worker_threads,
            plugins: config.plugins.clone(),
            plugin_files: config.plugin_files.clone(),
        }
    }
}

impl Daemon {
    /// Builds, binds and starts everything in `loaded`.
    pub(crate) async fn start(
        loaded: Loaded,
        config_path: Option<PathBuf>,
        metrics: PrometheusHandle,
        registry: Arc<Registry>,
    ) -> Result<Self, DaemonError> {
        let built = build(&loaded, SelfSignedMode::Generate, &registry)?;
        let wg_specs = crate::wg::tunnels::specs(&loaded)?;
        let shared = Arc::new(DrainState::default());
        let config = &loaded.config;
        let mut daemon = Self {
            config_path,
            shared: shared.clone(),
            listeners: HashMap::new(),
            connectors: HashMap::new(),
            quic_listeners: crate::quic::QuicListeners::default(),
            quic_connectors: HashMap::new(),
            admin_stop: None,
            drain_timeout: Duration::from_secs(config.service.drain_timeout_secs),
            admin_addr: None,
            firewall: crate::firewall::Firewall::default(),
            restart_only: RestartOnly::of(config),
            tunnels: None,
            pq: crate::wg::pq::PqTunnels::new(Arc::clone(&registry)),
            registry,
        };
        // Bind the admin socket first (a taken port fails the start early) but serve /healthz
        // only once every listener is bound: a 200 then means "serving".
        let admin_socket = match config.admin.enabled {
            true => Some(
                bind(config.admin.listen).map_err(|source| DaemonError::Bind {
                    key: format!("admin.listen in {}", loaded.source),
                    addr: config.admin.listen,
                    source,
                })?,
            ),
            false => None,
        };
        // WireGuard interfaces first: /healthz answers 200 only once they are up too.
        daemon.tunnels = Some(Tunnels::start(wg_specs, config.admin.enabled)?);
        daemon.sync_pq(&config.wireguard).await?;
        daemon.apply(built, &loaded)?;
        if let Some(socket) = admin_socket {
            let (tx, rx) = watch::channel(false);
            let board = daemon.pq.board();
            let status: crate::admin::StatusFn =
                Arc::new(move || board.json(crate::net::clock::unix_ms().unwrap_or(0)));
            tokio::spawn(crate::admin::serve(socket, metrics, shared, status, rx));
            daemon.admin_stop = Some(tx);
            daemon.admin_addr = Some(config.admin.listen);
            tracing::info!(addr = %config.admin.listen, "admin endpoint listening");
        }
        gauge!(m::UP).set(1.0);
        Ok(daemon)
    }

    /// Serves until SIGTERM or SIGINT, reloading on SIGHUP; then drains.
    pub(crate) async fn run(mut self) -> Result<(), DaemonError> {
        let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
        let watchdog = notify::watchdog_interval();
        let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        notify::notify(&format!("READY=1\nSTATUS={}", self.status()));
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload().await,
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tick.tick() => if watchdog.is_some() { notify::notify("WATCHDOG=1") },
            }
        }
        self.drain().await;
        Ok(())
    }

    fn status(&self) -> String {
        format!(
            "serving {} listener(s), {} connector(s), {} WireGuard interface(s)",
            self.listeners.len() + self.quic_listeners.len(),
            self.connectors.len() + self.quic_connectors.len(),
            self.tunnels.as_ref().map_or(0, Tunnels::len)
        )
    }

    async fn reload(&mut self) {
        notify::reloading();
        tracing::info!("reloading configuration");
        match self.try_reload() {
            Ok(wireguard) => {
                if let Err(e) = self.sync_pq(&wireguard).await {
                    tracing::error!("{e}");
                }
                counter!(m::CONFIG_RELOADS, "outcome" => "ok").increment(1);
                tracing::info!(status = %self.status(), "configuration reloaded");
            }
            Err(e) => {
                counter!(m::CONFIG_RELOADS, "outcome" => "rejected").increment(1);
                tracing::error!("reload rejected, the running configuration stays: {e}");
            }
        }
        notify::notify(&format!("READY=1\nSTATUS={}", self.status()));
    }

    /// Starts, updates or stops the `[wireguard.pq]` channels to match `sections`; the first
    /// channel that cannot start is the error (the others are synced).
    async fn sync_pq(
        &mut self,
        sections: &[pqgate_core::wg::WireguardConfig],
    ) -> Result<(), DaemonError> {
        let Some(tunnels) = self.tunnels.as_ref() else {
            return Ok(());
        };
        let (warnings, errors) = self.pq.sync(sections, tunnels).await;
        for w in warnings {
            tracing::warn!("{w}");
        }
        let mut errors = errors.into_iter();
        let first = errors.next();
        for e in errors {
            tracing::error!("{e}");
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Loads and applies a new config; returns its `[[wireguard]]` sections for the PQ sync.
    fn try_reload(&mut self) -> Result<Vec<pqgate_core::wg::WireguardConfig>, DaemonError> {
        let loaded = config::load(self.config_path.as_deref())?;
        let built = build(&loaded, SelfSignedMode::Generate, &self.registry)?;
        // WireGuard in two steps around the listener swap: `stage` (endpoints resolved, new
        // interfaces started) is undone by dropping it if anything after it fails.
        let wg_specs = crate::wg::tunnels::specs(&loaded)?;
        let staged = match &self.tunnels {
            Some(t) => Some(t.stage(wg_specs)?),
            None => None,
        };
        self.apply(built, &loaded)?;
        if let (Some(t), Some(staged)) = (self.tunnels.as_mut(), staged) {
            for w in t.commit(staged) {
                tracing::warn!("{w}");
            }
        }
        if RestartOnly::of(&loaded.config) != self.restart_only {
            tracing::warn!(
                "[log], [admin], [plugins], [[plugin]] and service.worker_threads changes take \
                 effect at the next restart"
            );
        }
        self.drain_timeout = Duration::from_secs(loaded.config.service.drain_timeout_secs);
        Ok(loaded.config.wireguard)
    }

    /// Binds every new address first, then installs the firewall, then swaps states, starts new
    /// endpoints and stops removed ones. A bind or firewall failure leaves everything as it was.
    fn apply(&mut self, built: Built, loaded: &Loaded) -> Result<(), DaemonError> {
        let listener_sockets = bind_new(
            &self.listeners,
            built.listeners.iter().map(|l| l.config.listen),
            "listener",
            loaded,
        )?;
        let connector_sockets = bind_new(
            &self.connectors,
            built.connectors.iter().map(|c| c.config.listen),
            "connector",
            loaded,
        )?;
        let quic_connector_sockets = bind_new(
            &self.quic_connectors,
            built.quic_connectors.iter().map(|c| c.config.listen),
            "quic connector",
            loaded,
        )?;
        let quic_endpoints = self
            .quic_listeners
            .bind_new(built.quic_listeners.iter().map(|l| l.config.listen))
            .map_err(|(addr, source)| DaemonError::Bind {
                key: format!("listener (transport = \"quic\", UDP) in {}", loaded.source),
                addr,
                source,
            })?;
        // Every socket is bound: install the ruleset; if nft refuses it, nothing changes.
        self.firewall.apply(&loaded.config)?;
        swap_in(
            &mut self.listeners,
            built.listeners,
            listener_sockets,
            &self.shared,
            |l| l.config.listen,
        );
        swap_in(
            &mut self.connectors,
            built.connectors,
            connector_sockets,
            &self.shared,
            |c| c.config.listen,
        );
        swap_in(
            &mut self.quic_connectors,
            built.quic_connectors,
            quic_connector_sockets,
            &self.shared,
            |c| c.config.listen,
        );
        self.quic_listeners
            .swap_in(built.quic_listeners, quic_endpoints, &self.shared);
        Ok(())
    }

    async fn drain(self) {
        self.shared.start_draining();
        gauge!(m::UP).set(0.0);
        notify::notify("STOPPING=1\nSTATUS=draining");
        let open = self.shared.open_connections();
        tracing::info!(
            open,
            timeout_secs = self.drain_timeout.as_secs(),
            "draining"
        );
        let Self {
            listeners,
            connectors,
            quic_listeners,
            quic_connectors,
            shared,
            admin_stop,
            drain_timeout,
            tunnels,
            mut firewall,
            pq,
            ..
        } = self;
        drop(listeners);
        drop(connectors);
        drop(quic_listeners);
        drop(quic_connectors);
        let clean = shared.wait_all_closed(drain_timeout).await;
        let left = shared.open_connections();
        if clean {
            tracing::info!("drained: all connections closed");
        } else {
            tracing::warn!(left, "drain timeout: closing the remaining connections");
            counter!(m::CONNECTIONS, "listener" => "all", "outcome" => ConnectionOutcome::Drained.label())
                .increment(left as u64);
        }
        pq.shutdown().await;
        if let Some(t) = tunnels {
            t.shutdown();
        }
        drop(admin_stop);
        firewall.stop();
    }
}

/// Binds the addresses that no running endpoint of this kind holds already.
fn bind_new<E>(
    running: &HashMap<SocketAddr, Running<E>>,
    wanted: impl Iterator<Item = SocketAddr>,
    kind: &str,
    loaded: &Loaded,
) -> Result<HashMap<SocketAddr, TcpListener>, DaemonError> {
    let mut sockets = HashMap::new();
    for (i, addr) in wanted.enumerate() {
        if running.contains_key(&addr) {
            continue;
        }
        let socket = bind(addr).map_err(|source| DaemonError::Bind {
            key: format!("{kind}[{i}].listen in {}", loaded.source),
            addr,
            source,
        })?;
        sockets.insert(addr, socket);
    }
    Ok(sockets)
}

/// Replaces the running set with `states`, keyed by address: an address already served swaps
/// its state in place (open connections keep the state they started with, even when the name
/// changed), a new address starts on its fresh socket, and an address no longer wanted stops.
fn swap_in<E: Service>(
    running: &mut HashMap<SocketAddr, Running<E>>,
    states: Vec<E>,
    mut sockets: HashMap<SocketAddr, TcpListener>,
    shared: &Arc<DrainState>,
    addr_of: impl Fn(&E) -> SocketAddr,
) {
    let mut next = HashMap::with_capacity(states.len());
    for state in states {
        let addr = addr_of(&state);
        if let Some(existing) = running.remove(&addr) {
            existing.state.store(Arc::new(state));
            next.insert(addr, existing);
        } else if let Some(socket) = sockets.remove(&addr) {
            tracing::info!(name = %state.admission().name, %addr, "listening");
            let state = Arc::new(ArcSwap::from_pointee(state));
            let (stop, rx) = watch::channel(false);
            tokio::spawn(accept_loop(socket, state.clone(), shared.clone(), rx));
            next.insert(addr, Running { state, stop });
        }
    }
    for (addr, old) in running.drain() {
        tracing::info!(name = %old.state.load().admission().name, %addr, "stopped accepting (removed)");
    }
    *running = next;
}
