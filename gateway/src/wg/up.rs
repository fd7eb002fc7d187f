//! `pqgate wg up FILE.conf`: parse the wg-quick file, bring the interface up (shared with `pqgate
//! run`: [`Interface`]), wait for SIGINT/SIGTERM (or a thread's end), then tear it down and print
//! the counters.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pqgate_core::wg::{InterfaceSpec, QuickConfig};

use super::WgError;
use super::engine::Counters;
use super::interface::{DataPathOptions, Interface};
use crate::net::caps::{self, Cap};
use crate::net::signal;

/// Reads and parses a wg-quick file, printing its warnings to stderr; returns the interface
/// name (from the file name) and the parsed file.
pub(crate) fn read_quick(path: &str) -> Result<(String, QuickConfig), WgError> {
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
    Ok((name, config))
}

/// Runs the interface described by the wg-quick file at `path` until a termination signal.
pub(crate) fn run(path: &str, options: DataPathOptions) -> Result<(), WgError> {
    let (name, config) = read_quick(path)?;
    let spec = InterfaceSpec::from_quick(&name, &config);
    // Before any thread exists, so that every thread inherits the blocked mask.
    signal::block_termination().map_err(|source| WgError::Io {
        what: "blocking SIGINT/SIGTERM",
        source,
    })?;
    // Per-thread capabilities: dropped before the engine threads exist, to what setup and `wg
    // set` (routes) need.
    let mut keep = vec![Cap::NET_ADMIN];
    if (1..1024).contains(&spec.listen_port) {
        keep.push(Cap::NET_BIND_SERVICE);
    }
    caps::drop_capabilities(&keep).map_err(|e| WgError::Io {
        what: "dropping capabilities",
        source: std::io::Error::other(e),
    })?;
    let (mtu, peers) = (spec.mtu, spec.peers.len());
    let (iface, warnings) = Interface::start_with(spec, options)?;
    for w in warnings {
        eprintln!("pqgate: warning: {w}");
    }
    let port = iface.engine().local_addr().map_err(|source| WgError::Io {
        what: "reading the socket address",
        source,
    })?;
    eprintln!(
        "pqgate: interface {name} up: UDP port {}, MTU {mtu}, {peers} peer(s)",
        port.port()
    );
    eprintln!("pqgate: data path: {}", iface.engine().describe_data_path());
    if let Some(p) = iface.uapi_path() {
        eprintln!("pqgate: UAPI socket {}", p.display());
    }
    let waited = wait(&iface);
    let engine = std::sync::Arc::clone(iface.engine());
    let result = iface.shutdown().and(waited);
    eprintln!(
        "pqgate: interface {name} down: {}",
        summary(&engine.counters)
    );
    result
}

/// Waits for a signal or the end of an engine thread.
fn wait(iface: &Interface) -> Result<(), WgError> {
    while !iface.any_thread_finished() {
        match signal::wait_termination(Duration::from_millis(250)) {
            Ok(Some(sig)) => {
                eprintln!("pqgate: signal {sig}: stopping");
                return Ok(());
            }
            Ok(None) => {}
            Err(source) => {
                return Err(WgError::Io {
                    what: "waiting for signals",
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The counters as one line: traffic, then drops by reason.
pub(crate) fn summary(c: &Counters) -> String {
    format!(
        "rx {} packets, tx {} datagrams; dropped: garbage {}, unknown peer {}, replay {}, \
         decrypt {}, protocol {}, no route {}, no endpoint {}, bad source {}, queue full {}, \
         io errors {}; cookies sent {}; agile rx {} tx {}",
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
        c.queue_full.load(Ordering::Relaxed),
        c.io_errors.load(Ordering::Relaxed),
        c.cookies_sent.load(Ordering::Relaxed),
        c.agile_rx.load(Ordering::Relaxed),
        c.agile_tx.load(Ordering::Relaxed),
    )
}
