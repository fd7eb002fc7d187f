//! What a peer's PQ PSK channel reports: the installed epoch, the last rotation, the KEMs in use,
//! and failures counted by a bounded set of reasons (usable as metric labels).

use super::wire::KemId;

/// Counter: failures by `reason` ([`Failure::label`]), peers and connection attempts together.
pub const METRIC_FAILURES: &str = "pqgate_pqpsk_failures_total";
/// Counter: PSKs installed (both roles).
pub const METRIC_ROTATIONS: &str = "pqgate_pqpsk_rotations_total";
/// Counter: pq-preferred peers whose last PQ PSK expired (running on the static PSK or none).
pub const METRIC_DEGRADED: &str = "pqgate_pqpsk_degraded_total";
/// Counter: pq-required peers whose last PQ PSK expired (no data until the next rotation).
pub const METRIC_EXPIRED: &str = "pqgate_pqpsk_expired_total";

/// Why a rotation, a channel or a connection attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// No `Installed` within the answer timeout.
    Timeout,
    /// The responder answered `Refuse`.
    PeerRefused,
    /// A proposed epoch was stale, repeated or off the local clock.
    BadEpoch,
    /// A KEM input was malformed or a KEM operation failed.
    Kem,
    /// The TLS exporter or the HKDF derivation failed.
    Derive,
    /// A message arrived that the state does not allow, or did not parse.
    Protocol,
    /// The channel could not be opened or was lost.
    Channel,
    /// The peer's certificate is not from the configured CA.
    CertUnknownCa,
    /// The peer's certificate is expired (or not yet valid).
    CertExpired,
    /// The peer's certificate is revoked by a configured CRL.
    CertRevoked,
    /// The peer's certificate was refused for another reason (bad name, bad signature, ...).
    CertOther,
    /// A Hello named a key that is not a configured peer, or a certificate of another peer.
    UnknownPeer,
    /// The last PQ PSK passed its lifetime.
    Expired,
}

impl Failure {
    /// Every reason, in label order.
    pub const ALL: [Failure; 13] = [
        Self::Timeout,
        Self::PeerRefused,
        Self::BadEpoch,
        Self::Kem,
        Self::Derive,
        Self::Protocol,
        Self::Channel,
        Self::CertUnknownCa,
        Self::CertExpired,
        Self::CertRevoked,
        Self::CertOther,
        Self::UnknownPeer,
        Self::Expired,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::PeerRefused => "peer_refused",
            Self::BadEpoch => "bad_epoch",
            Self::Kem => "kem",
            Self::Derive => "derive",
            Self::Protocol => "protocol",
            Self::Channel => "channel",
            Self::CertUnknownCa => "cert_unknown_ca",
            Self::CertExpired => "cert_expired",
            Self::CertRevoked => "cert_revoked",
            Self::CertOther => "cert_other",
            Self::UnknownPeer => "unknown_peer",
            Self::Expired => "expired",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// Failure counters, one per [`Failure`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureCounts([u64; Failure::ALL.len()]);

impl FailureCounts {
    /// Adds one.
    pub fn add(&mut self, f: Failure) {
        let slot = &mut self.0[f.index()];
        *slot = slot.saturating_add(1);
    }

    /// The count for `f`.
    pub fn get(&self, f: Failure) -> u64 {
        self.0[f.index()]
    }

    /// The non-zero counts with their reasons.
    pub fn nonzero(&self) -> Vec<(Failure, u64)> {
        Failure::ALL
            .iter()
            .map(|f| (*f, self.get(*f)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// A snapshot of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The epoch of the PSK installed last, if any.
    pub epoch: Option<u64>,
    /// When that PSK was installed, unix milliseconds.
    pub last_rotation_ms: Option<u64>,
    /// Rotations completed.
    pub rotations: u64,
    /// The second KEM (besides the channel's own key exchange).
    pub kem: KemId,
    /// Whether the channel is up.
    pub channel_up: bool,
    /// Whether the last PQ PSK has expired without a successor.
    pub expired: bool,
    /// Failures by reason.
    pub failures: FailureCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_counts_separate() {
        let mut labels: Vec<_> = Failure::ALL.iter().map(|f| f.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Failure::ALL.len());
        let mut c = FailureCounts::default();
        c.add(Failure::CertRevoked);
        c.add(Failure::CertRevoked);
        c.add(Failure::Expired);
        assert_eq!(c.get(Failure::CertRevoked), 2);
        assert_eq!(c.get(Failure::Timeout), 0);
        assert_eq!(
            c.nonzero(),
            vec![(Failure::CertRevoked, 2), (Failure::Expired, 1)]
        );
    }
}
