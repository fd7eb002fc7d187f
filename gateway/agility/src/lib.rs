//! Algorithm registry: which key-exchange groups, cipher suites and primitives exist, whether
//! each passed its power-on self-tests, which policy admits which, and the explicit rustls
//! `CryptoProvider`s assembled from the enabled ones (never a process default).
#![deny(unsafe_code)]

pub mod builtin;
mod groups;
pub mod plugin;
mod policy;
mod provider;
mod registry;
pub mod selftest;
mod suites;

pub use groups::{GroupInfo, KNOWN_GROUPS, group_info, group_label, suite_label};
pub use policy::{KxPolicy, PolicyParseError};
pub use provider::{AgilityError, ProviderSpec, build_provider, warm_up_rng};
pub use registry::{InventoryEntry, Registry, Status};
pub use suites::{SUITES, SuiteInfo};
