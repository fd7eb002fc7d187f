//! PQ PSKs for `[[wireguard]]` interfaces with a `[wireguard.pq]` table: one PQ PSK node
//! (`crate::pqpsk::Node`) per such interface, on the tunnel's own UDP port unless `pq.listen`
//! names another, installing each derived PSK into the interface's engine (`sink`, which also
//! carries out the expiry policy); live peer changes and TLS material (certificate, key, CA,
//! CRLs re-read) on reload; a status board for `GET /status` and `pqgate status`. Peers without
//! `pq` stay plain WireGuard peers.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use pqgate_agility::Registry;
use pqgate_core::pqpsk::{PqMode, PqPskConfig, PqPskPeer, WgKey};
use pqgate_core::wg::config::{WgPqConfig, WireguardPeerConfig};
use pqgate_core::wg::{Key32, PresharedKey, WireguardConfig};

use super::engine::{Engine, TunQueue, UdpTransport};
use super::tunnels::Tunnels;
use crate::pqpsk::{Node, PqPskError};

mod reload;
mod sink;
#[cfg(test)]
mod sink_tests;
mod status;

use reload::{reload_tls, restart_only_changes};
use sink::{EngineSink, StaticMap, agile_map, static_map};
use status::BoardEntry;
pub(crate) use status::StatusBoard;

/// How often the per-peer metrics are refreshed from the nodes.
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Why an interface's PQ channel could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PqError {
    /// The channel refused its config, certificates or socket (key paths are the config's).
    #[error("wireguard {iface}: {source}")]
    Start {
        /// The interface.
        iface: String,
        /// The node's reason.
        #[source]
        source: PqPskError,
    },
    /// A reload could not re-read the channel's TLS material; the running material stays.
    #[error("wireguard {iface}: {key}: {source} (the running PQ channel TLS stays)")]
    Reload {
        /// The interface.
        iface: String,
        /// The config key at fault (`wireguard[0].pq.cert`, ...).
        key: String,
        /// The node's reason (names the file).
        #[source]
        source: Box<PqPskError>,
    },
    /// The tunnel's UDP port could not be shared with QUIC.
    #[error("wireguard {iface}: sharing the tunnel port with QUIC: {source}")]
    Share {
        /// The interface.
        iface: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One interface's running node and what it was started from.
struct Running {
    engine: Arc<Engine>,
    sink: Arc<EngineSink>,
    config: WgPqConfig,
    peers: Vec<PqPskPeer>,
    node: Arc<Node>,
}

/// The PQ nodes of the running interfaces.
pub(crate) struct PqTunnels {
    registry: Arc<Registry>,
    running: BTreeMap<String, Running>,
    board: StatusBoard,
    /// Refreshes the per-peer metrics while some node runs.
    sampler: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for PqTunnels {
    fn drop(&mut self) {
        if let Some(t) = self.sampler.take() {
            t.abort();
        }
    }
}

/// The key path of `wireguard[i]` peer `j`.
fn remap_key(key: &str, at: &str, pq_index: &[usize]) -> String {
    if let Some(rest) = key.strip_prefix("pqpsk.peer[")
        && let Some((n, tail)) = rest.split_once(']')
        && let Some(j) = n.parse::<usize>().ok().and_then(|n| pq_index.get(n))
    {
        let tail = tail.strip_prefix(".public_key").map_or(tail, |_| "");
        return format!("{at}.peer[{j}].pq{tail}");
    }
    match key.strip_prefix("pqpsk") {
        Some(tail) => format!("{at}.pq{tail}"),
        None => format!("{at}.pq.{key}"),
    }
}

/// The first address of a peer's endpoint (its QUIC address when the port is shared).
fn endpoint_addr(p: &WireguardPeerConfig) -> Option<SocketAddr> {
    let e = p.endpoint.as_ref()?;
    (e.host.as_str(), e.port).to_socket_addrs().ok()?.next()
}

fn public_key<T: TunQueue, U: UdpTransport>(engine: &Engine<T, U>) -> WgKey {
    let secret = gotatun::x25519::StaticSecret::from(engine.private_key());
    *gotatun::x25519::PublicKey::from(&secret).as_bytes()
}

/// Whether peer `p` of interface `w` is a pq-required pqgate peer.
pub(crate) fn required(w: &WireguardConfig, p: &WireguardPeerConfig) -> bool {
    match (&w.pq, &p.pq) {
        (Some(i), Some(q)) => q.mode.unwrap_or(i.mode) == PqMode::Required,
        _ => false,
    }
}

/// The PSK a pq-required peer starts with: random, made once per process (so a reload sees no
/// change) and never sent anywhere, so no handshake succeeds before the first PQ PSK.
pub(crate) fn blocking_psk() -> PresharedKey {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut k).is_err() {
            // Not reached in practice: AWS-LC aborts the process when the OS RNG fails.
            tracing::error!("the system RNG failed: pq-required peers start on a fixed PSK");
            k = *b"pqgate: no PQ PSK yet, no data.\0";
        }
        k
    });
    PresharedKey::from_bytes(*key)
}

impl PqTunnels {
    /// No node yet; [`PqTunnels::sync`] starts them.
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            running: BTreeMap::new(),
            board: StatusBoard::default(),
            sampler: None,
        }
    }

    /// The board `GET /status` renders.
    pub(crate) fn board(&self) -> StatusBoard {
        self.board.clone()
    }

    /// Brings the nodes in line with `sections` and the running `tunnels`: starts a node for a
    /// new (or restarted) interface with `pq`, adds, removes and re-adds changed peers of a
    /// running one (others keep their channel) and re-reads its TLS files, stops the nodes of
    /// interfaces without `pq`. Returns warnings and errors (an interface whose node cannot start
    /// or whose TLS files cannot be re-read; the others are still synced).
    pub(crate) async fn sync(
        &mut self,
        sections: &[WireguardConfig],
        tunnels: &Tunnels,
    ) -> (Vec<String>, Vec<PqError>) {
        let mut warnings = Vec::new();
        let mut errors = Vec::new();
        let mut wanted = Vec::new();
        for (i, w) in sections.iter().enumerate() {
            let (Some(pq), Some(engine)) = (&w.pq, tunnels.engine(&w.name)) else {
                continue;
            };
            wanted.push(w.name.clone());
            let channel = pq.channel(&w.peers, endpoint_addr);
            let statics = static_map(i, w, &mut warnings);
            let same_engine = self
                .running
                .get(&w.name)
                .is_some_and(|r| Arc::ptr_eq(&r.engine, &engine));
            if same_engine {
                match agile_map(&self.registry, i, w) {
                    Ok(map) => {
                        if let Some(r) = self.running.get(&w.name) {
                            r.sink.replace_agile(map);
                        }
                    }
                    Err(e) => errors.push(e),
                }
                if let Some(r) = self.running.get(&w.name) {
                    r.sink.replace_statics(statics);
                }
                let (w_update, e_update) = self.update(i, w, pq, channel).await;
                warnings.extend(w_update);
                errors.extend(e_update);
                continue;
            }
            if let Some(old) = self.running.remove(&w.name) {
                drop(old);
            }
            match self.start_one(i, w, pq, &channel, engine, statics).await {
                Ok(r) => {
                    tracing::info!(interface = %w.name, peers = r.peers.len(), "PQ PSK channel up");
                    self.running.insert(w.name.clone(), r);
                }
                Err(e) => errors.push(e),
            }
        }
        self.running.retain(|name, _| wanted.contains(name));
        self.publish();
        if self.sampler.is_none() && !self.running.is_empty() {
            let board = self.board.clone();
            self.sampler = Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(METRICS_EVERY);
                loop {
                    tick.tick().await;
                    board.record_metrics();
                }
            }));
        }
        (warnings, errors)
    }

    async fn start_one(
        &self,
        i: usize,
        w: &WireguardConfig,
        pq: &WgPqConfig,
        channel: &PqPskConfig,
        engine: Arc<Engine>,
        statics: StaticMap,
    ) -> Result<Running, PqError> {
        let iface = w.name.clone();
        let shared = match pq.listen {
            Some(_) => None,
            None => Some(
                engine
                    .share_port_with_quic()
                    .map_err(|source| PqError::Share {
                        iface: iface.clone(),
                        source,
                    })?,
            ),
        };
        let local = public_key(&engine);
        let agile = agile_map(&self.registry, i, w)?;
        let sink = Arc::new(EngineSink {
            engine: Arc::clone(&engine),
            local,
            agile: std::sync::Mutex::new(agile),
            statics: std::sync::Mutex::new(statics),
            registry: Arc::clone(&self.registry),
        });
        let pq_index: Vec<usize> = (0..w.peers.len())
            .filter(|&j| w.peers[j].pq.is_some())
            .collect();
        let node = Node::start_on(channel, local, &self.registry, sink.clone(), shared)
            .await
            .map_err(|source| {
                let source = match source {
                    PqPskError::Config { key, message } => PqPskError::Config {
                        key: remap_key(&key, &format!("wireguard[{i}]"), &pq_index),
                        message,
                    },
                    other => other,
                };
                PqError::Start { iface, source }
            })?;
        Ok(Running {
            engine,
            sink,
            config: pq.clone(),
            peers: channel.peer.clone(),
            node: Arc::new(node),
        })
    }

    /// A reload of a running interface (`wireguard[i]`): the TLS material re-read and swapped
    /// in (an error keeps the running one), then peer changes. The channel's other settings
    /// need a restart (warning).
    async fn update(
        &mut self,
        i: usize,
        w: &WireguardConfig,
        pq: &WgPqConfig,
        channel: PqPskConfig,
    ) -> (Vec<String>, Option<PqError>) {
        let mut warnings = Vec::new();
        let Some(r) = self.running.get_mut(&w.name) else {
            return (warnings, None);
        };
        let restart = restart_only_changes(&r.config, pq);
        if !restart.is_empty() {
            warnings.push(format!(
                "wireguard {}: [wireguard.pq] {} changed: takes effect at the next restart",
                w.name,
                restart.join(", ")
            ));
        }
        let error = reload_tls(&self.registry, i, w, r, pq, &channel).err();
        for old in &r.peers {
            if !channel.peer.contains(old)
                && let Ok(k) = old.public_key.parse::<Key32>()
            {
                r.node.remove_peer(k.as_bytes());
            }
        }
        let mut kept = Vec::new();
        for new in &channel.peer {
            if r.peers.contains(new) {
                kept.push(new.clone());
                continue;
            }
            match r.node.add_peer(new).await {
                Ok(()) => kept.push(new.clone()),
                Err(e) => warnings.push(format!(
                    "wireguard {}: PQ peer {}: {e}",
                    w.name, new.public_key
                )),
            }
        }
        r.peers = kept;
        (warnings, error)
    }

    fn publish(&self) {
        let entries = self
            .running
            .iter()
            .map(|(name, r)| BoardEntry {
                iface: name.clone(),
                profile: r.config.profile.clone(),
                listen: r.config.listen,
                node: Arc::clone(&r.node),
                engine: Arc::clone(&r.engine),
                peers: r
                    .peers
                    .iter()
                    .filter_map(|p| {
                        let k = p.public_key.parse::<Key32>().ok()?;
                        Some((
                            *k.as_bytes(),
                            p.name.clone(),
                            p.mode.unwrap_or(r.config.mode),
                        ))
                    })
                    .collect(),
            })
            .collect();
        *self.board.0.write().unwrap_or_else(|e| e.into_inner()) = entries;
    }

    /// Stops every node and waits for their tasks.
    pub(crate) async fn shutdown(mut self) {
        if let Some(t) = self.sampler.take() {
            t.abort();
        }
        self.board
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for (_, r) in std::mem::take(&mut self.running) {
            if let Ok(node) = Arc::try_unwrap(r.node) {
                node.shutdown().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_key_paths_become_config_key_paths() {
        let idx = [1, 3];
        for (node_key, interface, config_key) in [
            (
                "pqpsk.peer[1].address",
                "wireguard[0]",
                "wireguard[0].peer[3].pq.address",
            ),
            (
                "pqpsk.peer[0].public_key",
                "wireguard[2]",
                "wireguard[2].peer[1].pq",
            ),
            (
                "pqpsk.second_kem",
                "wireguard[0]",
                "wireguard[0].pq.second_kem",
            ),
            (
                "peer.public_key",
                "wireguard[0]",
                "wireguard[0].pq.peer.public_key",
            ),
        ] {
            assert_eq!(remap_key(node_key, interface, &idx), config_key);
        }
    }

    #[test]
    fn pq_required_peers_start_on_a_psk_nobody_holds() {
        const K: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
        const P: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        let peer = |mode: &str| {
            format!(
                "[[wireguard.peer]]\npublic_key = \"{P}\"\npreshared_key = \"{K}\"\n\
                 [wireguard.peer.pq]\nname = \"b.example\"\nmode = \"{mode}\"\n"
            )
        };
        let text = format!(
            "[[wireguard]]\nname = \"wg0\"\nprivate_key = \"{K}\"\n[wireguard.pq]\n\
             ca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n{}\n\
             [[wireguard]]\nname = \"wg1\"\nprivate_key = \"{K}\"\n\
             [[wireguard.peer]]\npublic_key = \"{P}\"\npreshared_key = \"{K}\"\n",
            peer("pq-required")
        );
        std::fs::write(&path, &text).expect("config");
        let loaded = crate::config::load(Some(&path)).expect("valid");
        let specs = super::super::tunnels::specs(&loaded).expect("specs");
        let blocked = specs[0].peers[0].preshared_key.clone().expect("a PSK");
        assert_eq!(blocked, blocking_psk(), "the same for the whole process");
        assert!(!blocked.is_zero());
        assert_ne!(blocked.expose_base64(), K, "the static PSK is not used");
        let plain = specs[1].peers[0].preshared_key.clone().expect("static");
        assert_eq!(plain.expose_base64(), K, "plain peers keep theirs");
        std::fs::write(&path, text.replace("pq-required", "pq-preferred")).expect("config");
        let loaded = crate::config::load(Some(&path)).expect("valid");
        let specs = super::super::tunnels::specs(&loaded).expect("specs");
        let preferred = specs[0].peers[0].preshared_key.clone().expect("static");
        assert_eq!(
            preferred.expose_base64(),
            K,
            "pq-preferred starts on its static PSK"
        );
    }
}
