//! The `pqgate` command line: every subcommand's arguments (clap) and the code that runs and
//! renders it, one file per subcommand; `main.rs` only calls [`main`].

pub(crate) mod check;
pub(crate) mod crypto;
pub(crate) mod firewall;
pub(crate) mod keys;
pub(crate) mod probe;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod wg;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "pqgate", version, about = "Quantum-safe TLS/VPN gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the embedded default config when no -c is given).
    Run {
        /// TOML config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Check a config: print every error (exit 1) or the effective config (exit 0).
    Check {
        /// TOML config file (the embedded default when absent).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print the SHA-256 pin of a certificate's public key, for a connector's `pin_sha256`.
    Pin {
        /// PEM certificate file; the first certificate is used.
        cert: PathBuf,
    },
    /// The PQ PSK channels of the running daemon, per interface and peer: epoch, last rotation,
    /// KEMs, failures, mode and whether data may flow.
    Status {
        /// The daemon's admin endpoint.
        #[arg(long, default_value = "127.0.0.1:9851")]
        admin: std::net::SocketAddr,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Handshake once with a TLS server and print the protocol, suite and group it chose, and
    /// whether the key exchange is post-quantum.
    Probe(probe::ProbeArgs),
    /// Algorithm inventory and self-tests.
    Crypto {
        #[command(subcommand)]
        command: crypto::CryptoCommand,
    },
    /// WireGuard interfaces.
    Wg {
        #[command(subcommand)]
        command: wg::WgCommand,
    },
    /// The nftables firewall: the ruleset a config produces.
    Firewall {
        #[command(subcommand)]
        command: firewall::FirewallCommand,
    },
    /// Generate WireGuard and TLS keys (private keys written 0600, never printed to a terminal).
    Keygen {
        #[command(subcommand)]
        command: keys::KeygenCommand,
    },
    /// The built-in CA for gateway mutual TLS: init, issue, revoke, crl, list.
    Ca {
        #[command(subcommand)]
        command: keys::CaCommand,
    },
    /// Test aid: drop every capability but --keep, try --bind, print the sets as JSON.
    #[command(hide = true)]
    CapsProbe {
        /// Capabilities to keep (net_admin, CAP_NET_BIND_SERVICE, ...).
        #[arg(long, value_delimiter = ',')]
        keep: Vec<String>,
        /// TCP address to bind after the drop.
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
}

/// Parses the command line and runs the subcommand; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run::run(config),
        Command::Check { config } => check::check(config),
        Command::Pin { cert } => keys::pin(cert),
        Command::Status { admin, json } => status::run(admin, json),
        Command::Probe(args) => probe::cli(&args).map_err(Into::into),
        Command::Crypto { command } => crypto::run(command),
        Command::Firewall { command } => firewall::run(command).map_err(Into::into),
        Command::Keygen { command } => keys::keygen(command)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Ca { command } => keys::ca(command)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::CapsProbe { keep, bind } => run::caps_probe(&keep, bind),
        Command::Wg { command } => wg::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pqgate: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, skipping a cause whose text the message already contains.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
