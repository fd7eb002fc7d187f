//! One internal description of a WireGuard interface, built from a wg-quick file or from a
//! `[[wireguard]]` section (with its key files already read by the caller), so `wg up`, `run`
//! and reload share everything after parsing. Also the difference between two descriptions of
//! the same interface, for a live reload.

use super::cidr::IpCidr;
use super::config::{DEFAULT_MTU, WireguardConfig};
use super::key::{Key32, PresharedKey, PrivateKey};
use super::quick::QuickConfig;

/// Most queues (TUN queues and UDP sockets, a thread each per direction) an interface uses;
/// the bound of `queues` in the config and of `wg up --queues`.
pub const MAX_QUEUES: u16 = 4;

/// A WireGuard interface to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// Interface name.
    pub name: String,
    /// Private key.
    pub private_key: PrivateKey,
    /// UDP port, 0 for an ephemeral one.
    pub listen_port: u16,
    /// Interface addresses, host bits as written.
    pub addresses: Vec<IpCidr>,
    /// MTU.
    pub mtu: u16,
    /// Firewall mark on the UDP socket, `None` for none.
    pub fwmark: Option<u32>,
    /// Kernel offloads (TUN TSO/USO, UDP GSO/GRO) where the kernel has them.
    pub offload: bool,
    /// TUN queues and UDP sockets; `None`: one per CPU, at most [`MAX_QUEUES`].
    pub queues: Option<u16>,
    /// Peers in order.
    pub peers: Vec<PeerSpec>,
}

/// One peer of an [`InterfaceSpec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// Where it was written, for messages: `peer at line 7` or `wireguard[0].peer[1]`.
    pub origin: String,
    /// Public key.
    pub public_key: Key32,
    /// Pre-shared key; the all-zero key is `None`.
    pub preshared_key: Option<PresharedKey>,
    /// Allowed IPs as written.
    pub allowed_ips: Vec<IpCidr>,
    /// `host:port` to resolve, IPv6 in brackets.
    pub endpoint: Option<String>,
    /// Keepalive seconds; 0 is `None`.
    pub persistent_keepalive: Option<u16>,
}

fn psk(k: Option<PresharedKey>) -> Option<PresharedKey> {
    k.filter(|k| !k.is_zero())
}

impl InterfaceSpec {
    /// From a parsed wg-quick file and the interface name (from its file name).
    pub fn from_quick(name: &str, q: &QuickConfig) -> Self {
        let peers = q.peers.iter().map(|p| PeerSpec {
            origin: format!("peer at line {}", p.line),
            public_key: p.public_key,
            preshared_key: psk(p.preshared_key.clone()),
            allowed_ips: p.allowed_ips.clone(),
            endpoint: p.endpoint.clone(),
            persistent_keepalive: p.persistent_keepalive,
        });
        Self {
            name: name.to_owned(),
            private_key: q.interface.private_key.clone(),
            listen_port: q.interface.listen_port.unwrap_or(0),
            addresses: q.interface.addresses.clone(),
            mtu: q.interface.mtu.unwrap_or(DEFAULT_MTU),
            fwmark: q.interface.fwmark.filter(|&m| m != 0),
            offload: true,
            queues: None,
            peers: peers.collect(),
        }
    }

    /// From `[[wireguard]]` number `index`, its private key and each peer's pre-shared key (in
    /// peer order), read from inline values or files by the caller.
    pub fn from_config(
        index: usize,
        c: &WireguardConfig,
        private_key: PrivateKey,
        mut psks: Vec<Option<PresharedKey>>,
    ) -> Self {
        psks.resize(c.peers.len(), None);
        let peers = c
            .peers
            .iter()
            .zip(psks)
            .enumerate()
            .map(|(i, (p, k))| PeerSpec {
                origin: format!("wireguard[{index}].peer[{i}]"),
                public_key: p.public_key,
                preshared_key: psk(k),
                allowed_ips: p.allowed_ips.clone(),
                endpoint: p.endpoint.as_ref().map(ToString::to_string),
                persistent_keepalive: p.persistent_keepalive.filter(|&s| s != 0),
            });
        Self {
            name: c.name.clone(),
            private_key,
            listen_port: c.listen_port,
            addresses: c.address.clone(),
            mtu: c.mtu,
            fwmark: c.fwmark.filter(|&m| m != 0),
            offload: c.offload,
            queues: c.queues,
            peers: peers.collect(),
        }
    }

    /// Every allowed IP of every peer, for the host routes.
    pub fn routes(&self) -> Vec<IpCidr> {
        let mut out: Vec<IpCidr> = Vec::new();
        for net in self.peers.iter().flat_map(|p| p.allowed_ips.iter()) {
            if !out.contains(&net.network()) {
                out.push(net.network());
            }
        }
        out
    }

    /// What changed from `self` (running) to `next` (same interface name).
    pub fn diff(&self, next: &Self) -> InterfaceDiff {
        let mut d = InterfaceDiff {
            private_key: (self.private_key != next.private_key).then(|| next.private_key.clone()),
            fwmark: (self.fwmark != next.fwmark).then(|| next.fwmark.unwrap_or(0)),
            restart_only: Vec::new(),
            addresses_removed: minus(&self.addresses, &next.addresses),
            addresses_added: minus(&next.addresses, &self.addresses),
            peers: Vec::new(),
        };
        if self.listen_port != next.listen_port {
            d.restart_only.push("listen_port");
        }
        if self.mtu != next.mtu {
            d.restart_only.push("mtu");
        }
        // The TUN queues and sockets are opened with them: a new data path means a new TUN.
        if self.offload != next.offload {
            d.restart_only.push("offload");
        }
        if self.queues != next.queues {
            d.restart_only.push("queues");
        }
        for old in &self.peers {
            if !next.peers.iter().any(|p| p.public_key == old.public_key) {
                d.peers.push(PeerDiff::Removed(old.public_key));
            }
        }
        for new in &next.peers {
            match self.peers.iter().find(|p| p.public_key == new.public_key) {
                None => d.peers.push(PeerDiff::Added(new.clone())),
                Some(old) if old != new && !old.same_settings(new) => {
                    d.peers.push(PeerDiff::Changed {
                        old: old.clone(),
                        new: new.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        d
    }
}

impl PeerSpec {
    /// Equal in everything but where it was written.
    fn same_settings(&self, o: &Self) -> bool {
        self.public_key == o.public_key
            && self.preshared_key == o.preshared_key
            && self.allowed_ips == o.allowed_ips
            && self.endpoint == o.endpoint
            && self.persistent_keepalive == o.persistent_keepalive
    }
}

fn minus(a: &[IpCidr], b: &[IpCidr]) -> Vec<IpCidr> {
    a.iter().filter(|x| !b.contains(x)).copied().collect()
}

/// The difference between a running interface's description and a reloaded one.
#[derive(Debug, PartialEq, Eq)]
pub struct InterfaceDiff {
    /// The new private key, when it changed.
    pub private_key: Option<PrivateKey>,
    /// The new socket mark (0: none), when it changed: applied live to the tunnel sockets.
    pub fwmark: Option<u32>,
    /// Keys that changed but apply only when the interface is re-created (next restart).
    pub restart_only: Vec<&'static str>,
    /// Interface addresses to delete.
    pub addresses_removed: Vec<IpCidr>,
    /// Interface addresses to add.
    pub addresses_added: Vec<IpCidr>,
    /// Peer changes; peers not listed are untouched.
    pub peers: Vec<PeerDiff>,
}

impl InterfaceDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.private_key.is_none()
            && self.fwmark.is_none()
            && self.restart_only.is_empty()
            && self.addresses_removed.is_empty()
            && self.addresses_added.is_empty()
            && self.peers.is_empty()
    }
}

/// One peer's change.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerDiff {
    /// A new peer.
    Added(PeerSpec),
    /// A peer gone from the config.
    Removed(Key32),
    /// A peer whose settings changed (its session is kept).
    Changed {
        /// As running.
        old: PeerSpec,
        /// As reloaded.
        new: PeerSpec,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(k: u8, allowed: &str) -> PeerSpec {
        PeerSpec {
            origin: format!("p{k}"),
            public_key: Key32::from_bytes([k; 32]),
            preshared_key: None,
            allowed_ips: vec![allowed.parse().unwrap()],
            endpoint: None,
            persistent_keepalive: None,
        }
    }

    fn spec(peers: Vec<PeerSpec>) -> InterfaceSpec {
        InterfaceSpec {
            name: "wg0".into(),
            private_key: PrivateKey::from_bytes([1; 32]),
            listen_port: 51820,
            addresses: vec!["10.0.0.1/24".parse().unwrap()],
            mtu: DEFAULT_MTU,
            fwmark: None,
            offload: true,
            queues: None,
            peers,
        }
    }

    #[test]
    fn diff_lists_only_what_changed() {
        let old = spec(vec![peer(2, "10.0.0.2/32"), peer(3, "10.0.0.3/32")]);
        assert!(old.diff(&old.clone()).is_empty());
        let mut next = spec(vec![peer(3, "10.0.0.3/32"), peer(4, "10.0.0.4/32")]);
        next.peers[0].origin = "moved".into();
        next.peers[0].persistent_keepalive = Some(25);
        next.mtu = 1380;
        next.addresses.push("fd00::1/64".parse().unwrap());
        next.private_key = PrivateKey::from_bytes([9; 32]);
        next.fwmark = Some(0x20);
        let d = old.diff(&next);
        assert_eq!(d.restart_only, ["mtu"]);
        assert_eq!(d.fwmark, Some(0x20), "applied live, not at restart");
        assert_eq!(
            next.diff(&old).fwmark,
            Some(0),
            "removing the mark clears it"
        );
        assert_eq!(d.private_key, Some(PrivateKey::from_bytes([9; 32])));
        assert_eq!(d.addresses_added, ["fd00::1/64".parse().unwrap()]);
        assert!(d.addresses_removed.is_empty());
        assert_eq!(d.peers.len(), 3);
        assert_eq!(d.peers[0], PeerDiff::Removed(Key32::from_bytes([2; 32])));
        assert!(
            matches!(&d.peers[1], PeerDiff::Changed { new, .. } if new.persistent_keepalive == Some(25))
        );
        assert!(
            matches!(&d.peers[2], PeerDiff::Added(p) if p.public_key == Key32::from_bytes([4; 32]))
        );
        // The data path is built at start: a change waits for the next restart.
        let mut plain = old.clone();
        (plain.offload, plain.queues) = (false, Some(1));
        assert_eq!(old.diff(&plain).restart_only, ["offload", "queues"]);
        plain.offload = true;
        assert_eq!(old.diff(&plain).restart_only, ["queues"]);
        // Moving a peer in the file alone is no change.
        let mut moved = old.clone();
        moved.peers.reverse();
        moved.peers[0].origin = "elsewhere".into();
        assert!(old.diff(&moved).is_empty());
    }

    #[test]
    fn quick_and_config_build_the_same_spec() {
        let text = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
                    ListenPort = 51820\nAddress = 10.0.0.1/24\n[Peer]\n\
                    PublicKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
                    PresharedKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
                    AllowedIPs = 10.0.0.2/32\nEndpoint = [::1]:9\nPersistentKeepalive = 0\n";
        let q = QuickConfig::parse(text).unwrap();
        let a = InterfaceSpec::from_quick("wg0", &q);
        let c = WireguardConfig {
            name: "wg0".into(),
            private_key: None,
            private_key_file: None,
            listen_port: 51820,
            address: vec!["10.0.0.1/24".parse().unwrap()],
            mtu: DEFAULT_MTU,
            fwmark: Some(0),
            offload: true,
            queues: None,
            pq: None,
            peers: vec![super::super::config::WireguardPeerConfig {
                public_key: q.peers[0].public_key,
                preshared_key: None,
                preshared_key_file: None,
                allowed_ips: vec!["10.0.0.2/32".parse().unwrap()],
                endpoint: Some("[::1]:9".parse().unwrap()),
                persistent_keepalive: Some(0),
                pq: None,
            }],
        };
        let zero = Some(PresharedKey::from_bytes([0; 32]));
        let b = InterfaceSpec::from_config(0, &c, q.interface.private_key.clone(), vec![zero]);
        assert!(a.diff(&b).is_empty(), "{:?}", a.diff(&b));
        assert_eq!(b.peers[0].preshared_key, None);
        assert_eq!(a.routes(), ["10.0.0.2/32".parse().unwrap()]);
        assert!(
            b.offload && b.queues.is_none(),
            "the defaults: offload, one queue per CPU"
        );
        let plain = WireguardConfig {
            offload: false,
            queues: Some(2),
            ..c
        };
        let b = InterfaceSpec::from_config(0, &plain, q.interface.private_key.clone(), vec![]);
        assert_eq!((b.offload, b.queues), (false, Some(2)));
        assert_eq!(a.diff(&b).restart_only, ["offload", "queues"]);
    }
}
