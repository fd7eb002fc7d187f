//! The `[[wireguard]]` config model: one WireGuard interface and its `[[wireguard.peer]]`s, as
//! serde fills them from TOML and environment. Secrets are zeroizing key types that serialize as
//! `(redacted)`; semantic checks are in [`super::validate`], key files are read by the daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cidr::IpCidr;
use super::key::{Key32, PresharedKey, PrivateKey};
use crate::config::HostPort;
use crate::pqpsk::{PqMode, PqPskConfig, PqPskPeer, SecondKem};

/// MTU when the config sets none (wg-quick's value for an IPv6 underlay; never too large).
pub const DEFAULT_MTU: u16 = 1420;

fn default_mtu() -> u16 {
    DEFAULT_MTU
}

fn default_offload() -> bool {
    true
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
    /// Kernel offloads on the data path (TUN virtio-net header with TSO/USO, UDP GSO/GRO, each
    /// where the kernel has it); `false`: plain one-packet IO, to rule them out on a NIC or
    /// kernel that mishandles them.
    #[serde(default = "default_offload")]
    pub offload: bool,
    /// TUN queues and UDP sockets (a thread each per direction), 1 to
    /// [`MAX_QUEUES`](super::iface::MAX_QUEUES); absent: one per CPU, at most that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u16>,
    /// `[wireguard.pq]`: post-quantum PSKs over QUIC for the peers that have a `pq` table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq: Option<WgPqConfig>,
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
    /// `[wireguard.peer.pq]`: this peer is a pqgate peer keyed over the interface's PQ channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq: Option<WgPeerPq>,
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
        if let Some(pq) = self.pq.as_mut() {
            for p in [&mut pq.ca, &mut pq.cert, &mut pq.key]
                .into_iter()
                .chain(pq.crl.iter_mut())
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
    }
}

/// `[wireguard.pq]`: the interface's PQ PSK channel (QUIC, mutual certificates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WgPqConfig {
    /// CA bundle (PEM) that peer certificates must chain to.
    pub ca: PathBuf,
    /// Certificate revocation lists (PEM or DER).
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// A separate UDP address for QUIC; absent (the default): share the tunnel's UDP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Seconds per epoch (PSK lifetime).
    #[serde(default = "default_interval")]
    pub rotation_interval_secs: u64,
    /// Default mode of the pq peers.
    #[serde(default)]
    pub mode: PqMode,
    /// Default second KEM of the pq peers.
    #[serde(default)]
    pub second_kem: SecondKem,
    /// Channel profile: `pq-hybrid` or `cnsa2`.
    #[serde(default = "default_profile")]
    pub profile: String,
}

/// `[wireguard.peer.pq]`: how to reach and authenticate a pqgate peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WgPeerPq {
    /// The DNS name the peer's certificate must carry.
    pub name: String,
    /// The peer's QUIC address; default: its `endpoint` (its tunnel port, when it shares it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    /// Overrides the interface's `mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PqMode>,
    /// Overrides the interface's `second_kem` (both ends must agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_kem: Option<SecondKem>,
    /// Agile tunnel: the registry AEAD (e.g. `AES-256-GCM`, `SM4-GCM` from a plugin) that
    /// protects this peer's data packets, keyed per epoch from the channel (both ends must agree:
    /// the name is bound into the keys, so a mismatch fails authentication, never weakens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agile: Option<String>,
    /// At most this many packets per agile key before the sender updates it (an operator's
    /// policy: only ever lower than the AEAD's own limit, at least [`MIN_AGILE_KEY_PACKETS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agile_key_packets: Option<u64>,
}

/// The smallest `agile_key_packets`: below it key updates (an HKDF and a key schedule each)
/// would cost more than the packets they protect.
pub const MIN_AGILE_KEY_PACKETS: u64 = 64;

fn default_interval() -> u64 {
    crate::pqpsk::config::DEFAULT_INTERVAL_SECS
}

fn default_profile() -> String {
    "pq-hybrid".into()
}

/// Address standing in for `listen` when the channel shares the tunnel's port (never bound).
pub const SHARED_PORT: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

impl WgPqConfig {
    /// The channel's config for the peers of `peers` that have a `pq` table (others are plain
    /// WireGuard peers). A peer's address is its `pq.address`, else `endpoint(peer)`.
    pub fn channel(
        &self,
        peers: &[WireguardPeerConfig],
        endpoint: impl Fn(&WireguardPeerConfig) -> Option<SocketAddr>,
    ) -> PqPskConfig {
        let peer = peers
            .iter()
            .filter_map(|p| p.pq.as_ref().map(|q| (p, q)))
            .map(|(p, q)| PqPskPeer {
                public_key: p.public_key.to_string(),
                address: q.address.or_else(|| endpoint(p)),
                name: q.name.clone(),
                mode: q.mode,
                second_kem: q.second_kem,
            })
            .collect();
        PqPskConfig {
            ca: self.ca.clone(),
            crl: self.crl.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            listen: self.listen.unwrap_or(SHARED_PORT),
            rotation_interval_secs: self.rotation_interval_secs,
            mode: self.mode,
            second_kem: self.second_kem,
            profile: self.profile.clone(),
            peer,
        }
    }
}

#[cfg(test)]
impl WireguardPeerConfig {
    /// A test peer: public key `[k; 32]`, nothing else set but `pq`.
    pub(crate) fn for_test(k: u8, pq: Option<WgPeerPq>) -> Self {
        Self {
            public_key: Key32::from_bytes([k; 32]),
            preshared_key: None,
            preshared_key_file: None,
            allowed_ips: vec![],
            endpoint: None,
            persistent_keepalive: None,
            pq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_takes_only_pq_peers_and_defaults_their_address() {
        let pq: WgPqConfig = WgPqConfig {
            ca: "ca.pem".into(),
            crl: vec![],
            cert: "c.pem".into(),
            key: "k.pem".into(),
            listen: None,
            rotation_interval_secs: 3,
            mode: PqMode::Preferred,
            second_kem: SecondKem::None,
            profile: "cnsa2".into(),
        };
        let peer = WireguardPeerConfig::for_test;
        let named = |address: Option<SocketAddr>| WgPeerPq {
            agile: None,
            agile_key_packets: None,
            name: "b.example".into(),
            address,
            mode: Some(PqMode::Required),
            second_kem: None,
        };
        let own: SocketAddr = "192.0.2.9:4433".parse().expect("addr");
        let peers = [
            peer(1, None),
            peer(2, Some(named(None))),
            peer(3, Some(named(Some(own)))),
        ];
        let endpoint: SocketAddr = "192.0.2.2:51820".parse().expect("addr");
        let c = pq.channel(&peers, |p| {
            (p.public_key == Key32::from_bytes([2; 32])).then_some(endpoint)
        });
        assert_eq!(c.listen, SHARED_PORT);
        assert_eq!((c.rotation_interval_secs, c.mode), (3, PqMode::Preferred));
        assert_eq!(c.peer.len(), 2, "the plain peer stays out");
        assert_eq!(c.peer[0].public_key, Key32::from_bytes([2; 32]).to_string());
        assert_eq!(c.peer[0].address, Some(endpoint), "default: the endpoint");
        assert_eq!(c.peer[1].address, Some(own), "pq.address wins");
        assert_eq!(c.peer[1].mode, Some(PqMode::Required));
    }
}
