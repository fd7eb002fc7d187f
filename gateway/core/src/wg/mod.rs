//! WireGuard's configuration vocabulary, sans IO: keys, address prefixes and the wg-quick(8) file
//! format. Text in, typed values out; reading files, resolving names and touching interfaces is
//! the daemon's job.

pub mod cidr;
pub mod key;
pub mod quick;

pub use cidr::{CidrError, IpCidr};
pub use key::{Key32, KeyError, KeyRole, PresharedKey, PrivateKey};
pub use quick::{QuickConfig, QuickError, QuickErrors, QuickInterface, QuickPeer, QuickWarning};
