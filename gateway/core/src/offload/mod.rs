//! TUN offload codec, sans IO: splits the GSO super-packets a TUN with `IFF_VNET_HDR` hands out
//! into MTU-size IP packets with complete checksums ([`segment`]), and coalesces decrypted TCP
//! (and optionally UDP) packets into super-packets for one TUN write each ([`Coalescer`]).
//!
//! No syscalls, no clock, no allocation per packet in steady state. The kernel facts behind it
//! (virtio_net_hdr layout, what each segment needs) are in docs/design/offload.md.

pub mod coalesce;
pub mod csum;
mod error;
mod ip;
pub mod segment;
pub mod vnet;

pub use coalesce::Coalescer;
pub use error::OffloadError;
pub use segment::{Plan, segment};
pub use vnet::{VNET_HDR_LEN, VnetHdr};

/// Largest packet either side handles, in bytes: the IPv4 total-length field's maximum, and the
/// most a TUN hands out without BIG TCP (`GSO_LEGACY_MAX_SIZE` is 65,536 including headers).
pub const MAX_PACKET_LEN: usize = 65_535;
