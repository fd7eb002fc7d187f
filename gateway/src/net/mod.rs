//! Linux-only syscalls for the WireGuard engine: a TUN device, a UDP socket with forced buffer
//! sizes, bounded waits for a readable descriptor, and waiting for SIGINT/SIGTERM. Most of the
//! daemon's `unsafe` is here; every block states why it is sound.

pub mod batch;
pub mod caps;
pub mod netns;
pub mod poll;
pub mod process;
pub mod signal;
pub mod sockopt;
pub mod tun;
pub mod udp;
