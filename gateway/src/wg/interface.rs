//! One running WireGuard interface from an [`InterfaceSpec`] (wg-quick file or `[[wireguard]]`):
//! socket, TUN, host setup, engine threads and UAPI socket; live changes from a new spec; and a
//! teardown on drop that removes the UAPI socket and closes the TUN (which removes the
//! interface, its addresses and routes).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

/// Most queues an interface uses (the config's bound, kept in the core so it can check it).
pub use pqgate_core::wg::iface::MAX_QUEUES;
use pqgate_core::wg::{InterfaceDiff, InterfaceSpec, PeerDiff, PeerSpec};

use super::WgError;
use super::engine::{Engine, PeerChange, PeerConfig};
use super::{setup, uapi};
use crate::net::{tun::Tun, udp};

type Worker = thread::JoinHandle<io::Result<()>>;

/// A running interface. Dropping it stops and joins its threads and removes it from the host.
pub(crate) struct Interface {
    spec: InterfaceSpec,
    engine: Arc<Engine>,
    threads: Vec<Worker>,
    uapi: Option<uapi::Server>,
}

/// A reload's changes to one interface, with every endpoint already resolved.
pub(crate) struct Prepared {
    next: InterfaceSpec,
    diff: InterfaceDiff,
    changes: Vec<PeerChange>,
}

/// Resolves `host:port` (IPv6 literals in brackets), taking the first address.
fn resolve(p: &PeerSpec) -> Result<Option<SocketAddr>, WgError> {
    let Some(text) = &p.endpoint else {
        return Ok(None);
    };
    let err = |reason: String| WgError::Endpoint {
        peer: p.origin.clone(),
        endpoint: text.clone(),
        reason,
    };
    let mut addrs = text.to_socket_addrs().map_err(|e| err(e.to_string()))?;
    addrs
        .next()
        .map(Some)
        .ok_or_else(|| err("no address".to_owned()))
}

/// The engine's view of a peer, its endpoint resolved.
pub(crate) fn peer_config(p: &PeerSpec) -> Result<PeerConfig, WgError> {
    Ok(PeerConfig {
        public_key: *p.public_key.as_bytes(),
        preshared_key: p.preshared_key.as_ref().map(|k| *k.expose()),
        allowed_ips: p.allowed_ips.clone(),
        endpoint: resolve(p)?,
        persistent_keepalive: p.persistent_keepalive,
    })
}

/// How the data path is built: operators can turn the kernel offloads off (to rule them out
/// when debugging, or where a middlebox mishandles them) and fix the number of queues
/// (`offload`, `queues` in `[[wireguard]]`; `--no-offload`, `--queues` of `wg up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataPathOptions {
    /// TUN virtio-net header with TSO/USO, UDP GSO/GRO, each where the kernel has it.
    pub offload: bool,
    /// Queues (TUN queues and UDP sockets); `None`: one per CPU, at most [`MAX_QUEUES`].
    pub queues: Option<u16>,
}

impl DataPathOptions {
    /// The options a description asks for.
    pub(crate) fn of(spec: &InterfaceSpec) -> Self {
        Self {
            offload: spec.offload,
            queues: spec.queues,
        }
    }
}

impl Default for DataPathOptions {
    fn default() -> Self {
        Self {
            offload: true,
            queues: None,
        }
    }
}

/// One queue per CPU, at most [`MAX_QUEUES`]: the kernel keeps each flow on one TUN queue and
/// each peer on one socket, so more queues add parallelism across flows and peers without
/// reordering any of them.
fn queue_count(asked: Option<u16>) -> usize {
    asked
        .map(usize::from)
        .unwrap_or_else(|| {
            thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, usize::from(MAX_QUEUES))
}

impl Interface {
    /// Brings the interface up with the data path its description asks for. Returns it with
    /// warnings (skipped routes). On error, whatever was created is removed again.
    pub(crate) fn start(spec: InterfaceSpec) -> Result<(Self, Vec<String>), WgError> {
        let options = DataPathOptions::of(&spec);
        Self::start_with(spec, options)
    }

    /// [`Interface::start`] with data-path options that override the description's (the
    /// command line of `wg up`); the running description records the options used.
    pub(crate) fn start_with(
        mut spec: InterfaceSpec,
        options: DataPathOptions,
    ) -> Result<(Self, Vec<String>), WgError> {
        (spec.offload, spec.queues) = (options.offload, options.queues);
        let peers = spec
            .peers
            .iter()
            .map(peer_config)
            .collect::<Result<Vec<_>, _>>()?;
        let name = spec.name.clone();
        let port = spec.listen_port;
        let queues = queue_count(options.queues);
        let socks =
            udp::bind_many(port, queues).map_err(|source| WgError::Bind { port, source })?;
        let tuns =
            Tun::open_queues(&name, options.offload, queues).map_err(|source| WgError::Tun {
                name: name.clone(),
                source,
            })?;
        let warnings = setup::configure(&name, spec.mtu, &spec.addresses, &spec.routes())?;
        let engine = Engine::with_queues(
            tuns,
            socks,
            options.offload,
            spec.mtu,
            *spec.private_key.expose(),
            peers,
        )
        .map(Arc::new)
        .map_err(|source| WgError::Io {
            what: "starting the engine",
            source,
        })?;
        if let Some(mark) = spec.fwmark {
            engine.set_fwmark(mark).map_err(|source| WgError::Io {
                what: "setting the fwmark",
                source,
            })?;
        }
        let mut iface = Self {
            spec,
            engine,
            threads: Vec::new(),
            uapi: None,
        };
        iface.spawn_threads()?;
        let server = uapi::Server::start(&name, Arc::clone(&iface.engine)).map_err(|source| {
            WgError::Io {
                what: "starting the UAPI socket",
                source,
            }
        })?;
        iface.uapi = Some(server);
        Ok((iface, warnings))
    }

    fn spawn_threads(&mut self) -> Result<(), WgError> {
        type Job = fn(&Engine) -> io::Result<()>;
        let jobs: [(&str, Job); 3] = [
            ("wg-tun", Engine::run_tun),
            ("wg-udp", Engine::run_udp),
            ("wg-timers", Engine::run_timers),
        ];
        for (name, job) in jobs {
            let e = Arc::clone(&self.engine);
            let iface = self.spec.name.clone();
            let h = thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let r = job(&e);
                    if let Err(err) = &r {
                        // The interface stops carrying traffic: say so now, not at shutdown.
                        tracing::error!(interface = %iface, thread = name, "engine thread failed: {err}");
                    }
                    r
                })
                .map_err(|source| WgError::Io {
                    what: "spawning a thread",
                    source,
                })?;
            self.threads.push(h);
        }
        Ok(())
    }

    /// The interface name.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// The engine (status, counters).
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The UAPI socket's path.
    pub(crate) fn uapi_path(&self) -> Option<&std::path::Path> {
        self.uapi.as_ref().map(uapi::Server::path)
    }

    /// Whether an engine thread has ended (an error, or `stop`).
    pub(crate) fn any_thread_finished(&self) -> bool {
        self.threads.iter().any(|h| h.is_finished())
    }

    /// Works out a reload's changes, resolving the endpoints of added and changed peers; applies
    /// nothing.
    pub(crate) fn prepare(&self, next: InterfaceSpec) -> Result<Prepared, WgError> {
        let diff = self.spec.diff(&next);
        let mut changes = Vec::with_capacity(diff.peers.len());
        for d in &diff.peers {
            changes.push(match d {
                PeerDiff::Removed(k) => PeerChange {
                    public_key: *k.as_bytes(),
                    remove: true,
                    ..PeerChange::default()
                },
                PeerDiff::Added(p) => added(p)?,
                PeerDiff::Changed { old, new } => changed(old, new)?,
            });
        }
        Ok(Prepared {
            next,
            diff,
            changes,
        })
    }

    /// Applies prepared changes: private key, addresses, peers and their routes; peers not named
    /// keep their sessions. Returns warnings (restart-only keys, host commands that failed).
    pub(crate) fn commit(&mut self, p: Prepared) -> Vec<String> {
        let Prepared {
            mut next,
            diff,
            changes,
        } = p;
        let name = self.spec.name.clone();
        let mut warnings = Vec::new();
        // Serialised with `wg set` on the UAPI socket.
        let _one = uapi::config_lock();
        if let Some(k) = &diff.private_key {
            route_warning(
                &name,
                &self.engine.set_private_key(*k.expose()),
                &mut warnings,
            );
        }
        if let Some(mark) = diff.fwmark
            && let Err(e) = self.engine.set_fwmark(mark)
        {
            warnings.push(format!("wireguard {name}: fwmark {mark:#x} not set: {e}"));
            next.fwmark = self.spec.fwmark;
        }
        for a in &diff.addresses_removed {
            if let Err(e) = setup::ip(&["address", "del", &a.to_string(), "dev", &name]) {
                warnings.push(e.to_string());
            }
        }
        for a in &diff.addresses_added {
            if let Err(e) = setup::ip(&["address", "add", &a.to_string(), "dev", &name]) {
                warnings.push(e.to_string());
            }
        }
        if !changes.is_empty() {
            route_warning(&name, &self.engine.apply(false, &changes), &mut warnings);
        }
        if !diff.restart_only.is_empty() {
            warnings.push(format!(
                "wireguard {name}: {} changed: takes effect at the next restart",
                diff.restart_only.join(", ")
            ));
            next.listen_port = self.spec.listen_port;
            next.mtu = self.spec.mtu;
            next.offload = self.spec.offload;
            next.queues = self.spec.queues;
        }
        self.spec = next;
        warnings
    }

    fn stop_and_join(&mut self) -> Result<(), WgError> {
        self.engine.stop.store(true, Ordering::Relaxed);
        let mut outcome = Ok(());
        for h in self.threads.drain(..) {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("engine thread panicked")));
            if let Err(source) = r {
                outcome = Err(WgError::Io {
                    what: "engine thread",
                    source,
                });
            }
        }
        self.uapi = None;
        outcome
    }

    /// Stops the threads and removes the interface; reports a thread's error.
    pub(crate) fn shutdown(mut self) -> Result<(), WgError> {
        self.stop_and_join()
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

fn route_warning(name: &str, delta: &super::engine::RouteDelta, warnings: &mut Vec<String>) {
    if uapi::update_routes(name, delta) != 0 {
        warnings.push(format!(
            "wireguard {name}: some routes could not be updated"
        ));
    }
}

fn added(p: &PeerSpec) -> Result<PeerChange, WgError> {
    let c = peer_config(p)?;
    Ok(PeerChange {
        public_key: c.public_key,
        preshared_key: Some(c.preshared_key),
        endpoint: c.endpoint,
        persistent_keepalive: Some(c.persistent_keepalive),
        replace_allowed_ips: true,
        allowed_ips: c.allowed_ips.iter().map(|a| a.network()).collect(),
        ..PeerChange::default()
    })
}

/// Only what differs, so the session (and a roamed endpoint, when the configured one did not
/// change) is kept.
fn changed(old: &PeerSpec, new: &PeerSpec) -> Result<PeerChange, WgError> {
    let mut c = PeerChange {
        public_key: *new.public_key.as_bytes(),
        update_only: true,
        ..PeerChange::default()
    };
    if old.preshared_key != new.preshared_key {
        c.preshared_key = Some(new.preshared_key.as_ref().map(|k| *k.expose()));
    }
    if old.endpoint != new.endpoint {
        c.endpoint = resolve(new)?;
    }
    if old.persistent_keepalive != new.persistent_keepalive {
        c.persistent_keepalive = Some(new.persistent_keepalive);
    }
    if old.allowed_ips != new.allowed_ips {
        c.replace_allowed_ips = true;
        c.allowed_ips = new.allowed_ips.iter().map(|a| a.network()).collect();
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pqgate_core::wg::{Key32, PresharedKey};

    fn peer(psk: Option<[u8; 32]>, endpoint: Option<&str>) -> PeerSpec {
        PeerSpec {
            origin: "peer at line 7".into(),
            public_key: Key32::from_bytes([9; 32]),
            preshared_key: psk.map(PresharedKey::from_bytes),
            allowed_ips: vec!["10.0.0.2/32".parse().expect("prefix")],
            endpoint: endpoint.map(str::to_owned),
            persistent_keepalive: Some(25),
        }
    }

    #[test]
    fn endpoints_resolve_and_errors_name_the_peer() {
        let c = peer_config(&peer(Some([5; 32]), Some("[::1]:9"))).expect("valid");
        assert_eq!(c.preshared_key, Some([5; 32]));
        assert_eq!(c.endpoint, Some("[::1]:9".parse().expect("addr")));
        assert_eq!(c.persistent_keepalive, Some(25));
        let err = peer_config(&peer(None, Some("no-port")))
            .err()
            .expect("an error");
        assert!(err.to_string().starts_with("peer at line 7"), "{err}");
    }

    #[test]
    fn a_changed_peer_names_only_what_changed() {
        let old = peer(Some([5; 32]), Some("127.0.0.1:9"));
        let mut new = old.clone();
        new.persistent_keepalive = None;
        let c = changed(&old, &new).expect("valid");
        assert_eq!(c.persistent_keepalive, Some(None));
        assert_eq!((c.preshared_key, c.endpoint), (None, None));
        assert!(!c.replace_allowed_ips && c.update_only);
        new.preshared_key = None;
        new.endpoint = Some("127.0.0.2:9".into());
        new.allowed_ips.push("10.9.0.1/24".parse().expect("prefix"));
        let c = changed(&old, &new).expect("valid");
        assert_eq!(c.preshared_key, Some(None));
        assert_eq!(c.endpoint, Some("127.0.0.2:9".parse().expect("addr")));
        assert!(c.replace_allowed_ips);
        assert_eq!(c.allowed_ips[1].to_string(), "10.9.0.0/24");
        let a = added(&old).expect("valid");
        assert_eq!(a.preshared_key, Some(Some([5; 32])));
        assert!(!a.update_only && a.replace_allowed_ips);
    }
}
