//! A PQ PSK node: one QUIC endpoint (accepting and connecting), one rotation machine and task per
//! peer (peers can be added and removed while it runs), and the accept loop that authenticates
//! incoming channels (certificate in the handshake, then the Hello: a configured peer whose
//! certificate carries its configured name). Its TLS material can be replaced while it runs
//! ([`Node::reload_tls`]): new handshakes use it, live channels it no longer trusts are closed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use pqgate_agility::Registry;
use pqgate_core::pqpsk::config::{self as model, PqPskConfig, PqPskPeer};
use pqgate_core::pqpsk::status::{FailureCounts, METRIC_FAILURES};
use pqgate_core::pqpsk::{
    Failure, KdfHash, KemId, PeerMachine, PeerParams, PeerStatus, PqMode, Role, Schedule,
    SecondKem, WgKey,
};
use pqgate_core::route::is_valid_server_name;
use pqgate_core::wg::Key32;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::channel::{Chan, close};
use super::crypto::{self, StaticKeys};
use super::leaf::Summary;
use super::trust::{Trust, peer_chain};
use super::{PqPskError, PskSink, peer, tls};

/// Handshakes admitted at once; more incoming connections are refused until some finish (bounds
/// the memory and CPU an unauthenticated flood can take).
const MAX_PENDING_HANDSHAKES: usize = 64;

/// Channels queued for a peer task (a newer one replaces the current one).
const ACCEPT_QUEUE: usize = 2;

/// One peer, shared by its task and the accept loop.
pub(super) struct Peer {
    pub remote: WgKey,
    pub name: String,
    pub address: Option<SocketAddr>,
    pub machine: Mutex<PeerMachine>,
    pub accepted: mpsc::Sender<Chan>,
    /// The connection of the current channel (set by the peer's task), re-checked on reload.
    conn: Mutex<Option<quinn::Connection>>,
    /// Set to stop the peer's task (removal, node shutdown).
    stop: watch::Sender<bool>,
}

impl Peer {
    /// The machine (a poisoned lock is taken over: the machine holds no invariant a panic in a
    /// caller could break half-way).
    pub(super) fn lock(&self) -> MutexGuard<'_, PeerMachine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the connection of the channel the task now holds.
    pub(super) fn set_conn(&self, conn: &quinn::Connection) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
    }

    /// Forgets the connection once the task holds no channel (its state can then be freed).
    pub(super) fn clear_conn(&self) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn conn(&self) -> Option<quinn::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What every peer inherits from the node's config.
#[derive(Clone, Copy)]
struct Defaults {
    local: WgKey,
    hash: KdfHash,
    schedule: Schedule,
    mode: PqMode,
    kem: SecondKem,
}

/// State shared by the node's tasks.
pub(super) struct Inner {
    pub endpoint: quinn::Endpoint,
    /// For new outgoing connections; replaced by a TLS reload.
    client: RwLock<quinn::ClientConfig>,
    /// The peer-certificate checks of the current TLS material.
    trust: RwLock<Trust>,
    pub keys: Arc<StaticKeys>,
    pub sink: Arc<dyn PskSink>,
    peers: RwLock<Vec<Arc<Peer>>>,
    defaults: Defaults,
    failures: Mutex<FailureCounts>,
    handshakes: Arc<Semaphore>,
}

impl Inner {
    /// Counts a failure not tied to a known peer (a refused or malformed connection).
    pub(super) fn count(&self, f: Failure) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(f);
        metrics::counter!(METRIC_FAILURES, "reason" => f.label()).increment(1);
    }

    /// The current peers.
    pub(super) fn peers(&self) -> Vec<Arc<Peer>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The client config for a new connection.
    pub(super) fn client(&self) -> quinn::ClientConfig {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `peer`'s certificate on `conn` passes the current CA, CRLs and dates (as a TLS
    /// server named `peer.name` when this node connected, else as a TLS client). A connection
    /// whose handshake ran against older material is caught here.
    pub(super) fn recheck(&self, peer: &Peer, conn: &quinn::Connection) -> Result<(), Failure> {
        let chain = peer_chain(conn).ok_or(Failure::CertOther)?;
        let peer_is_server = peer.lock().role() == Role::Initiator;
        let trust = self.trust.read().unwrap_or_else(|e| e.into_inner()).clone();
        let now = rustls_pki_types::UnixTime::now();
        trust.check(&chain, peer_is_server, &peer.name, now)
    }

    /// Closes `conn` of `peer`, no longer trusted for reason `f`, counts it and applies the
    /// peer's expiry policy at once (pq-required: no more data; pq-preferred: its static PSK),
    /// so the last PSK and agile keys of the distrusted channel carry nothing more. All under
    /// the machine's lock, which a PSK install also takes: an install racing with this either
    /// lands before the expiry or sees the channel closed and is dropped.
    pub(super) fn distrust(&self, peer: &Peer, conn: &quinn::Connection, f: Failure) {
        let mut machine = peer.lock();
        conn.close(close::UNTRUSTED.into(), b"certificate no longer trusted");
        machine.count(f);
        for a in machine.distrusted() {
            peer::expiry(self, peer.remote, &a);
        }
        drop(machine);
        metrics::counter!(METRIC_FAILURES, "reason" => f.label()).increment(1);
        tracing::warn!(
            peer = %Key32::from_bytes(peer.remote),
            name = %peer.name,
            reason = f.label(),
            "PQ PSK channel closed: the peer's certificate is no longer trusted"
        );
    }
}

/// What a TLS reload did.
#[derive(Debug)]
#[non_exhaustive]
pub struct TlsReload {
    /// This node's certificate now (serial and expiry), when it could be read.
    pub leaf: Option<Summary>,
    /// This node's certificate before the reload.
    pub previous: Option<Summary>,
    /// Peers whose live channel was closed, and why.
    pub closed: Vec<(WgKey, Failure)>,
    /// A CRL covering this node's certificate is past its nextUpdate (it still applies; a
    /// newer one may revoke more).
    pub crl_stale: bool,
}

/// A running node; dropping it stops its tasks.
pub struct Node {
    inner: Arc<Inner>,
    /// Serial and expiry of the certificate in use, for the reload's log line.
    leaf: Mutex<Option<Summary>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn config_err(key: String, message: impl ToString) -> PqPskError {
    PqPskError::Config {
        key,
        message: message.to_string(),
    }
}

/// Checks peer `p` (at key path `at`) against this node and builds its machine.
fn plan_peer(
    d: &Defaults,
    at: &str,
    p: &PqPskPeer,
) -> Result<(Arc<Peer>, mpsc::Receiver<Chan>), PqPskError> {
    let remote = *p
        .public_key
        .parse::<Key32>()
        .map_err(|e| config_err(format!("{at}.public_key"), e))?
        .as_bytes();
    if remote == d.local {
        return Err(config_err(
            format!("{at}.public_key"),
            "is this node's own key",
        ));
    }
    if !is_valid_server_name(&p.name) {
        return Err(config_err(format!("{at}.name"), "not a valid DNS name"));
    }
    if Role::for_keys(&d.local, &remote) == Role::Initiator && p.address.is_none() {
        return Err(config_err(
            format!("{at}.address"),
            "required: this node's key is the lower one, so it connects",
        ));
    }
    let params = PeerParams {
        local: d.local,
        remote,
        kem: p.second_kem.unwrap_or(d.kem).kem_id(),
        hash: d.hash,
        mode: p.mode.unwrap_or(d.mode),
        schedule: d.schedule,
    };
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let peer = Peer {
        remote,
        name: p.name.clone(),
        address: p.address,
        machine: Mutex::new(PeerMachine::new(params)),
        accepted: tx,
        conn: Mutex::new(None),
        stop: watch::channel(false).0,
    };
    Ok((Arc::new(peer), rx))
}

/// Self-tests the planned peers' KEMs and makes the McEliece key if one of them needs it.
async fn prepare_keys(keys: &Arc<StaticKeys>, peers: &[Arc<Peer>]) -> Result<(), PqPskError> {
    let kems: Vec<KemId> = peers.iter().map(|p| p.lock().params().kem).collect();
    let need_mceliece = peers.iter().any(|p| {
        let m = p.lock();
        m.role() == Role::Responder && m.params().kem == KemId::McEliece460896
    });
    let keys = keys.clone();
    tokio::task::spawn_blocking(move || crypto::prepare(&keys, &kems, need_mceliece))
        .await
        .map_err(|e| config_err("pqpsk.second_kem".into(), e))?
        .map_err(|source| PqPskError::Kem {
            key: "pqpsk.second_kem".into(),
            source,
        })
}

impl Node {
    /// Starts the node for WireGuard public key `local`: validates `c`, builds the TLS configs
    /// from `registry`, self-tests the second KEMs and makes the static McEliece key when a peer
    /// needs it (off the async threads), binds `c.listen` and spawns the tasks. Must run inside a
    /// tokio runtime.
    pub async fn start(
        c: &PqPskConfig,
        local: WgKey,
        registry: &Registry,
        sink: Arc<dyn PskSink>,
    ) -> Result<Self, PqPskError> {
        Self::start_on(c, local, registry, sink, None).await
    }

    /// As [`Node::start`], but on the WireGuard tunnel's own UDP port when `shared` is given
    /// (`c.listen` is then not bound; the endpoint never greases the QUIC fixed bit).
    pub async fn start_on(
        c: &PqPskConfig,
        local: WgKey,
        registry: &Registry,
        sink: Arc<dyn PskSink>,
        shared: Option<crate::wg::shared_port::SharedPort>,
    ) -> Result<Self, PqPskError> {
        if let Some(issue) = model::validate("pqpsk", c).into_iter().next() {
            return Err(config_err(issue.key, issue.message));
        }
        let channel_tls = tls::build(c, registry)?;
        let schedule = Schedule::new(c.rotation_interval_secs.saturating_mul(1000))
            .map_err(|e| config_err("pqpsk.rotation_interval_secs".into(), e))?;
        let defaults = Defaults {
            local,
            hash: channel_tls.hash,
            schedule,
            mode: c.mode,
            kem: c.second_kem,
        };
        let mut planned = Vec::new();
        for (i, p) in c.peer.iter().enumerate() {
            planned.push(plan_peer(&defaults, &format!("pqpsk.peer[{i}]"), p)?);
        }
        let peers: Vec<Arc<Peer>> = planned.iter().map(|(p, _)| p.clone()).collect();
        let keys = Arc::new(StaticKeys::default());
        prepare_keys(&keys, &peers).await?;
        let bind_err = |source| PqPskError::Bind {
            addr: c.listen,
            source,
        };
        let endpoint = match shared {
            // Its own socket with large buffers: 1,000 channels (re)connecting at once would
            // overflow the default receive buffer (benches/results/pqpsk-rotation-*.md).
            None => {
                let sock = crate::net::udp::bind_addr(c.listen).map_err(bind_err)?;
                quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    Some(channel_tls.server),
                    sock,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(bind_err)?
            }
            Some(port) => {
                let mut config = quinn::EndpointConfig::default();
                config.grease_quic_bit(false);
                quinn::Endpoint::new_with_abstract_socket(
                    config,
                    Some(channel_tls.server),
                    Arc::new(port),
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(bind_err)?
            }
        };
        let inner = Arc::new(Inner {
            endpoint,
            client: RwLock::new(channel_tls.client),
            trust: RwLock::new(channel_tls.trust),
            keys,
            sink,
            peers: RwLock::new(peers),
            defaults,
            failures: Mutex::new(FailureCounts::default()),
            handshakes: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
        });
        let (stop, stopped) = watch::channel(false);
        let node = Self {
            leaf: Mutex::new(channel_tls.leaf),
            tasks: Mutex::new(vec![tokio::spawn(accept_loop(inner.clone(), stopped))]),
            inner,
            stop,
        };
        for (p, rx) in planned {
            node.spawn_peer(p, rx);
        }
        Ok(node)
    }

    fn spawn_peer(&self, p: Arc<Peer>, rx: mpsc::Receiver<Chan>) {
        let retry_ms = self.inner.defaults.schedule.retry_ms();
        let stopped = p.stop.subscribe();
        let task = tokio::spawn(peer::run(self.inner.clone(), p, rx, stopped, retry_ms));
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Adds a peer while the node runs (its KEM is self-tested and, for a McEliece responder, the
    /// static key made first). A key already present is refused.
    pub async fn add_peer(&self, p: &PqPskPeer) -> Result<(), PqPskError> {
        let (peer, rx) = plan_peer(&self.inner.defaults, "peer", p)?;
        prepare_keys(&self.inner.keys, std::slice::from_ref(&peer)).await?;
        {
            let mut peers = self.inner.peers.write().unwrap_or_else(|e| e.into_inner());
            if peers.iter().any(|q| q.remote == peer.remote) {
                return Err(config_err("peer.public_key".into(), "already a peer"));
            }
            peers.push(peer.clone());
        }
        self.spawn_peer(peer, rx);
        Ok(())
    }

    /// Removes a peer: its task stops and its channel closes. The PSK it installed stays with the
    /// WireGuard engine, whose own peer removal is separate. Returns whether it was a peer.
    pub fn remove_peer(&self, key: &WgKey) -> bool {
        let removed = {
            let mut peers = self.inner.peers.write().unwrap_or_else(|e| e.into_inner());
            let pos = peers.iter().position(|p| p.remote == *key);
            pos.map(|i| peers.remove(i))
        };
        match removed {
            Some(p) => {
                let _ = p.stop.send(true);
                true
            }
            None => false,
        }
    }

    /// Re-reads the TLS material of `c` (certificate, key, CA, CRLs; the profile and the
    /// rotation interval must be the ones the node started with) and, when all of it is usable,
    /// swaps it in: new incoming handshakes get the new server config, new connections the new
    /// client config, and every live channel whose peer certificate the new CA and CRLs no
    /// longer accept is closed and its peer expired at once (the peer's reconnects are then
    /// refused in the handshake). Material under which this node's own certificate fails
    /// (expired, not yet valid, another CA, revoked) is refused like an unreadable file, since
    /// every peer would refuse it. On an error nothing changes.
    pub fn reload_tls(
        &self,
        c: &PqPskConfig,
        registry: &Registry,
    ) -> Result<TlsReload, PqPskError> {
        let new = tls::build(c, registry)?;
        if new.hash != self.inner.defaults.hash {
            return Err(config_err(
                "pqpsk.profile".into(),
                "a TLS reload cannot change the profile",
            ));
        }
        let crl_stale = new.check_own(rustls_pki_types::UnixTime::now())?;
        self.inner.endpoint.set_server_config(Some(new.server));
        *self.inner.client.write().unwrap_or_else(|e| e.into_inner()) = new.client;
        *self.inner.trust.write().unwrap_or_else(|e| e.into_inner()) = new.trust;
        let mut closed = Vec::new();
        for p in self.inner.peers() {
            let Some(conn) = p.conn() else { continue };
            if conn.close_reason().is_some() {
                continue;
            }
            if let Err(f) = self.inner.recheck(&p, &conn) {
                self.inner.distrust(&p, &conn, f);
                closed.push((p.remote, f));
            }
        }
        let previous = std::mem::replace(
            &mut *self.leaf.lock().unwrap_or_else(|e| e.into_inner()),
            new.leaf.clone(),
        );
        Ok(TlsReload {
            leaf: new.leaf,
            previous,
            closed,
            crl_stale,
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// Every peer's status, in the order they were configured or added.
    pub fn status(&self) -> Vec<(WgKey, PeerStatus)> {
        let peers = self.inner.peers();
        peers
            .iter()
            .map(|p| (p.remote, p.lock().status()))
            .collect()
    }

    /// Failures of connections that named no known peer (refused certificates, bad Hellos).
    pub fn failures(&self) -> FailureCounts {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn signal_stop(&self) {
        let _ = self.stop.send(true);
        for p in self.inner.peers() {
            let _ = p.stop.send(true);
        }
        self.inner.endpoint.close(0u32.into(), b"shutdown");
    }

    /// Stops the tasks, closes the endpoint and waits for the tasks to end.
    pub async fn shutdown(self) {
        self.signal_stop();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal_stop();
        for t in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            t.abort();
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let incoming = tokio::select! {
            _ = stop.changed() => return,
            i = inner.endpoint.accept() => i,
        };
        let Some(incoming) = incoming else { return };
        let Ok(permit) = inner.handshakes.clone().try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let from = incoming.remote_address();
            if let Err(f) = peer::admit(&inner, incoming).await {
                inner.count(f);
                tracing::warn!(%from, reason = f.label(), "PQ PSK channel refused");
            }
            drop(permit);
        });
    }
}
