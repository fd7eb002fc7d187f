//! The host firewall: installs the ruleset the core generates from the config as pqgate's own
//! nftables table in one atomic `nft` transaction, reads it back to verify it, replaces it on
//! reload (a refused ruleset leaves the previous one in force) and removes it on stop unless
//! `firewall.persist` is set. Nothing outside that table is touched.

pub(crate) mod json;
pub(crate) mod nft;
#[cfg(test)]
mod tests;

use metrics::gauge;
use pqgate_core::config::Config;
use pqgate_core::firewall::generate;
use pqgate_core::metrics as m;

/// Why the firewall could not be installed, verified or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FirewallError {
    /// The config could not be turned into a ruleset (an unvalidated config).
    #[error(transparent)]
    Generate(#[from] pqgate_core::firewall::FirewallError),
    /// The batch could not be encoded as JSON.
    #[error("encoding the nftables batch: {0}")]
    Encode(#[source] serde_json::Error),
    /// `nft` could not be started (not installed, not in PATH).
    #[error("cannot run nft (is nftables installed?): {0}")]
    Spawn(#[source] std::io::Error),
    /// `nft` refused; `stderr` is its own message, verbatim.
    #[error("{command} failed ({status}): {stderr}")]
    Rejected {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What nft wrote to stderr.
        stderr: String,
    },
    /// The table read back differs from what was generated.
    #[error("the installed table does not match the generated ruleset: {0}")]
    Readback(String),
}

/// The table this process installed, if any.
#[derive(Debug, Default)]
pub(crate) struct Firewall {
    installed: Option<Installed>,
}

#[derive(Debug)]
struct Installed {
    table: String,
    persist: bool,
}

impl Firewall {
    /// Makes the installed ruleset match `config`: replaces the table (retiring one installed
    /// earlier under another name in the same transaction) and verifies it, or removes the
    /// table when the firewall is now disabled. When nft refuses, nothing changed. A table nft
    /// accepted but that reads back differently stays in force (and is removed at stop); the
    /// error says how it differs and `pqgate_firewall_applied` stays 0.
    pub(crate) fn apply(&mut self, config: &Config) -> Result<(), FirewallError> {
        let previous = self.installed.as_ref().map(|i| i.table.as_str());
        if !config.firewall.enabled {
            if let Some(table) = previous {
                nft::apply(&json::remove_batch(table))?;
                tracing::info!(table, "firewall disabled: table removed");
                self.installed = None;
            }
            gauge!(m::FIREWALL_APPLIED).set(0.0);
            return Ok(());
        }
        let ruleset = generate(config)?;
        nft::apply(&json::replace_batch(&ruleset, previous))?;
        self.installed = Some(Installed {
            table: ruleset.table.clone(),
            persist: config.firewall.persist,
        });
        if let Err(e) = nft::list_table(&ruleset.table).and_then(|t| nft::verify(&ruleset, &t)) {
            gauge!(m::FIREWALL_APPLIED).set(0.0);
            return Err(e);
        }
        gauge!(m::FIREWALL_APPLIED).set(1.0);
        tracing::info!(
            table = %ruleset.table,
            chains = ruleset.chains.len(),
            rules = ruleset.rule_count(),
            "firewall applied"
        );
        Ok(())
    }

    /// Removes the table unless the config asked to keep it. Errors are logged: stopping goes on.
    pub(crate) fn stop(&mut self) {
        let Some(installed) = self.installed.take() else {
            return;
        };
        gauge!(m::FIREWALL_APPLIED).set(0.0);
        let table = installed.table.as_str();
        if installed.persist {
            tracing::info!(table, "firewall table kept (firewall.persist)");
            return;
        }
        match nft::apply(&json::remove_batch(table)) {
            Ok(()) => tracing::info!(table, "firewall table removed"),
            Err(e) => tracing::error!(table, "removing the firewall table: {e}"),
        }
    }
}
