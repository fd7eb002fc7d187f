//! `pqgate wg up FILE.conf`: a WireGuard interface from a wg-quick file, run in the foreground
//! until SIGINT/SIGTERM, interoperable with stock WireGuard. gotatun's `noise::Tunn` is the
//! protocol core; the TUN/UDP engine, the allowed-IPs table and the host setup are here.
//!
//! First slice of issue 4: blocking IO, one packet per syscall, a linear allowed-IPs scan. Not
//! done yet: batching (recvmmsg/sendmmsg, GSO/GRO, TUN offloads), multiple queues, the TOML config model, metrics export, `wg import`, default-route (/0) policy routing.

pub mod engine;
pub mod route;
pub mod setup;
pub mod shared_port;
pub mod uapi;
pub mod up;

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
    #[error("peer at line {line}: endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// Line of the `[Peer]` header.
        line: usize,
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
