//! Talking to the `nft` binary: a JSON batch in on stdin (one atomic transaction), the table
//! read back as JSON, and nft's own error text kept verbatim when it refuses something.

use std::io::Write;
use std::process::{Command, Stdio};

use nftables::schema::Nftables;
use pqgate_core::firewall::{ChainKind, Policy, Ruleset};
use serde_json::Value;

use super::FirewallError;

/// The nft binary, looked up in `PATH`.
const NFT: &str = "nft";

/// Runs `nft -j -f -` on `batch`: every command in it takes effect, or none does.
pub(crate) fn apply(batch: &Nftables<'_>) -> Result<(), FirewallError> {
    let json = serde_json::to_vec(batch).map_err(FirewallError::Encode)?;
    run(&["-j", "-f", "-"], Some(&json)).map(drop)
}

/// Runs `nft -c -j -f -` on `batch`: nft checks it against the running kernel, changing nothing.
pub(crate) fn check(batch: &Nftables<'_>) -> Result<(), FirewallError> {
    let json = serde_json::to_vec(batch).map_err(FirewallError::Encode)?;
    run(&["-c", "-j", "-f", "-"], Some(&json)).map(drop)
}

/// `nft -j list table inet NAME`, parsed.
pub(crate) fn list_table(name: &str) -> Result<Value, FirewallError> {
    let out = run(&["-j", "list", "table", "inet", name], None)?;
    serde_json::from_slice(&out).map_err(|e| FirewallError::Readback(format!("not JSON: {e}")))
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, FirewallError> {
    let mut child = Command::new(NFT)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(FirewallError::Spawn)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // nft reads all of stdin before it exits; a write error shows up in its status.
        let written = pipe.write_all(input);
        drop(pipe);
        if let Err(e) = written {
            tracing::debug!("writing to nft: {e}");
        }
    }
    let out = child.wait_with_output().map_err(FirewallError::Spawn)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(FirewallError::Rejected {
        command: format!("nft {}", args.join(" ")),
        status: out.status.to_string(),
        stderr,
    })
}

/// Checks that the table nft reports holds exactly the generated chains (type, hook, policy)
/// with the generated number of rules each.
pub(crate) fn verify(expected: &Ruleset, listed: &Value) -> Result<(), FirewallError> {
    let objects = listed
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| FirewallError::Readback("no \"nftables\" array".into()))?;
    let of_table = |o: &&Value| o.get("table").and_then(Value::as_str) == Some(&expected.table);
    let chains: Vec<&Value> = objects
        .iter()
        .filter_map(|o| o.get("chain"))
        .filter(of_table)
        .collect();
    let rules: Vec<&Value> = objects
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(of_table)
        .collect();
    let mismatch = |what: String| Err(FirewallError::Readback(what));
    if chains.len() != expected.chains.len() {
        return mismatch(format!(
            "{} chains listed, {} generated",
            chains.len(),
            expected.chains.len()
        ));
    }
    for want in &expected.chains {
        let Some(got) = chains
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(want.name))
        else {
            return mismatch(format!("chain {} is missing", want.name));
        };
        let kind = match want.kind {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        };
        let policy = match want.policy {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        };
        let hook = serde_json::to_value(super::json::hook(want.hook)).unwrap_or(Value::Null);
        let fields = [
            ("type", Value::from(kind)),
            ("hook", hook),
            ("policy", Value::from(policy)),
            ("prio", Value::from(want.priority)),
        ];
        for (key, value) in fields {
            if got.get(key) != Some(&value) {
                return mismatch(format!(
                    "chain {}: {key} is {}, generated {value}",
                    want.name,
                    got.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
        let count = rules
            .iter()
            .filter(|r| r.get("chain").and_then(Value::as_str) == Some(want.name))
            .count();
        if count != want.rules.len() {
            return mismatch(format!(
                "chain {}: {count} rules listed, {} generated",
                want.name,
                want.rules.len()
            ));
        }
    }
    Ok(())
}
