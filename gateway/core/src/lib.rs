//! pqgate's sans-IO core: the config model and its validation, SNI routing, the WireGuard
//! config, keys and allowed-IPs trie, IP header fields, the TUN offload codec, the PQ PSK and
//! agile-tunnel state machines and wire formats, the nftables ruleset model, PROXY v2 and the
//! metric vocabulary. No sockets, no clock, no randomness: callers pass them in.
#![forbid(unsafe_code)]

pub mod agile;
pub mod config;
pub mod firewall;
pub mod hex;
pub mod ip;
pub mod log_filter;
pub mod metrics;
pub mod offload;
pub mod pqpsk;
pub mod proxy_v2;
pub mod route;
pub mod validate;
pub mod wg;
