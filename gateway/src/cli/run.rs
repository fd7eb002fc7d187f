//! `pqgate run`: loads the config, drops every capability the daemon does not need while it is
//! the only thread, powers on the registry (self-tests, plugins), and runs the [`Daemon`] until
//! it stops; and the hidden `caps-probe` test aid.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use pqgate_agility::Registry;

use crate::admin::telemetry;
use crate::config;
use crate::crypto::{self, plugins};
use crate::daemon::Daemon;
use crate::net::caps::{Cap, probe};

pub(crate) fn run(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(path.as_deref()) {
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
    let dropped = crate::net::caps::drop_capabilities(&keep).context("dropping capabilities")?;
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
    crypto::publish(&registry);
    tracing::info!(config = %loaded.source, version = env!("CARGO_PKG_VERSION"), "pqgate starting");
    runtime.block_on(async move {
        let daemon = Daemon::start(loaded, path, metrics, registry).await?;
        daemon.run().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `pqgate run` keeps: CAP_NET_ADMIN (TUN devices, addresses, routes, socket buffers,
/// nftables) and CAP_NET_BIND_SERVICE when some configured port is below 1024.
fn run_capabilities(config: &pqgate_core::config::Config) -> Vec<Cap> {
    use crate::net::caps::Cap;
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

/// `pqgate caps-probe`: runs single-threaded (before any runtime), as a capability drop must.
pub(crate) fn caps_probe(
    keep: &[String],
    bind: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let keep = keep
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| Cap::from_name(n).with_context(|| format!("unknown capability {n:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!("{}", probe(&keep, bind)?);
    Ok(ExitCode::SUCCESS)
}
