//! The configuration model: plain data that serde fills from TOML and environment, with defaults
//! for every optional key. Semantic checks live in [`crate::validate`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use crate::firewall::config::{FirewallConfig, ForwardConfig};
pub use pqgate_agility::KxPolicy;
use serde::{Deserialize, Serialize};

/// Top-level config sections, in the order they are read and printed.
pub const SECTIONS: &[&str] = &[
    "log",
    "admin",
    "service",
    "plugins",
    "plugin",
    "profile",
    "listener",
    "connector",
    "wireguard",
    "firewall",
];

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Admin endpoint (`/metrics`, `/healthz`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Process-wide settings.
    #[serde(default)]
    pub service: ServiceConfig,
    /// Rules for run-time plugins.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Run-time plugins to load at start.
    #[serde(default, rename = "plugin")]
    pub plugin_files: Vec<PluginConfig>,
    /// Custom algorithm profiles.
    #[serde(default, rename = "profile")]
    pub profiles: Vec<ProfileConfig>,
    /// TLS termination listeners.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// TLS origination connectors.
    #[serde(default, rename = "connector")]
    pub connectors: Vec<ConnectorConfig>,
    /// WireGuard interfaces.
    #[serde(default)]
    pub wireguard: Vec<crate::wg::WireguardConfig>,
    /// The host firewall (nftables).
    #[serde(default)]
    pub firewall: FirewallConfig,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter directive such as `info` or `pqgate=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Whether the admin endpoint runs.
    pub enabled: bool,
    /// Address of the admin endpoint.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9851)),
        }
    }
}

/// `[service]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where generated keys and certificates live. Empty: `$STATE_DIRECTORY` under systemd,
    /// `/var/lib/pqgate` for root, `$HOME/.local/state/pqgate` otherwise.
    pub state_dir: Option<PathBuf>,
    /// How long SIGTERM waits for open connections before exiting.
    pub drain_timeout_secs: u64,
    /// Worker threads for the async runtime; 0 means one per CPU.
    pub worker_threads: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            drain_timeout_secs: 30,
            worker_threads: 0,
        }
    }
}

/// `[plugins]`: rules every run-time plugin must meet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Refuse any plugin without a valid detached signature from a trusted key.
    pub require_signature: bool,
    /// Public keys (PEM SubjectPublicKeyInfo, Ed25519 or ML-DSA) trusted to sign plugins.
    pub trusted_keys: Vec<PathBuf>,
}

/// `[[plugin]]`: a shared library speaking the pqgate plugin ABI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The library.
    pub path: PathBuf,
    /// Its detached signature; `<path>.sig` when absent.
    pub signature: Option<PathBuf>,
}

/// `[[profile]]`: a named selection of algorithms, most preferred first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Name used by `profile = "..."`; must not be a built-in name.
    pub name: String,
    /// Key-exchange group names.
    pub groups: Vec<String>,
    /// TLS cipher suite names (built-in or from a plugin).
    pub suites: Vec<String>,
}

/// How a listener receives, or a connector sends, its tunnelled TCP connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One TLS connection over TCP per tunnelled TCP connection.
    #[default]
    Tls,
    /// One QUIC connection (UDP) between two gateways, one bidirectional stream per tunnelled
    /// TCP connection (`gateway/src/quic`).
    Quic,
}

/// The profile every listener and connector uses unless it names another.
pub fn default_profile() -> String {
    pqgate_agility::DEFAULT_PROFILE.to_owned()
}

/// Where a terminated connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The built-in page that reports what the client negotiated.
    BuiltinInfo,
    /// A TCP service, `host:port`.
    Tcp(HostPort),
}

/// The spelling of [`Backend::BuiltinInfo`] in config.
pub const BUILTIN_INFO: &str = "builtin:info";

/// A `host:port` pair, host being a name or an IP literal (IPv6 in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port, never 0.
    pub port: u16,
}

/// Why a `host:port` string is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not host:port (IPv6 as [addr]:port, port 1-65535)")]
pub struct HostPortError(pub String);

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || HostPortError(s.to_owned());
        let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
        let port: u16 = port.parse().map_err(|_| err())?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(err)?,
            None if host.contains(':') => return Err(err()),
            None => host,
        };
        if host.is_empty() || port == 0 || host.chars().any(char::is_whitespace) {
            return Err(err());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Backend {
    type Err = HostPortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == BUILTIN_INFO {
            return Ok(Self::BuiltinInfo);
        }
        s.parse().map(Self::Tcp)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuiltinInfo => f.write_str(BUILTIN_INFO),
            Self::Tcp(hp) => hp.fmt(f),
        }
    }
}

macro_rules! serde_via_str {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_str!(Backend);
serde_via_str!(HostPort);

/// Whether a client certificate is demanded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// No certificate, no connection.
    #[default]
    Required,
    /// A certificate is verified if sent, but not demanded.
    Optional,
}

/// `[listener.client_auth]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// PEM bundle of the CAs that issue client certificates.
    pub ca: PathBuf,
    /// `required` (default) or `optional`.
    #[serde(default)]
    pub mode: ClientAuthMode,
}

/// Per-listener or per-connector limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections open at once; further ones are closed at accept.
    pub max_connections: u32,
    /// A TLS handshake must complete within this.
    pub handshake_timeout_secs: u64,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout_secs: u64,
    /// Connecting to the backend or remote must complete within this.
    pub connect_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 300,
            connect_timeout_secs: 5,
        }
    }
}

/// `[[listener.route]]`: a server name with its own backend and/or certificate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The server name (SNI) this route serves; `*.example.com` matches one label.
    pub sni: String,
    /// Backend for this name; the listener's when absent.
    pub backend: Option<Backend>,
    /// Certificate chain (PEM) for this name; the listener's when absent.
    pub cert: Option<PathBuf>,
    /// Private key (PEM) for `cert`.
    pub key: Option<PathBuf>,
}

/// `[[listener]]`: TLS in, plaintext to a backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name, used in logs and metric labels.
    pub name: String,
    /// Address to accept TLS on.
    pub listen: SocketAddr,
    /// Default backend.
    pub backend: Backend,
    /// Key-exchange policy.
    #[serde(default)]
    pub policy: KxPolicy,
    /// Algorithm profile: `pq-hybrid` (default), `cnsa2`, `classical-compat` or a `[[profile]]`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Also accept TLS 1.2 (never with `hybrid-required`).
    #[serde(default)]
    pub tls12: bool,
    /// Certificate chain (PEM), end-entity first.
    pub cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key: Option<PathBuf>,
    /// Generate (once) and use a self-signed ECDSA P-256 certificate in the state directory.
    #[serde(default)]
    pub self_signed: bool,
    /// ALPN protocols offered, most preferred first.
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Send a PROXY protocol v2 header to the backend.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Client certificate authentication.
    pub client_auth: Option<ClientAuthConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// SNI routes.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// `tls` (default): TLS over TCP; `quic`: a pqgate connector's QUIC streams on UDP `listen`.
    #[serde(default)]
    pub transport: Transport,
}

/// `[[connector]]`: plaintext in, TLS out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Unique name, used in logs and metric labels.
    pub name: String,
    /// Local plaintext address to accept on.
    pub listen: SocketAddr,
    /// The TLS server, `host:port`.
    pub remote: HostPort,
    /// Name to send as SNI and verify in the certificate; the remote's host when absent.
    pub server_name: Option<String>,
    /// Key-exchange policy.
    #[serde(default)]
    pub policy: KxPolicy,
    /// Algorithm profile: `pq-hybrid` (default), `cnsa2`, `classical-compat` or a `[[profile]]`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Also allow TLS 1.2 (never with `hybrid-required`).
    #[serde(default)]
    pub tls12: bool,
    /// CA bundle (PEM) that must have issued the remote's certificate.
    pub ca: Option<PathBuf>,
    /// SHA-256 of the remote's SubjectPublicKeyInfo, hex; any one matching is enough.
    #[serde(default)]
    pub pin_sha256: Vec<String>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Private key for `client_cert`.
    pub client_key: Option<PathBuf>,
    /// ALPN protocols to offer.
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// `tls` (default): a TLS connection per TCP connection; `quic`: one QUIC connection to a
    /// pqgate listener with `transport = "quic"`, a stream per TCP connection.
    #[serde(default)]
    pub transport: Transport,
}

impl Config {
    /// Makes every relative file path relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let fix_opt = |p: &mut Option<PathBuf>| p.iter_mut().for_each(fix);
        fix_opt(&mut self.service.state_dir);
        self.plugins.trusted_keys.iter_mut().for_each(fix);
        for p in &mut self.plugin_files {
            fix(&mut p.path);
            fix_opt(&mut p.signature);
        }
        for l in &mut self.listeners {
            fix_opt(&mut l.cert);
            fix_opt(&mut l.key);
            if let Some(auth) = &mut l.client_auth {
                fix(&mut auth.ca);
            }
            for r in &mut l.routes {
                fix_opt(&mut r.cert);
                fix_opt(&mut r.key);
            }
        }
        for c in &mut self.connectors {
            fix_opt(&mut c.ca);
            fix_opt(&mut c.client_cert);
            fix_opt(&mut c.client_key);
        }
        for w in &mut self.wireguard {
            w.resolve_paths(base);
        }
    }
}

#[cfg(test)]
impl ListenerConfig {
    /// A test listener: `name` on `listen`, the built-in page, defaults for everything else
    /// (hybrid-required, the default profile, a self-signed certificate, TLS over TCP).
    pub(crate) fn for_test(name: &str, listen: SocketAddr) -> Self {
        Self {
            name: name.into(),
            listen,
            backend: Backend::BuiltinInfo,
            policy: KxPolicy::HybridRequired,
            profile: default_profile(),
            tls12: false,
            cert: None,
            key: None,
            self_signed: true,
            alpn: vec![],
            proxy_protocol: false,
            client_auth: None,
            limits: Limits::default(),
            routes: vec![],
            transport: Transport::Tls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_names_and_literals() {
        let hp: HostPort = "backend.local:8080".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("backend.local", 8080));
        let v6: HostPort = "[::1]:443".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:443");
        for bad in [
            "nohost", ":80", "a:0", "a:65536", "::1:80", "[::1:80", "a b:1",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn backend_builtin() {
        assert_eq!(
            "builtin:info".parse::<Backend>().unwrap(),
            Backend::BuiltinInfo
        );
        assert!("builtin:nope".parse::<Backend>().is_err());
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut cfg = Config::default();
        cfg.connectors.push(ConnectorConfig {
            name: "c".into(),
            listen: "127.0.0.1:1".parse().unwrap(),
            remote: "x:1".parse().unwrap(),
            server_name: None,
            policy: KxPolicy::default(),
            profile: default_profile(),
            tls12: false,
            ca: Some("ca.pem".into()),
            pin_sha256: vec![],
            client_cert: Some("/abs/cert.pem".into()),
            client_key: None,
            alpn: vec![],
            limits: Limits::default(),
            transport: Transport::Tls,
        });
        cfg.resolve_paths(Path::new("/etc/pqgate"));
        let c = &cfg.connectors[0];
        assert_eq!(c.ca.as_deref(), Some(Path::new("/etc/pqgate/ca.pem")));
        assert_eq!(c.client_cert.as_deref(), Some(Path::new("/abs/cert.pem")));
    }
}
