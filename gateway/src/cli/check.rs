//! `pqgate check`: every problem of a config (syntax, semantics, plugins, certificates, keys,
//! WireGuard key files) printed at once, exit 1; or the effective config, exit 0.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use pqgate_agility::Registry;

use crate::admin::telemetry;
use crate::config;
use crate::crypto::plugins;
use crate::daemon::assemble::{SelfSignedMode, build};

pub(crate) fn check(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(path.as_deref()) {
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
    if let Err(e) = crate::wg::tunnels::specs(&loaded) {
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
