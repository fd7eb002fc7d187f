//! `pqgate crypto list` and `pqgate crypto selftest`: the algorithm inventory with each
//! algorithm's status, and the power-on self-test report, for operators and evaluation labs.

use std::fmt::Write as _;

use metrics::gauge;
use pqgate_agility::{Registry, Status};

/// Gauge per algorithm: 1 enabled, 0 disabled by a failed self-test.
pub const ALGORITHM_ENABLED: &str = "pqgate_algorithm_enabled";

/// The inventory as an aligned table.
pub fn inventory_table(inventory: &[pqgate_agility::InventoryEntry]) -> String {
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
pub fn selftest_report(registry: &Registry) -> (String, bool) {
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

/// Logs every failed self-test and exports one gauge per algorithm.
pub fn publish(registry: &Registry) {
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

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Enabled => "enabled",
        Status::DisabledBySelfTest => "disabled (self-test failed)",
        Status::PendingFirstUse => "enabled (self-test on first use)",
        Status::DisabledByPolicy => "disabled by policy (no listener or connector admits it)",
    }
}
