//! Algorithm registry: which key-exchange groups, cipher suites and primitives exist, whether
//! each passed its power-on self-tests, which policy admits which, and the explicit rustls
//! `CryptoProvider`s assembled from the enabled ones (never a process default).
#![deny(unsafe_code)]

pub mod builtin;
mod groups;
pub mod kem;
pub mod plugin;
mod policy;
mod profile;
mod provider;
mod registry;
pub mod selftest;
mod suites;

pub use groups::{GroupInfo, KNOWN_GROUPS, group_info, group_label, suite_label};
pub use policy::{KxPolicy, PolicyParseError};
pub use profile::{BUILTIN_PROFILES, DEFAULT_PROFILE, Profile, builtin_profile, custom_profile};
pub use provider::{AgilityError, ProviderSpec, build_provider, warm_up_rng};
pub use registry::{InventoryEntry, PluginStatus, Registry, Status};
pub use suites::{SUITES, SuiteInfo};
