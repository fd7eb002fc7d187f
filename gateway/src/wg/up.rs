//! `pqgate wg up FILE.conf`: parse the wg-quick file, create and configure the interface, run the
//! engine threads until SIGINT/SIGTERM (or a thread fails), then remove the UAPI socket and close the TUN, which removes
//! the interface and its addresses and routes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use pqgate_core::wg::{QuickConfig, QuickPeer};

use super::WgError;
use super::engine::{Engine, PeerConfig};
use super::setup;
use super::uapi;
use crate::net::{signal, tun::Tun, udp};

/// MTU when the file sets none (wg-quick's value for an IPv6 underlay; never too large).
pub const DEFAULT_MTU: u16 = 1420;

/// Runs the interface described by the wg-quick file at `path` until a termination signal.
pub fn run(path: &str) -> Result<(), WgError> {
    let name = QuickConfig::interface_name_from_path(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| WgError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = QuickConfig::parse(&text).map_err(|errors| WgError::Parse {
        path: path.to_owned(),
        errors,
    })?;
    for w in &config.warnings {
        eprintln!("pqgate: warning: {path}: {w}");
    }
    let peers = config
        .peers
        .iter()
        .map(peer_config)
        .collect::<Result<Vec<_>, _>>()?;
    let routes: Vec<_> = config
        .peers
        .iter()
        .flat_map(|p| p.allowed_ips.clone())
        .collect();
    let mtu = config.interface.mtu.unwrap_or(DEFAULT_MTU);

    // Before any thread exists, so that every thread inherits the blocked mask.
    signal::block_termination().map_err(|source| WgError::Io {
        what: "blocking SIGINT/SIGTERM",
        source,
    })?;
    let port = config.interface.listen_port.unwrap_or(0);
    let sock = udp::bind(port).map_err(|source| WgError::Bind { port, source })?;
    let tun = Tun::open(&name).map_err(|source| WgError::Tun {
        name: name.clone(),
        source,
    })?;
    for w in setup::configure(&name, mtu, &config.interface.addresses, &routes)? {
        eprintln!("pqgate: warning: {w}");
    }
    let engine = Engine::new(
        tun,
        sock,
        mtu,
        *config.interface.private_key.expose(),
        peers,
    )
    .map(Arc::new)
    .map_err(|source| WgError::Io {
        what: "starting the engine",
        source,
    })?;
    let local = engine.local_addr().map_err(|source| WgError::Io {
        what: "reading the socket address",
        source,
    })?;
    eprintln!(
        "pqgate: interface {name} up: UDP port {}, MTU {mtu}, {} peer(s)",
        local.port(),
        config.peers.len()
    );
    let uapi = uapi::Server::start(&name, Arc::clone(&engine)).map_err(|source| WgError::Io {
        what: "starting the UAPI socket",
        source,
    })?;
    eprintln!("pqgate: UAPI socket {}", uapi.path().display());
    let result = supervise(&engine);
    drop(uapi);
    let c = &engine.counters;
    eprintln!(
        "pqgate: interface {name} down: rx {} packets, tx {} datagrams; dropped: garbage {}, \
         unknown peer {}, replay {}, decrypt {}, protocol {}, no route {}, no endpoint {}, \
         bad source {}, io errors {}",
        c.rx_packets.load(Ordering::Relaxed),
        c.tx_datagrams.load(Ordering::Relaxed),
        c.garbage.load(Ordering::Relaxed),
        c.unknown_peer.load(Ordering::Relaxed),
        c.replay.load(Ordering::Relaxed),
        c.decrypt.load(Ordering::Relaxed),
        c.protocol.load(Ordering::Relaxed),
        c.no_route.load(Ordering::Relaxed),
        c.no_endpoint.load(Ordering::Relaxed),
        c.bad_source.load(Ordering::Relaxed),
        c.io_errors.load(Ordering::Relaxed),
    );
    result
}

/// Starts the three engine threads and waits for a signal or a thread's end; stops and joins all.
fn supervise(engine: &Arc<Engine>) -> Result<(), WgError> {
    type Job = fn(&Engine) -> std::io::Result<()>;
    let jobs: [(&str, Job); 3] = [
        ("wg-tun", Engine::run_tun),
        ("wg-udp", Engine::run_udp),
        ("wg-timers", Engine::run_timers),
    ];
    let mut handles = Vec::new();
    for (name, job) in jobs {
        let e = Arc::clone(engine);
        let h = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || job(&e))
            .map_err(|source| WgError::Io {
                what: "spawning a thread",
                source,
            });
        match h {
            Ok(h) => handles.push(h),
            Err(err) => {
                engine.stop.store(true, Ordering::Relaxed);
                let _ = join_all(handles);
                return Err(err);
            }
        }
    }
    let mut outcome = Ok(());
    while !handles.iter().any(|h| h.is_finished()) {
        match signal::wait_termination(Duration::from_millis(250)) {
            Ok(Some(sig)) => {
                eprintln!("pqgate: signal {sig}: stopping");
                break;
            }
            Ok(None) => {}
            Err(source) => {
                outcome = Err(WgError::Io {
                    what: "waiting for signals",
                    source,
                });
                break;
            }
        }
    }
    engine.stop.store(true, Ordering::Relaxed);
    join_all(handles).and(outcome)
}

fn join_all(handles: Vec<thread::JoinHandle<std::io::Result<()>>>) -> Result<(), WgError> {
    let mut outcome = Ok(());
    for h in handles {
        let r = match h.join() {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::other("engine thread panicked")),
        };
        if let Err(source) = r {
            outcome = Err(WgError::Io {
                what: "engine thread",
                source,
            });
        }
    }
    outcome
}

fn peer_config(p: &QuickPeer) -> Result<PeerConfig, WgError> {
    let endpoint = match &p.endpoint {
        None => None,
        Some(text) => Some(resolve(text).map_err(|reason| WgError::Endpoint {
            line: p.line,
            endpoint: text.clone(),
            reason,
        })?),
    };
    Ok(PeerConfig {
        public_key: *p.public_key.as_bytes(),
        preshared_key: p
            .preshared_key
            .as_ref()
            .filter(|k| !k.is_zero())
            .map(|k| *k.expose()),
        allowed_ips: p.allowed_ips.clone(),
        endpoint,
        persistent_keepalive: p.persistent_keepalive,
    })
}

/// Resolves `host:port` (IPv6 literals in brackets), preferring the first address.
fn resolve(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pqgate_core::wg::{Key32, PresharedKey};

    fn peer(psk: Option<[u8; 32]>, endpoint: Option<&str>) -> QuickPeer {
        QuickPeer {
            line: 7,
            public_key: Key32::from_bytes([9; 32]),
            preshared_key: psk.map(PresharedKey::from_bytes),
            allowed_ips: vec!["10.0.0.2/32".parse().expect("prefix")],
            endpoint: endpoint.map(str::to_owned),
            persistent_keepalive: Some(25),
        }
    }

    fn valid(p: QuickPeer) -> PeerConfig {
        peer_config(&p).expect("valid peer")
    }

    #[test]
    fn zero_psk_means_none_and_endpoints_resolve() {
        let c = valid(peer(Some([0; 32]), Some("127.0.0.1:51820")));
        assert_eq!(c.preshared_key, None);
        assert_eq!(c.endpoint, Some("127.0.0.1:51820".parse().expect("addr")));
        assert_eq!(c.persistent_keepalive, Some(25));
        let c = valid(peer(Some([5; 32]), Some("[::1]:9")));
        assert_eq!(c.preshared_key, Some([5; 32]));
        assert_eq!(c.endpoint, Some("[::1]:9".parse().expect("addr")));
    }

    #[test]
    fn a_bad_endpoint_names_the_peer_line() {
        let err = peer_config(&peer(None, Some("no-port")))
            .err()
            .expect("an error");
        assert!(err.to_string().starts_with("peer at line 7"), "{err}");
    }
}
