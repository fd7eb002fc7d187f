//! Deterministic filler bytes and the PQ PSK peer entries the tests and benchmarks configure.

use std::net::SocketAddr;

use pqgate::pqpsk::WgKey;
use pqgate_core::pqpsk::config::PqPskPeer;
use pqgate_core::wg::Key32;

/// An endless xorshift64 (13, 7, 17) byte stream from `seed` (non-zero): the low byte of each
/// state. Deterministic filler for messages and garbage datagrams.
pub struct Xorshift64(pub u64);

impl Iterator for Xorshift64 {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        Some(*x as u8)
    }
}

/// A `[[wireguard.pq.peer]]` entry for WireGuard key `key`, named `name`, dialled at `address`
/// (None: it dials us); mode and second KEM inherited.
pub fn pqpsk_peer(key: WgKey, address: Option<SocketAddr>, name: &str) -> PqPskPeer {
    PqPskPeer {
        public_key: Key32::from_bytes(key).to_base64(),
        address,
        name: name.into(),
        mode: None,
        second_kem: None,
    }
}
