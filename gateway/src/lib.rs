//! pqgate, the daemon: drivers (TLS termination and origination, admin endpoint, signals) around
//! the sans-IO core and the agility registry. The `pqgate` binary is a thin CLI over this.

pub mod admin;
pub mod build;
pub mod builtin_info;
pub mod cbom;
pub mod config_load;
pub mod connector;
pub mod crypto_cli;
pub mod daemon;
pub mod endpoint;
pub mod firewall;
pub mod keys;
pub mod net;
pub mod notify;
pub mod plugins;
pub mod pqpsk;
pub mod probe;
pub mod quic;
pub mod relay;
pub mod server;
pub mod shared;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod wg;
