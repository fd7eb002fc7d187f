//! The `pqgate` command line: `run`, `check`, `status`, `pin`, `crypto` and `wg`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pqgate::build::{SelfSignedMode, build};
use pqgate::daemon::Daemon;
use pqgate::telemetry;
use pqgate::{config_load, crypto_cli, plugins};
use pqgate_agility::Registry;
use std::sync::Arc;

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
    Probe(pqgate::probe::ProbeArgs),
    /// Algorithm inventory and self-tests.
    Crypto {
        #[command(subcommand)]
        command: CryptoCommand,
    },
    /// WireGuard interfaces.
    Wg {
        #[command(subcommand)]
        command: WgCommand,
    },
    /// The nftables firewall: the ruleset a config produces.
    Firewall {
        #[command(subcommand)]
        command: pqgate::firewall::cli::FirewallCommand,
    },
    /// Generate WireGuard and TLS keys (private keys written 0600, never printed to a terminal).
    Keygen {
        #[command(subcommand)]
        command: pqgate::keys::cli::KeygenCommand,
    },
    /// The built-in CA for gateway mutual TLS: init, issue, revoke, crl, list.
    Ca {
        #[command(subcommand)]
        command: pqgate::keys::cli::CaCommand,
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

#[derive(Subcommand)]
enum WgCommand {
    /// Run a tunnel from a wg-quick file in the foreground until SIGINT/SIGTERM; the interface
    /// is named after the file (wg0.conf -> wg0).
    Up {
        /// wg-quick(8) file, named IFNAME.conf.
        file: PathBuf,
        /// Plain one-packet IO: no TUN TSO/USO, no UDP GSO/GRO (for debugging).
        #[arg(long)]
        no_offload: bool,
        /// TUN queues and UDP sockets (default: one per CPU, at most 4).
        #[arg(long, value_parser = clap::value_parser!(u16)
            .range(1..=i64::from(pqgate::wg::interface::MAX_QUEUES)))]
        queues: Option<u16>,
    },
    /// Convert a wg-quick file to a `[[wireguard]]` config block (stdout, or -o FILE written
    /// 0600); keys inline unless --key-dir.
    Import {
        /// wg-quick(8) file, named IFNAME.conf.
        file: PathBuf,
        /// Write the TOML here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write the private and pre-shared keys to new 0600 files in this directory and
        /// reference them (private_key_file, preshared_key_file) instead of inlining them.
        #[arg(long)]
        key_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CryptoCommand {
    /// List every algorithm with its properties and status after the power-on self-tests.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also load the run-time plugins this config names.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Run every self-test and print the report (exit 1 on any failure).
    Selftest {
        /// Also load and test the run-time plugins this config names.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print a CycloneDX 1.6 cryptographic bill of materials (JSON) for a config's algorithms.
    Cbom {
        /// TOML config file (the embedded default when absent).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Pin { cert } => pin(cert),
        Command::Status { admin, json } => status(admin, json),
        Command::Probe(args) => pqgate::probe::cli(&args).map_err(Into::into),
        Command::Crypto { command } => crypto(command),
        Command::Firewall { command } => pqgate::firewall::cli::run(command).map_err(Into::into),
        Command::Keygen { command } => pqgate::keys::cli::keygen(command)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Ca { command } => pqgate::keys::cli::ca(command)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::CapsProbe { keep, bind } => caps_probe(&keep, bind),
        Command::Wg {
            command:
                WgCommand::Up {
                    file,
                    no_offload,
                    queues,
                },
        } => pqgate::wg::up::run(
            &file.to_string_lossy(),
            pqgate::wg::interface::DataPathOptions {
                offload: !no_offload,
                queues,
            },
        )
        .map(|()| ExitCode::SUCCESS)
        .map_err(Into::into),
        Command::Wg {
            command:
                WgCommand::Import {
                    file,
                    output,
                    key_dir,
                },
        } => wg_import(&file, output.as_deref(), key_dir.as_deref()),
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

fn run(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = match config_load::load(path.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pqgate: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    telemetry::init_logging(&loaded.config.log)?;
    let metrics = telemetry::init_metrics()?;
    // Capabilities are per thread: drop them while this is the only one. What is kept is all
    // that setup and every later reload need (TUN, addresses, routes, nft, low ports).
    let keep = run_capabilities(&loaded.config);
    let dropped = pqgate::net::caps::drop_capabilities(&keep).context("dropping capabilities")?;
    tracing::info!(kept = ?keep.iter().map(ToString::to_string).collect::<Vec<_>>(),
        bounding_trimmed = dropped.bounding_trimmed, "capabilities dropped");
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if loaded.config.service.worker_threads > 0 {
        runtime.worker_threads(loaded.config.service.worker_threads);
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    warm_up()?;
    let registry = Arc::new(Registry::power_on_with(plugins::load_all(&loaded.config)));
    crypto_cli::publish(&registry);
    tracing::info!(config = %loaded.source, version = env!("CARGO_PKG_VERSION"), "pqgate starting");
    runtime.block_on(async move {
        let daemon = Daemon::start(loaded, path, metrics, registry).await?;
        daemon.run().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `pqgate run` keeps: CAP_NET_ADMIN (TUN devices, addresses, routes, socket buffers,
/// nftables) and CAP_NET_BIND_SERVICE when some configured port is below 1024.
fn run_capabilities(config: &pqgate_core::config::Config) -> Vec<pqgate::net::caps::Cap> {
    use pqgate::net::caps::Cap;
    let low = |port: u16| port != 0 && port < 1024;
    let any_low = config.listeners.iter().any(|l| low(l.listen.port()))
        || config.connectors.iter().any(|c| low(c.listen.port()))
        || (config.admin.enabled && low(config.admin.listen.port()))
        || config.wireguard.iter().any(|w| {
            let pq_port = w.pq.as_ref().and_then(|p| p.listen).map_or(0, |a| a.port());
            low(w.listen_port) || low(pq_port)
        });
    match any_low {
        true => vec![Cap::NET_ADMIN, Cap::NET_BIND_SERVICE],
        false => vec![Cap::NET_ADMIN],
    }
}

/// The first aws-lc RNG draw seeds it (tens of ms): do it before the first handshake.
fn warm_up() -> anyhow::Result<()> {
    let provider = pqgate_agility::build_provider(pqgate_agility::ProviderSpec {
        policy: pqgate_agility::KxPolicy::HybridRequired,
        tls12: false,
    })?;
    pqgate_agility::warm_up_rng(&provider).context("seeding the RNG")?;
    Ok(())
}

fn check(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = match config_load::load(path.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(e) = telemetry::check_log_level(&loaded.config.log) {
        eprintln!("{}: {e}", loaded.source);
        return Ok(ExitCode::FAILURE);
    }
    let registry = Registry::power_on_with(plugins::load_all(&loaded.config));
    let mut failed = false;
    for p in registry.plugins() {
        for e in &p.errors {
            match e.contains(&p.origin) {
                true => eprintln!("{}: plugin: {e}", loaded.source),
                false => eprintln!("{}: plugin {}: {e}", loaded.source, p.origin),
            }
            failed = true;
        }
    }
    if let Err(e) = build(&loaded, SelfSignedMode::IfPresent, &registry) {
        eprintln!("{e}");
        failed = true;
    }
    // WireGuard key files: readable, valid and not open to others.
    if let Err(e) = pqgate::wg::tunnels::specs(&loaded) {
        eprintln!("{e}");
        failed = true;
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    println!("# effective configuration from {}", loaded.source);
    print!(
        "{}",
        toml::to_string(&loaded.config).context("printing the config")?
    );
    Ok(ExitCode::SUCCESS)
}

/// The registry with the run-time plugins of `config` (none without a config), and the
/// inventory, with what the config's profiles and policies leave out marked when one is given.
fn registry_for(
    config: Option<&std::path::Path>,
) -> anyhow::Result<(Registry, Vec<pqgate_agility::InventoryEntry>)> {
    let Some(path) = config else {
        let registry = Registry::power_on();
        let inventory = registry.inventory();
        return Ok((registry, inventory));
    };
    let loaded = config_load::load(Some(path))?;
    let registry = Registry::power_on_with(plugins::load_all(&loaded.config));
    let inventory = registry.inventory_with_policy(&pqgate::build::endpoint_uses(&loaded.config));
    Ok((registry, inventory))
}

fn crypto(command: CryptoCommand) -> anyhow::Result<ExitCode> {
    match command {
        CryptoCommand::List { json, config } => {
            let (_, inventory) = registry_for(config.as_deref())?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&inventory)?),
                false => print!("{}", crypto_cli::inventory_table(&inventory)),
            }
        }
        CryptoCommand::Selftest { config } => {
            let (registry, _) = registry_for(config.as_deref())?;
            let (report, ok) = crypto_cli::selftest_report(&registry);
            print!("{report}");
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        CryptoCommand::Cbom { config } => println!("{}", pqgate::cbom::render(config.as_deref())?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `pqgate wg import`: the TOML on stdout unless written to `output`.
fn wg_import(
    file: &std::path::Path,
    output: Option<&std::path::Path>,
    key_dir: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    if let Some(text) = pqgate::wg::import::import(file, output, key_dir)? {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

fn status(admin: std::net::SocketAddr, json: bool) -> anyhow::Result<ExitCode> {
    let v = pqgate::wg::pq::fetch_status(admin)?;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&v)?),
        false => print!("{}", pqgate::wg::pq::render_text(&v)),
    }
    Ok(ExitCode::SUCCESS)
}

fn pin(cert: PathBuf) -> anyhow::Result<ExitCode> {
    let certs = pqgate::tls::material::load_certs(&cert, "certificate")?;
    let pin = pqgate::tls::client_config::spki_pin(&certs[0])?;
    println!("{pin}");
    Ok(ExitCode::SUCCESS)
}

/// `pqgate caps-probe`: runs single-threaded (before any runtime), as a capability drop must.
fn caps_probe(keep: &[String], bind: Option<std::net::SocketAddr>) -> anyhow::Result<ExitCode> {
    use pqgate::net::caps::{Cap, probe};
    let keep = keep
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| Cap::from_name(n).with_context(|| format!("unknown capability {n:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!("{}", probe(&keep, bind)?);
    Ok(ExitCode::SUCCESS)
}
