//! The `[[wireguard]]` interfaces of `pqgate run`: key files read and checked into interface
//! descriptions, every interface brought up at start, and reloads in two steps so a rejected
//! config changes nothing: `stage` (resolve endpoints, start new interfaces) can fail and is
//! undone by dropping it; `commit` (peer, key and address changes, removed interfaces) cannot.

use std::sync::{Arc, Mutex};

use pqgate_core::wg::{InterfaceSpec, PresharedKey, WireguardConfig};

use super::WgError;
use super::interface::{Interface, Prepared};
use super::keyfile;
use super::metrics::{Sampler, Sources};
use crate::config::{ConfigErrors, ConfigIssue, Loaded};

/// An interface that failed to start or reload.
#[derive(Debug, thiserror::Error)]
#[error("wireguard interface {name}: {source}")]
pub(crate) struct TunnelError {
    /// The interface.
    pub name: String,
    /// The cause.
    #[source]
    pub source: WgError,
}

/// Reads the key files of every `[[wireguard]]` section of `loaded` and builds the interface
/// descriptions; every unreadable, bad or too-open key file is reported with its key path.
pub(crate) fn specs(loaded: &Loaded) -> Result<Vec<InterfaceSpec>, ConfigErrors> {
    let mut issues = Vec::new();
    let mut out = Vec::new();
    for (i, w) in loaded.config.wireguard.iter().enumerate() {
        if let Some(spec) = spec(loaded, i, w, &mut issues) {
            out.push(spec);
        }
    }
    match issues.is_empty() {
        true => Ok(out),
        false => Err(ConfigErrors(issues)),
    }
}

fn spec(
    loaded: &Loaded,
    i: usize,
    w: &WireguardConfig,
    issues: &mut Vec<ConfigIssue>,
) -> Option<InterfaceSpec> {
    let at = format!("wireguard[{i}]");
    let private_key = match (&w.private_key, &w.private_key_file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(path)) => keyfile::private_key(path)
            .map_err(|e| {
                issues.push(loaded.issue(&format!("{at}.private_key_file"), e.to_string()))
            })
            .ok(),
        (None, None) => {
            issues.push(loaded.issue(&format!("{at}.private_key"), "missing"));
            None
        }
    };
    let mut psks: Vec<Option<PresharedKey>> = Vec::with_capacity(w.peers.len());
    for (j, p) in w.peers.iter().enumerate() {
        let psk = match (&p.preshared_key, &p.preshared_key_file) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(path)) => keyfile::preshared_key(path)
                .map_err(|e| {
                    let key = format!("{at}.peer[{j}].preshared_key_file");
                    issues.push(loaded.issue(&key, e.to_string()));
                })
                .ok(),
            (None, None) => None,
        };
        // pq-required: a PSK nobody holds until the first PQ PSK replaces it.
        let psk = match super::pq::required(w, p) {
            true => Some(super::pq::blocking_psk()),
            false => psk,
        };
        psks.push(psk);
    }
    Some(InterfaceSpec::from_config(i, w, private_key?, psks))
}

/// The running interfaces and their metrics sampler.
pub(crate) struct Tunnels {
    running: Vec<Interface>,
    sources: Sources,
    _sampler: Option<Sampler>,
}

/// A reload's WireGuard part, ready to commit; dropping it undoes it (new interfaces removed).
pub(crate) struct Staged {
    started: Vec<Interface>,
    prepared: Vec<(String, Prepared)>,
    wanted: Vec<String>,
}

impl Staged {}

fn start_one(spec: InterfaceSpec) -> Result<Interface, TunnelError> {
    let name = spec.name.clone();
    let peers = spec.peers.len();
    let (iface, warnings) = Interface::start(spec).map_err(|source| TunnelError {
        name: name.clone(),
        source,
    })?;
    for w in warnings {
        tracing::warn!(interface = %name, "{w}");
    }
    let port = iface.engine().local_addr().map(|a| a.port()).unwrap_or(0);
    let data_path = iface.engine().describe_data_path();
    tracing::info!(interface = %name, port, peers, data_path, "wireguard interface up");
    Ok(iface)
}

impl Tunnels {
    /// Brings every interface up (all or none) and starts the metrics sampler when `metrics`.
    pub(crate) fn start(specs: Vec<InterfaceSpec>, metrics: bool) -> Result<Self, TunnelError> {
        let mut running = Vec::with_capacity(specs.len());
        for spec in specs {
            running.push(start_one(spec)?);
        }
        let sources: Sources = Arc::new(Mutex::new(Vec::new()));
        let sampler = match metrics {
            true => Sampler::start(Arc::clone(&sources))
                .map_err(|e| tracing::warn!("wireguard metrics sampler not started: {e}"))
                .ok(),
            false => None,
        };
        let tunnels = Self {
            running,
            sources,
            _sampler: sampler,
        };
        tunnels.publish();
        Ok(tunnels)
    }

    /// How many interfaces run.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// The engine of the running interface `name`.
    pub(crate) fn engine(&self, name: &str) -> Option<Arc<super::engine::Engine>> {
        let iface = self.running.iter().find(|r| r.name() == name)?;
        Some(Arc::clone(iface.engine()))
    }

    fn publish(&self) {
        let list = self
            .running
            .iter()
            .map(|i| (i.name().to_owned(), Arc::clone(i.engine())))
            .collect();
        *self.sources.lock().unwrap_or_else(|e| e.into_inner()) = list;
    }

    /// First step of a reload: resolves what changes and starts new interfaces. Nothing running
    /// changes; dropping the result removes what it started.
    pub(crate) fn stage(&self, specs: Vec<InterfaceSpec>) -> Result<Staged, TunnelError> {
        let mut staged = Staged {
            started: Vec::new(),
            prepared: Vec::new(),
            wanted: specs.iter().map(|s| s.name.clone()).collect(),
        };
        for spec in specs {
            let name = spec.name.clone();
            match self.running.iter().find(|r| r.name() == name) {
                Some(r) => {
                    let p = r.prepare(spec).map_err(|source| TunnelError {
                        name: name.clone(),
                        source,
                    })?;
                    staged.prepared.push((name, p));
                }
                None => staged.started.push(start_one(spec)?),
            }
        }
        Ok(staged)
    }

    /// Second step: applies the staged changes and removes interfaces no longer configured.
    /// Returns warnings for the log.
    pub(crate) fn commit(&mut self, staged: Staged) -> Vec<String> {
        let Staged {
            started,
            prepared,
            wanted,
        } = staged;
        let mut warnings = Vec::new();
        for (name, p) in prepared {
            if let Some(r) = self.running.iter_mut().find(|r| r.name() == name) {
                warnings.extend(r.commit(p));
            }
        }
        let (keep, gone): (Vec<Interface>, Vec<Interface>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| wanted.iter().any(|w| w == r.name()));
        self.running = keep;
        self.running.extend(started);
        self.publish();
        for r in gone {
            let name = r.name().to_owned();
            if let Err(e) = r.shutdown() {
                warnings.push(format!("wireguard {name}: {e}"));
            }
            tracing::info!(interface = %name, "wireguard interface removed");
        }
        warnings
    }

    /// Stops every interface and removes it from the host.
    pub(crate) fn shutdown(self) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for r in self.running {
            let name = r.name().to_owned();
            let counters = super::up::summary(&r.engine().counters);
            if let Err(e) = r.shutdown() {
                tracing::warn!(interface = %name, "{e}");
            }
            tracing::info!(interface = %name, counters, "wireguard interface down");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::os::unix::fs::PermissionsExt;

    const K: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

    fn write(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn parse_errors_carry_the_key_path_and_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = &K[..40];
        // serde stops an array element at its first error: one broken thing per section.
        let text = format!(
            "[[wireguard]]\nname = \"wg0\"\nprivate_key = \"{secret}\"\n\n[[wireguard]]\n\
             name = \"wg1\"\nprivate_key = \"{K}\"\n\n[[wireguard.peer]]\npublic_key = \"{K}\"\n\n\
             [[wireguard.peer]]\npublic_key = \"nope\"\n"
        );
        let p = write(dir.path(), "c.toml", &text, 0o600);
        let errs = config::load(Some(&p)).err().unwrap();
        let shown = errs.to_string();
        let keys: Vec<&str> = errs.0.iter().map(|i| i.key.as_str()).collect();
        assert!(keys.contains(&"wireguard[0].private_key"), "{shown}");
        assert!(keys.contains(&"wireguard[1].peer[1].public_key"), "{shown}");
        assert!(!shown.contains(secret), "{shown}");
    }

    #[test]
    fn key_files_relative_to_the_config_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "wg.key", &format!("{K}\n"), 0o640);
        write(dir.path(), "p.psk", K, 0o666);
        let text = format!(
            "[[wireguard]]\nname = \"wg0\"\nprivate_key_file = \"wg.key\"\nmtu = 1380\n\n\
             [[wireguard.peer]]\npublic_key = \"{K}\"\npreshared_key_file = \"p.psk\"\n"
        );
        let p = write(dir.path(), "c.toml", &text, 0o600);
        let loaded = config::load(Some(&p)).unwrap();
        let errs = specs(&loaded).err().unwrap();
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert_eq!(errs.0[0].key, "wireguard[0].peer[0].preshared_key_file");
        assert!(errs.0[0].message.contains("0666"), "{errs}");
        std::fs::set_permissions(
            dir.path().join("p.psk"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let spec = specs(&loaded).unwrap().remove(0);
        assert_eq!(spec.private_key.expose_base64(), K);
        assert_eq!(spec.mtu, 1380);
        assert!(spec.peers[0].preshared_key.is_some());
    }

    #[test]
    fn offload_and_queues_default_on_and_reach_the_data_path_options() {
        use super::super::interface::DataPathOptions;
        let dir = tempfile::tempdir().unwrap();
        let section =
            |extra: &str| format!("[[wireguard]]\nname = \"wg0\"\nprivate_key = \"{K}\"\n{extra}");
        let p = write(dir.path(), "d.toml", &section(""), 0o600);
        let spec = specs(&config::load(Some(&p)).unwrap()).unwrap().remove(0);
        assert_eq!(DataPathOptions::of(&spec), DataPathOptions::default());
        let p = write(
            dir.path(),
            "s.toml",
            &section("offload = false\nqueues = 2\n"),
            0o600,
        );
        let spec = specs(&config::load(Some(&p)).unwrap()).unwrap().remove(0);
        let plain = DataPathOptions {
            offload: false,
            queues: Some(2),
        };
        assert_eq!(DataPathOptions::of(&spec), plain);
        let too_many = format!("queues = {}\n", super::super::interface::MAX_QUEUES + 1);
        for bad in ["queues = 0\n", &too_many] {
            let p = write(dir.path(), "b.toml", &section(bad), 0o600);
            let errs = config::load(Some(&p)).err().unwrap();
            let keys: Vec<&str> = errs.0.iter().map(|i| i.key.as_str()).collect();
            assert_eq!(keys, ["wireguard[0].queues"], "{errs}");
        }
    }
}
