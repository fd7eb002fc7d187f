//! The agile tunnel's data plane, sans IO (docs/design/agile-tunnel.md is the wire spec): packets
//! between two pqgate peers sealed with any registry AEAD, keyed per direction and per epoch from
//! the QUIC channel's TLS exporter. [`Sealer`] and [`Opener`] take keys, caller buffers and the
//! time (unix milliseconds) as inputs; nothing here reads a clock, a socket or an RNG, and no
//! input a peer controls can panic.

mod epoch_key;
mod epoch_recv;
pub mod keys;
pub mod limits;
pub mod open;
pub mod replay;
pub mod seal;
pub mod wire;

pub use epoch_recv::{MAX_SKIP, SKIP_INTERVAL_MS};
pub use keys::{
    DirectionKeys, EXPORTER_LABEL, KEY_UPDATE_LABEL, KeyError, SessionKeys, derive_direction_keys,
    exporter_context, exporter_len, generation_keys,
};
pub use limits::{Limits, LimitsError, MAX_GENERATION};
pub use open::{OpenError, Opened, Opener};
pub use replay::WINDOW;
pub use seal::{InstallError, MAX_MTU, SealError, Sealed, Sealer};
pub use wire::{HEADER_LEN, Header, HeaderError, MSG_TYPE, is_agile};

#[cfg(test)]
mod key_update_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod vector_tests;
