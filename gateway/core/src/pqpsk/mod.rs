//! Post-quantum WireGuard PSKs over an authenticated channel, sans IO: the epoch schedule, the
//! PSK derivation (TLS exporter, optionally combined with a second KEM), the control protocol's
//! wire messages and the per-peer state machine. Time comes in as unix milliseconds, the TLS
//! exporter and the KEM operations through the [`ChannelCrypto`] trait: nothing here reads a
//! clock, a socket or a random number generator.

pub mod config;
pub mod derive;
pub mod epoch;
pub mod machine;
pub mod status;
pub mod wire;

pub use config::{PqMode, PqPskConfig, PqPskPeer, SecondKem};
pub use derive::{EXPORTER_LABEL, EXPORTER_LEN, KdfHash, derive_psk, exporter_context};
pub use epoch::{Schedule, ScheduleError};
pub use machine::{Action, ChannelCrypto, CryptoError, Event, PeerMachine, PeerParams, Role};
pub use status::{Failure, PeerStatus};
pub use wire::{KemId, Message, RefuseReason, WireError};

/// A derived pre-shared key: 32 bytes, redacted in `Debug`, wiped on drop.
pub type Psk = crate::wg::PresharedKey;

/// A WireGuard public key, the peer's identity in this protocol: the raw bytes of a
/// [`crate::wg::Key32`] (`Key32::from_bytes` / `as_bytes` convert), kept as bytes because they
/// are map keys and HKDF input here.
pub type WgKey = [u8; crate::wg::key::KEY_LEN];
