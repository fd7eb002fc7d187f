//! A reload's TLS part for a running interface: the `[wireguard.pq]` files (certificate, key,
//! CA, CRLs) re-read into the node, whatever changed on disk, with the node's running profile
//! and interval (only a restart changes those, and the other restart-only keys, which are only
//! named here); an unusable file is reported by its config key and the running material stays.

use pqgate_agility::Registry;
use pqgate_core::pqpsk::PqPskConfig;
use pqgate_core::wg::config::WgPqConfig;
use pqgate_core::wg::{Key32, WireguardConfig};

use super::{PqError, Running, remap_key};
use crate::pqpsk::{CertSummary, TlsReload};

/// The `[wireguard.pq]` keys that differ between `old` and `new` and need a restart (the TLS
/// files are re-read on every reload instead).
pub(super) fn restart_only_changes(old: &WgPqConfig, new: &WgPqConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.profile != new.profile {
        changed.push("profile");
    }
    if old.rotation_interval_secs != new.rotation_interval_secs {
        changed.push("rotation_interval_secs");
    }
    if old.mode != new.mode {
        changed.push("mode");
    }
    if old.second_kem != new.second_kem {
        changed.push("second_kem");
    }
    if old.listen != new.listen {
        changed.push("listen");
    }
    changed
}

/// The TLS file keys whose paths differ between `old` and `new`.
fn path_changes(old: &WgPqConfig, new: &WgPqConfig) -> Vec<&'static str> {
    let pairs = [
        ("ca", old.ca == new.ca),
        ("crl", old.crl == new.crl),
        ("cert", old.cert == new.cert),
        ("key", old.key == new.key),
    ];
    pairs
        .into_iter()
        .filter_map(|(k, same)| (!same).then_some(k))
        .collect()
}

/// Re-reads the TLS files of `new` (with the running node's profile and interval, which only a
/// restart changes) into `r`'s node; on success the running config takes the new paths.
pub(super) fn reload_tls(
    registry: &Registry,
    i: usize,
    w: &WireguardConfig,
    r: &mut Running,
    new: &WgPqConfig,
    channel: &PqPskConfig,
) -> Result<(), PqError> {
    let mut c = channel.clone();
    c.profile.clone_from(&r.config.profile);
    c.rotation_interval_secs = r.config.rotation_interval_secs;
    let done = r.node.reload_tls(&c, registry).map_err(|source| {
        let pq_index: Vec<usize> = (0..w.peers.len())
            .filter(|&j| w.peers[j].pq.is_some())
            .collect();
        PqError::Reload {
            iface: w.name.clone(),
            key: remap_key(source.key(), &format!("wireguard[{i}]"), &pq_index),
            source: Box::new(source),
        }
    })?;
    log_tls_reload(&w.name, &path_changes(&r.config, new), &done);
    r.config.ca.clone_from(&new.ca);
    r.config.crl.clone_from(&new.crl);
    r.config.cert.clone_from(&new.cert);
    r.config.key.clone_from(&new.key);
    Ok(())
}

fn log_tls_reload(iface: &str, paths: &[&str], done: &TlsReload) {
    let text = |s: &Option<CertSummary>| {
        s.as_ref().map_or_else(
            || "unknown".to_owned(),
            |s| format!("serial {}, expires {}", s.serial, s.not_after),
        )
    };
    let closed: Vec<String> = done
        .closed
        .iter()
        .map(|(k, f)| format!("{} ({})", Key32::from_bytes(*k), f.label()))
        .collect();
    let or_none = |v: String| if v.is_empty() { "none".to_owned() } else { v };
    tracing::info!(
        interface = %iface,
        certificate = %text(&done.leaf),
        certificate_changed = done.leaf != done.previous,
        paths_changed = %or_none(paths.join(",")),
        channels_closed = %or_none(closed.join(", ")),
        "PQ channel TLS reloaded"
    );
    if done.crl_stale {
        tracing::warn!(
            interface = %iface,
            "PQ channel TLS reloaded with a CRL past its nextUpdate: revocations since then are missed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pqgate_core::pqpsk::PqMode;

    #[test]
    fn tls_paths_reload_and_the_other_keys_need_a_restart() {
        let old = WgPqConfig {
            ca: "ca.pem".into(),
            crl: Vec::new(),
            cert: "c.pem".into(),
            key: "k.pem".into(),
            listen: None,
            rotation_interval_secs: 120,
            mode: PqMode::Required,
            second_kem: Default::default(),
            profile: "pq-hybrid".into(),
        };
        assert!(restart_only_changes(&old, &old).is_empty());
        assert!(path_changes(&old, &old).is_empty());
        let mut new = old.clone();
        new.cert = "c2.pem".into();
        new.crl = vec!["ca.crl".into()];
        assert!(restart_only_changes(&old, &new).is_empty());
        assert_eq!(path_changes(&old, &new), ["crl", "cert"]);
        new.profile = "cnsa2".into();
        new.rotation_interval_secs = 60;
        new.mode = PqMode::Preferred;
        new.second_kem = pqgate_core::pqpsk::SecondKem::Hqc128;
        new.listen = Some("0.0.0.0:4433".parse().unwrap());
        assert_eq!(
            restart_only_changes(&old, &new),
            [
                "profile",
                "rotation_interval_secs",
                "mode",
                "second_kem",
                "listen"
            ]
        );
    }
}
