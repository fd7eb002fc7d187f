//! `pqgate crypto list` and `pqgate crypto selftest`: the algorithm inventory with each
//! algorithm's status, and the power-on self-test report, for operators and evaluation labs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::config;
use crate::crypto::plugins;

use pqgate_agility::{Registry, Status};
use std::fmt::Write as _;

/// The inventory as an aligned table.
pub(crate) fn inventory_table(inventory: &[pqgate_agility::InventoryEntry]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<46} {:<13} {:<10} {:>6} {:>5} {:<3} status",
        "name", "kind", "provider", "code", "bits", "pq"
    );
    for e in inventory {
        let code = e
            .code_point
            .map_or_else(|| "-".to_owned(), |c| format!("{c:#06x}"));
        let bits = e
            .security_bits
            .map_or_else(|| "-".to_owned(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{:<46} {:<13} {:<10} {:>6} {:>5} {:<3} {}",
            e.name,
            e.kind,
            e.provider,
            code,
            bits,
            if e.post_quantum { "yes" } else { "no" },
            status_text(e.status)
        );
    }
    out
}

/// The self-test report; the bool is true when every test passed.
pub(crate) fn selftest_report(registry: &Registry) -> (String, bool) {
    let report = registry.report();
    let mut lines: Vec<(bool, String)> = report
        .results
        .iter()
        .map(|r| (r.passed, format!("{:<24} {}", r.algorithm, r.test)))
        .collect();
    // The KEMs tested on first use (McEliece, HQC) are tested here too.
    for name in pqgate_agility::kem::KEM_NAMES {
        if report.results.iter().any(|r| r.algorithm == *name) {
            continue;
        }
        let outcome = pqgate_agility::kem::checked(name);
        let detail = outcome
            .as_ref()
            .err()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        lines.push((
            outcome.is_ok(),
            format!("{name:<24} pairwise encaps/decaps{detail}"),
        ));
    }
    for p in registry.plugins() {
        for e in &p.errors {
            lines.push((false, format!("plugin {}: {e}", p.origin)));
        }
    }
    let mut out = String::new();
    for (passed, line) in &lines {
        let _ = writeln!(out, "{}  {line}", if *passed { "PASS" } else { "FAIL" });
    }
    let failed = lines.iter().filter(|(passed, _)| !passed).count();
    let _ = writeln!(out, "{} passed, {failed} failed", lines.len() - failed);
    (out, failed == 0)
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Enabled => "enabled",
        Status::DisabledBySelfTest => "disabled (self-test failed)",
        Status::PendingFirstUse => "enabled (self-test on first use)",
        Status::DisabledByPolicy => "disabled by policy (no listener or connector admits it)",
    }
}

#[derive(Subcommand)]
pub(crate) enum CryptoCommand {
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

pub(crate) fn run(command: CryptoCommand) -> anyhow::Result<ExitCode> {
    match command {
        CryptoCommand::List { json, config } => {
            let (_, inventory) = registry_for(config.as_deref())?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&inventory)?),
                false => print!("{}", inventory_table(&inventory)),
            }
        }
        CryptoCommand::Selftest { config } => {
            let (registry, _) = registry_for(config.as_deref())?;
            let (report, ok) = selftest_report(&registry);
            print!("{report}");
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        CryptoCommand::Cbom { config } => {
            println!("{}", crate::crypto::cbom::render(config.as_deref())?)
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The registry with the run-time plugins of `config` (none without a config), and the
/// inventory, with what the config's profiles and policies leave out marked when one is given.
fn registry_for(
    config: Option<&Path>,
) -> anyhow::Result<(Registry, Vec<pqgate_agility::InventoryEntry>)> {
    let Some(path) = config else {
        let registry = Registry::power_on();
        let inventory = registry.inventory();
        return Ok((registry, inventory));
    };
    let loaded = config::load(Some(path))?;
    let registry = Registry::power_on_with(plugins::load_all(&loaded.config));
    let inventory =
        registry.inventory_with_policy(&crate::daemon::assemble::endpoint_uses(&loaded.config));
    Ok((registry, inventory))
}
