//! The gateway's cryptography as operators see it: run-time plugins loaded (and their signatures
//! checked) at start, the inventory published as metrics, and the CycloneDX CBOM of a config.

pub(crate) mod cbom;
pub(crate) mod plugins;

use metrics::gauge;
use pqgate_agility::{Registry, Status};

/// Gauge per algorithm: 1 enabled, 0 disabled by a failed self-test.
pub(crate) const ALGORITHM_ENABLED: &str = "pqgate_algorithm_enabled";

/// Logs every failed self-test and exports one gauge per algorithm.
pub(crate) fn publish(registry: &Registry) {
    for f in registry.report().failures() {
        tracing::error!(
            algorithm = f.algorithm,
            test = f.test,
            "self-test failed: algorithm disabled"
        );
    }
    for p in registry.plugins() {
        for e in &p.errors {
            tracing::error!(plugin = %p.name, origin = %p.origin, "plugin algorithm disabled: {e}");
        }
        if !p.enabled.is_empty() {
            tracing::info!(plugin = %p.name, origin = %p.origin, enabled = ?p.enabled, "plugin loaded");
        }
    }
    for e in registry.inventory() {
        let usable = matches!(e.status, Status::Enabled | Status::PendingFirstUse);
        let value = if usable { 1.0 } else { 0.0 };
        gauge!(ALGORITHM_ENABLED, "algorithm" => e.name).set(value);
    }
}
