//! WireGuard's configuration vocabulary, sans IO: keys, address prefixes, the wg-quick(8) file
//! format, the `[[wireguard]]` config model and its checks, and the interface description both
//! turn into. Text in, typed values out; reading files, resolving names and touching interfaces
//! is the daemon's job.

pub mod allowed_ips;
pub mod cidr;
pub mod config;
pub mod iface;
pub mod import;
pub mod key;
pub mod metrics;
pub mod quick;
pub mod validate;

pub use cidr::{CidrError, IpCidr};
pub use config::{WireguardConfig, WireguardPeerConfig};
pub use iface::{InterfaceDiff, InterfaceSpec, PeerDiff, PeerSpec};
pub use key::{Key32, KeyError, KeyRole, PresharedKey, PrivateKey};
pub use quick::{QuickConfig, QuickError, QuickErrors, QuickInterface, QuickPeer, QuickWarning};
