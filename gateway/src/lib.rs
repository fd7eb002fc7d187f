//! pqgate, the daemon: drivers (TLS termination and origination, WireGuard, the PQ PSK channel,
//! admin endpoint, signals) around the sans-IO core and the agility registry. The `pqgate` binary
//! is a thin shell over [`cli`].
//!
//! One module per capability; `unsafe` is denied everywhere but in [`net`], the only module that
//! makes syscalls libc does not wrap safely.

#![deny(unsafe_code)]
#![warn(unreachable_pub)]

mod admin;
pub mod cli;
pub mod config;
mod crypto;
mod daemon;
mod firewall;
mod keys;
#[allow(unsafe_code)]
pub mod net;
pub mod pqpsk;
mod proxy;
mod quic;
pub mod tls;
pub mod wg;
