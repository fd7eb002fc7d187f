//! The daemon's only `unsafe` code: the Linux calls std does not wrap. TUN devices and their
//! offloads (`tun`), batched UDP with GSO/GRO (`batch`, `udp`), socket options std lacks
//! (`sockopt`), capabilities (`caps`), network namespaces (`netns`), bounded waits (`poll`),
//! SIGINT/SIGTERM (`signal`), the clocks (`clock`) and the effective user (`process`). The crate
//! root denies `unsafe_code` everywhere else (checked again by tests/fences.rs); every block
//! here states why it is sound.

pub(crate) mod batch;
pub mod caps;
pub(crate) mod clock;
pub mod netns;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod signal;
pub(crate) mod sockopt;
pub(crate) mod tun;
pub(crate) mod udp;
