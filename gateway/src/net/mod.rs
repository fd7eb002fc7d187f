//! The daemon's only `unsafe` code: the Linux calls std does not wrap. TUN devices and their
//! offloads (`tun`), batched UDP with GSO/GRO (`batch`, `udp`), socket options std lacks
//! (`sockopt`), capabilities (`caps`), network namespaces (`netns`), bounded waits (`poll`),
//! SIGINT/SIGTERM (`signal`), the clocks (`clock`) and the effective user (`process`). The crate
//! root denies `unsafe_code` everywhere else (checked again by tests/fences.rs); every block
//! here states why it is sound.

pub mod batch;
pub mod caps;
pub mod clock;
pub mod netns;
pub mod poll;
pub mod process;
pub mod signal;
pub mod sockopt;
pub mod tun;
pub mod udp;
