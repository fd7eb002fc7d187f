//! `pqgate firewall show|check`: the ruleset a config produces, printed (nft text or JSON) or
//! checked by `nft --check` against the running kernel, without applying anything.

use std::path::PathBuf;
use std::process::ExitCode;

use pqgate_core::firewall::generate;

use crate::config::{self, ConfigErrors};
use crate::firewall::{FirewallError, json, nft};

/// `pqgate firewall ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FirewallCommand {
    /// Print the ruleset the config produces (nft syntax), without applying it.
    Show {
        /// TOML config file (the embedded default when absent).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The nftables JSON batch pqgate applies, instead of nft syntax.
        #[arg(long)]
        json: bool,
    },
    /// Have nft check the ruleset against this kernel (`nft --check`), applying nothing.
    Check {
        /// TOML config file (the embedded default when absent).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

/// Why a firewall command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// Generating or checking the ruleset failed.
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    /// Printing JSON failed.
    #[error("printing JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Runs one firewall command.
pub(crate) fn run(command: FirewallCommand) -> Result<ExitCode, CliError> {
    match command {
        FirewallCommand::Show { config, json } => {
            let loaded = config::load(config.as_deref())?;
            let ruleset = generate(&loaded.config).map_err(FirewallError::from)?;
            if !loaded.config.firewall.enabled {
                eprintln!(
                    "# firewall.enabled is false in {}: pqgate run does not apply this ruleset",
                    loaded.source
                );
            }
            match json {
                true => {
                    let batch = json::replace_batch(&ruleset, None);
                    let text = serde_json::to_string_pretty(&batch).map_err(CliError::Json)?;
                    println!("{text}");
                }
                false => print!("{ruleset}"),
            }
        }
        FirewallCommand::Check { config } => {
            let loaded = config::load(config.as_deref())?;
            let ruleset = generate(&loaded.config).map_err(FirewallError::from)?;
            nft::check(&json::replace_batch(&ruleset, None))?;
            println!(
                "ok: nft accepts table inet {} ({} chains, {} rules)",
                ruleset.table,
                ruleset.chains.len(),
                ruleset.rule_count()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
