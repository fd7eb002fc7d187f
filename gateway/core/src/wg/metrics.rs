//! WireGuard metric names and the bounded `reason` label of dropped packets. Label values come
//! from the config only: `interface` (a `[[wireguard]]` name) and `peer` (a configured public
//! key in base64), or from [`DropReason`].

/// Data bytes received from a peer, by `interface`, `peer`.
pub const PEER_RX_BYTES: &str = "pqgate_wg_peer_rx_bytes_total";
/// Data bytes sent to a peer, by `interface`, `peer`.
pub const PEER_TX_BYTES: &str = "pqgate_wg_peer_tx_bytes_total";
/// Data packets received from a peer (delivered to the TUN), by `interface`, `peer`.
pub const PEER_RX_PACKETS: &str = "pqgate_wg_peer_rx_packets_total";
/// Data packets sent to a peer, by `interface`, `peer`.
pub const PEER_TX_PACKETS: &str = "pqgate_wg_peer_tx_packets_total";
/// Completed handshakes with a peer, by `interface`, `peer`.
pub const PEER_HANDSHAKES: &str = "pqgate_wg_peer_handshakes_total";
/// Seconds since the last completed handshake with a peer (-1: none yet), by `interface`, `peer`.
pub const PEER_LAST_HANDSHAKE_SECONDS: &str = "pqgate_wg_peer_last_handshake_age_seconds";
/// Of the data packets sent to a peer, those sealed by the agile tunnel, by `interface`, `peer`
/// (registered once the peer has agile keys).
pub const PEER_AGILE_TX_PACKETS: &str = "pqgate_wg_peer_agile_tx_packets_total";
/// Of the data packets received from a peer, those opened by the agile tunnel.
pub const PEER_AGILE_RX_PACKETS: &str = "pqgate_wg_peer_agile_rx_packets_total";
/// Agile key updates inside an epoch with a peer, both directions.
pub const PEER_AGILE_KEY_UPDATES: &str = "pqgate_wg_peer_agile_key_updates_total";
/// The epoch a peer's agile data is sent under (-1: none confirmed yet).
pub const PEER_AGILE_EPOCH: &str = "pqgate_wg_peer_agile_epoch";
/// The key generation within that epoch.
pub const PEER_AGILE_GENERATION: &str = "pqgate_wg_peer_agile_generation";
/// Configured peers, by `interface`.
pub const PEERS: &str = "pqgate_wg_peers";
/// Dropped packets and datagrams, by `interface`, `reason` (see [`DropReason`]).
pub const DROPS: &str = "pqgate_wg_drops_total";
/// Handshake messages answered with a cookie reply, by `interface`.
pub const COOKIES_SENT: &str = "pqgate_wg_cookies_sent_total";

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// A TUN packet for no peer's allowed IPs (or not IP).
    NoRoute,
    /// A decrypted packet whose source is outside the peer's allowed IPs.
    BadSource,
    /// Replayed or too old data.
    Replay,
    /// Failed decryption or handshake authentication.
    Decrypt,
    /// A bounded queue was full.
    QueueFull,
    /// Not a WireGuard message, or a bad mac1.
    Garbage,
    /// For no known peer or receiver index.
    UnknownPeer,
    /// For a peer with no endpoint yet.
    NoEndpoint,
    /// Another protocol error from the core.
    Protocol,
    /// A send or TUN write failed.
    IoError,
}

impl DropReason {
    /// Every reason, in the order they are exported.
    pub const ALL: [Self; 10] = [
        Self::NoRoute,
        Self::BadSource,
        Self::Replay,
        Self::Decrypt,
        Self::QueueFull,
        Self::Garbage,
        Self::UnknownPeer,
        Self::NoEndpoint,
        Self::Protocol,
        Self::IoError,
    ];

    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::BadSource => "bad_source",
            Self::Replay => "replay",
            Self::Decrypt => "decrypt",
            Self::QueueFull => "queue_full",
            Self::Garbage => "garbage",
            Self::UnknownPeer => "unknown_peer",
            Self::NoEndpoint => "no_endpoint",
            Self::Protocol => "protocol",
            Self::IoError => "io_error",
        }
    }
}
