//! The PQ PSK channel's configuration model (`PqPskConfig`) with its defaults and validation.
//! `[wireguard.pq]` of the daemon's config uses it. Opens no file.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::epoch::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
use super::wire::KemId;
use crate::route::is_valid_server_name;
use crate::validate::Issue;
use crate::wg::Key32;

/// Default rotation interval in seconds (WireGuard re-keys every 120 s).
pub const DEFAULT_INTERVAL_SECS: u64 = 120;

/// What a peer does without a current PQ PSK.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum PqMode {
    /// `pq-required`: no data without a PQ-derived PSK; sessions end when the last one expires.
    #[default]
    #[serde(rename = "pq-required")]
    Required,
    /// `pq-preferred`: keep going on the static PSK (or none) with a warning and a metric.
    #[serde(rename = "pq-preferred")]
    Preferred,
}

/// The optional second KEM combined with the channel's exporter.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum SecondKem {
    /// `none`: the PSK rests on the channel's (hybrid) key exchange alone.
    #[default]
    #[serde(rename = "none")]
    None,
    /// `classic-mceliece-460896`: the responder's long-term static key.
    #[serde(rename = "classic-mceliece-460896")]
    ClassicMceliece460896,
    /// `hqc-128`: a fresh key pair per epoch.
    #[serde(rename = "hqc-128")]
    Hqc128,
}

impl SecondKem {
    /// The protocol's KEM identifier.
    pub fn kem_id(self) -> KemId {
        match self {
            Self::None => KemId::None,
            Self::ClassicMceliece460896 => KemId::McEliece460896,
            Self::Hqc128 => KemId::Hqc128,
        }
    }
}

/// One pqgate WireGuard peer reached over the channel.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PqPskPeer {
    /// The peer's WireGuard public key (base64, as wg(8) prints it).
    pub public_key: String,
    /// The peer's QUIC address; needed where this node initiates (its key is the lower one).
    #[serde(default)]
    pub address: Option<SocketAddr>,
    /// The DNS name the peer's certificate must carry.
    pub name: String,
    /// Overrides the node's `mode` for this peer.
    #[serde(default)]
    pub mode: Option<PqMode>,
    /// Overrides the node's `second_kem` for this peer (both ends must agree).
    #[serde(default)]
    pub second_kem: Option<SecondKem>,
}

/// The node's PQ PSK channel.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PqPskConfig {
    /// CA bundle (PEM) that peer certificates must chain to.
    pub ca: PathBuf,
    /// Certificate revocation lists (PEM or DER files), checked for every peer certificate.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// UDP address of the QUIC endpoint (sharing the tunnel's port comes later).
    pub listen: SocketAddr,
    /// Seconds per epoch.
    #[serde(default = "default_interval")]
    pub rotation_interval_secs: u64,
    /// Default mode of the peers.
    #[serde(default)]
    pub mode: PqMode,
    /// Default second KEM of the peers.
    #[serde(default)]
    pub second_kem: SecondKem,
    /// Algorithm profile of the channel: `pq-hybrid` (X25519MLKEM768 first, HKDF-SHA256) or
    /// `cnsa2` (MLKEM1024, HKDF-SHA384).
    #[serde(default = "default_profile")]
    pub profile: String,
    /// The peers.
    #[serde(default)]
    pub peer: Vec<PqPskPeer>,
}

fn default_interval() -> u64 {
    DEFAULT_INTERVAL_SECS
}

fn default_profile() -> String {
    "pq-hybrid".into()
}

/// Profiles the channel accepts (both admit only post-quantum key exchange here).
pub const PROFILES: &[&str] = &["pq-hybrid", "cnsa2"];

/// Checks `c` (found at key path `at`) and returns every issue.
pub fn validate(at: &str, c: &PqPskConfig) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut issue = |key: String, message: String| issues.push(Issue { key, message });
    let ms = c.rotation_interval_secs.saturating_mul(1000);
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) {
        issue(
            format!("{at}.rotation_interval_secs"),
            format!("must be between 1 and {} seconds", MAX_INTERVAL_MS / 1000),
        );
    }
    if !PROFILES.contains(&c.profile.as_str()) {
        issue(
            format!("{at}.profile"),
            format!("must be one of {}", PROFILES.join(", ")),
        );
    }
    let mut seen: Vec<Key32> = Vec::new();
    for (i, p) in c.peer.iter().enumerate() {
        let key_at = format!("{at}.peer[{i}]");
        match p.public_key.parse::<Key32>() {
            Ok(k) if seen.contains(&k) => {
                issue(format!("{key_at}.public_key"), "duplicate peer".into())
            }
            Ok(k) => seen.push(k),
            Err(e) => issue(format!("{key_at}.public_key"), e.to_string()),
        }
        if !is_valid_server_name(&p.name) {
            issue(format!("{key_at}.name"), "not a valid DNS name".into());
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

    fn sample() -> PqPskConfig {
        PqPskConfig {
            ca: "ca.pem".into(),
            crl: Vec::new(),
            cert: "me.pem".into(),
            key: "me.key".into(),
            listen: "127.0.0.1:4433".parse().unwrap(),
            rotation_interval_secs: DEFAULT_INTERVAL_SECS,
            mode: PqMode::default(),
            second_kem: SecondKem::default(),
            profile: default_profile(),
            peer: vec![PqPskPeer {
                public_key: KEY.into(),
                address: None,
                name: "peer.example".into(),
                mode: None,
                second_kem: None,
            }],
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(validate("pqpsk", &sample()).is_empty());
        assert_eq!(PqMode::default(), PqMode::Required);
        assert_eq!(SecondKem::default().kem_id(), KemId::None);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let mut c = sample();
        c.rotation_interval_secs = 0;
        c.profile = "classical-compat".into();
        c.peer.push(c.peer[0].clone());
        c.peer.push(PqPskPeer {
            public_key: "short".into(),
            name: "not a name".into(),
            ..c.peer[0].clone()
        });
        let keys: Vec<String> = validate("pqpsk", &c).into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "pqpsk.rotation_interval_secs",
                "pqpsk.profile",
                "pqpsk.peer[1].public_key",
                "pqpsk.peer[2].public_key",
                "pqpsk.peer[2].name",
            ]
        );
    }
}
