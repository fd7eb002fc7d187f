//! The `[[wireguard]]` config model: one WireGuard interface and its `[[wireguard.peer]]`s, as
//! serde fills them from TOML and environment. Secrets are zeroizing key types that serialize as
//! `(redacted)`; semantic checks are in [`super::validate`], key files are read by the daemon.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cidr::IpCidr;
use super::key::{Key32, PresharedKey, PrivateKey};
use crate::config::HostPort;

/// MTU when the config sets none (wg-quick's value for an IPv6 underlay; never too large).
pub const DEFAULT_MTU: u16 = 1420;

fn default_mtu() -> u16 {
    DEFAULT_MTU
}

/// `[[wireguard]]`: one interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireguardConfig {
    /// Interface name (IFNAMSIZ: 1-15 of `a-z A-Z 0-9 _ = + . -`); also the UAPI socket name.
    pub name: String,
    /// The interface's private key, base64 inline. Exactly one of this and `private_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,
    /// A file holding the base64 private key (mode must give others no access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// UDP port; 0 (the default) picks an ephemeral one.
    #[serde(default)]
    pub listen_port: u16,
    /// Addresses of the interface, with prefix (`10.0.0.1/24`), host bits as written.
    #[serde(default)]
    pub address: Vec<IpCidr>,
    /// Interface MTU.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Firewall mark on the tunnel's UDP packets; absent or 0 for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// The peers.
    #[serde(default, rename = "peer")]
    pub peers: Vec<WireguardPeerConfig>,
}

/// `[[wireguard.peer]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireguardPeerConfig {
    /// The peer's public key, base64.
    pub public_key: Key32,
    /// Pre-shared key, base64 inline. At most one of this and `preshared_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preshared_key: Option<PresharedKey>,
    /// A file holding the base64 pre-shared key (mode must give others no access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preshared_key_file: Option<PathBuf>,
    /// Prefixes routed to the peer and accepted as inner sources from it.
    #[serde(default)]
    pub allowed_ips: Vec<IpCidr>,
    /// Where to reach the peer first: `host:port`, IPv6 in brackets; names resolve at (re)load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<HostPort>,
    /// Keepalive interval in seconds; absent or 0 for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_keepalive: Option<u16>,
}

impl WireguardConfig {
    /// Makes the key file paths relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut().filter(|p| p.is_relative()) {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.private_key_file);
        for peer in &mut self.peers {
            fix(&mut peer.preshared_key_file);
        }
    }
}
