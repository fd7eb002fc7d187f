//! Linux-only syscalls for the WireGuard engine: a TUN device, a UDP socket with forced buffer
//! sizes, and waiting for SIGINT/SIGTERM. This is the only place in the daemon with `unsafe`;
//! every block states why it is sound.

pub mod batch;
pub mod caps;
pub mod netns;
pub mod signal;
pub mod tun;
pub mod udp;
