//! Turns a loaded configuration into ready-to-serve listener and connector states, loading every
//! certificate and key; all problems are collected and located (key path and file).

use pqgate_agility::{Profile, Registry};
use pqgate_core::config::{Config, Transport};

use crate::config::{ConfigErrors, ConfigIssue, Loaded};
use crate::keys::self_signed;
use crate::tls::client_config::build_connector_tls;
use crate::tls::connector::ConnectorState;
use crate::tls::listener::ListenerState;
use crate::tls::server_config::build_listener_tls;

/// Whether building may create the self-signed certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SelfSignedMode {
    /// Generate it if missing (`run`).
    Generate,
    /// Use it if present, else check with a throwaway one; never write the state directory
    /// (`check`).
    IfPresent,
}

/// Everything a daemon serves.
pub(crate) struct Built {
    /// Listener states, in config order.
    pub listeners: Vec<ListenerState>,
    /// Connector states, in config order.
    pub connectors: Vec<ConnectorState>,
    /// Listeners with `transport = "quic"`, in config order.
    pub quic_listeners: Vec<crate::quic::QuicListenerState>,
    /// Connectors with `transport = "quic"`, in config order.
    pub quic_connectors: Vec<crate::quic::QuicConnectorState>,
}

/// A built-in profile or a `[[profile]]` of the config, by name.
pub(crate) fn resolve_profile(config: &Config, name: &str) -> Option<Profile> {
    pqgate_agility::builtin_profile(name).or_else(|| {
        config
            .profiles
            .iter()
            .find(|p| p.name == name)
            .map(|p| pqgate_agility::custom_profile(&p.name, &p.groups, &p.suites))
    })
}

/// Each listener's and connector's provider spec and resolved profile (unknown profiles are
/// left out; `validate` reports them).
pub(crate) fn endpoint_uses(config: &Config) -> Vec<(pqgate_agility::ProviderSpec, Profile)> {
    let listeners = config
        .listeners
        .iter()
        .map(|l| (l.policy, l.tls12, l.profile.as_str()));
    let connectors = config
        .connectors
        .iter()
        .map(|c| (c.policy, c.tls12, c.profile.as_str()));
    listeners
        .chain(connectors)
        .filter_map(|(policy, tls12, name)| {
            let profile = resolve_profile(config, name)?;
            Some((pqgate_agility::ProviderSpec { policy, tls12 }, profile))
        })
        .collect()
}

/// Builds every listener and connector of `loaded`.
pub(crate) fn build(
    loaded: &Loaded,
    mode: SelfSignedMode,
    registry: &Registry,
) -> Result<Built, ConfigErrors> {
    let config: &Config = &loaded.config;
    let mut issues: Vec<ConfigIssue> = Vec::new();
    let mut built = Built {
        listeners: Vec::new(),
        connectors: Vec::new(),
        quic_listeners: Vec::new(),
        quic_connectors: Vec::new(),
    };
    let state_dir = self_signed::state_dir(config.service.state_dir.as_deref());
    // `check` must not write into the state directory: when the generated certificate does not
    // exist yet, it checks the listener with a throwaway one, generated the same way.
    let scratch = std::env::temp_dir().join(format!("pqgate-check-{}", std::process::id()));
    let self_signed_dir = match mode {
        SelfSignedMode::IfPresent if !self_signed::self_signed_paths(&state_dir).cert.exists() => {
            scratch.as_path()
        }
        _ => state_dir.as_path(),
    };
    for (i, l) in config.listeners.iter().enumerate() {
        let at = format!("listener[{i}]");
        let pair = if l.self_signed {
            match self_signed::ensure_self_signed(self_signed_dir) {
                Ok(p) => Some((p.cert, p.key)),
                Err(e) => {
                    issues.push(loaded.issue(&format!("{at}.self_signed"), e.to_string()));
                    continue;
                }
            }
        } else {
            None
        };
        let pair_ref = pair.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        let Some(profile) = resolve_profile(config, &l.profile) else {
            issues.push(loaded.issue(&format!("{at}.profile"), "unknown profile"));
            continue;
        };
        if l.transport == Transport::Quic {
            match crate::quic::tls::server_config(&at, l, pair_ref, registry, &profile) {
                Ok(q) => built
                    .quic_listeners
                    .push(crate::quic::QuicListenerState::new(l.clone(), q)),
                Err(e) => issues.push(loaded.issue(e.key(), e.to_string())),
            }
            continue;
        }
        match build_listener_tls(&at, l, pair_ref, registry, &profile) {
            Ok(tls) => built.listeners.push(ListenerState::new(l.clone(), tls)),
            Err(e) => issues.push(loaded.issue(e.key(), e.to_string())),
        }
    }
    for (i, c) in config.connectors.iter().enumerate() {
        let at = format!("connector[{i}]");
        let Some(profile) = resolve_profile(config, &c.profile) else {
            issues.push(loaded.issue(&format!("{at}.profile"), "unknown profile"));
            continue;
        };
        if c.transport == Transport::Quic {
            match crate::quic::tls::client_config(&at, c, registry, &profile) {
                Ok(q) => built
                    .quic_connectors
                    .push(crate::quic::QuicConnectorState::new(c.clone(), q)),
                Err(e) => issues.push(loaded.issue(e.key(), e.to_string())),
            }
            continue;
        }
        match build_connector_tls(&at, c, registry, &profile) {
            Ok(tls) => built.connectors.push(ConnectorState::new(c.clone(), tls)),
            Err(e) => issues.push(loaded.issue(e.key(), e.to_string())),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if issues.is_empty() {
        Ok(built)
    } else {
        Err(ConfigErrors(issues))
    }
}
