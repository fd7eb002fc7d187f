//! Algorithm registry: which key-exchange groups and cipher suites exist, which policy admits
//! which, and the explicit rustls `CryptoProvider`s assembled from them (never a process default).
#![forbid(unsafe_code)]

mod groups;
mod policy;
mod provider;

pub use groups::{GroupInfo, KNOWN_GROUPS, group_info, group_label, suite_label};
pub use policy::{KxPolicy, PolicyParseError};
pub use provider::{AgilityError, ProviderSpec, build_provider, warm_up_rng};
