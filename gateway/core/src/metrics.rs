//! Metric names and their bounded label values. Every label value pqgate emits comes from an
//! enum here or from the config (listener and connector names), never from a peer.

/// TLS handshakes by `listener`, `group`, `outcome` (see [`HandshakeOutcome`]).
pub const TLS_HANDSHAKES: &str = "pqgate_tls_handshakes_total";
/// Completed sessions by `listener`, `group`, `suite`, `pq` (`true`/`false`).
pub const TLS_SESSIONS: &str = "pqgate_tls_sessions_total";
/// Handshake duration in seconds by `listener`.
pub const TLS_HANDSHAKE_SECONDS: &str = "pqgate_tls_handshake_duration_seconds";
/// Handshakes refused because the client offered no group the policy admits, by `listener`.
pub const POLICY_REFUSALS: &str = "pqgate_policy_refusals_total";
/// Connections open now, by `listener` (listeners and connectors share the label).
pub const ACTIVE_CONNECTIONS: &str = "pqgate_active_connections";
/// Connections refused because `max_connections` was reached, by `listener`.
pub const CONNECTIONS_REJECTED: &str = "pqgate_connections_rejected_total";
/// Finished connections by `listener`, `outcome` (see [`ConnectionOutcome`]).
pub const CONNECTIONS: &str = "pqgate_connections_total";
/// Relayed bytes by `listener`, `direction` (`client_to_backend`, `backend_to_client`).
pub const BYTES: &str = "pqgate_bytes_total";
/// Backend (or remote) connect failures by `listener`.
pub const BACKEND_CONNECT_FAILURES: &str = "pqgate_backend_connect_failures_total";
/// Config reloads by `outcome` (`ok`, `rejected`).
pub const CONFIG_RELOADS: &str = "pqgate_config_reloads_total";
/// 1 while the process serves, 0 while it drains.
pub const UP: &str = "pqgate_up";
/// 1 while pqgate's nftables table is installed and verified, 0 otherwise.
pub const FIREWALL_APPLIED: &str = "pqgate_firewall_applied";

/// Direction label values for [`BYTES`].
pub const DIRECTION_IN: &str = "client_to_backend";
/// Direction label values for [`BYTES`].
pub const DIRECTION_OUT: &str = "backend_to_client";

/// How a TLS handshake ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Completed and admitted by policy.
    Ok,
    /// No key-exchange group in common with the policy.
    PolicyRefused,
    /// The peer's certificate was missing or not trusted.
    PeerCertRefused,
    /// Not finished within the handshake timeout.
    Timeout,
    /// Any other failure: malformed data, incompatible versions, alerts.
    Failed,
}

impl HandshakeOutcome {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::PolicyRefused => "policy_refused",
            Self::PeerCertRefused => "peer_cert_refused",
            Self::Timeout => "timeout",
            Self::Failed => "failed",
        }
    }
}

/// How a relayed connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionOutcome {
    /// Both sides closed.
    Completed,
    /// No bytes either way for the idle timeout.
    IdleTimeout,
    /// The backend or remote could not be reached.
    BackendUnavailable,
    /// The handshake did not complete.
    HandshakeFailed,
    /// An IO error on either side.
    Error,
    /// Cut at the end of a drain.
    Drained,
}

impl ConnectionOutcome {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::IdleTimeout => "idle_timeout",
            Self::BackendUnavailable => "backend_unavailable",
            Self::HandshakeFailed => "handshake_failed",
            Self::Error => "error",
            Self::Drained => "drained",
        }
    }
}
