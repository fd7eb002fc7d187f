//! WireGuard interfaces driven by pqgate's engine over gotatun's `noise::Tunn`: one running
//! interface (`interface`) built from either a wg-quick file (`pqgate wg up`) or a
//! `[[wireguard]]` section (`pqgate run`, with live reload in `tunnels`), its host setup, the UAPI
//! socket for the stock `wg` tool, per-peer metrics and `pqgate wg import`.

pub(crate) mod engine;
pub(crate) mod import;
pub(crate) mod interface;
pub(crate) mod keyfile;
pub(crate) mod metrics;
pub(crate) mod pq;
pub(crate) mod setup;
pub(crate) mod shared_port;
pub(crate) mod tunnels;
pub(crate) mod uapi;
pub(crate) mod up;

pub use interface::MAX_QUEUES;
pub use shared_port::{SharedPort, is_quic};

use std::io;

/// Why `wg up` could not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum WgError {
    /// The config file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The config file name is not `IFNAME.conf`.
    #[error(transparent)]
    Name(#[from] pqgate_core::wg::quick::InterfaceNameError),
    /// The config file has errors (each with its line).
    #[error("{path}: {errors}")]
    Parse {
        /// The file.
        path: String,
        /// Every error.
        errors: pqgate_core::wg::QuickErrors,
    },
    /// A peer's endpoint did not resolve.
    #[error("{peer}: endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// Where the peer is written (`peer at line 7`, `wireguard[0].peer[1]`).
        peer: String,
        /// The endpoint as written.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// Creating the TUN device failed.
    #[error("creating TUN interface {name}: {source}")]
    Tun {
        /// The interface.
        name: String,
        /// The cause.
        source: io::Error,
    },
    /// Binding the UDP socket failed.
    #[error("binding UDP port {port}: {source}")]
    Bind {
        /// The port (0: ephemeral).
        port: u16,
        /// The cause.
        source: io::Error,
    },
    /// An `ip` command failed.
    #[error("ip {args}: {reason}")]
    Ip {
        /// The arguments.
        args: String,
        /// Exit status and stderr, or the spawn error.
        reason: String,
    },
    /// Signal handling or a worker thread failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}
