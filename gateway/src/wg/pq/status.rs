//! What `GET /status` (and so `pqgate status`) and the per-peer metrics show of the PQ PSK
//! channels: a board of the running nodes with each pq peer's effective mode, rendered as JSON
//! and copied into labelled metrics.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use pqgate_core::pqpsk::{PqMode, WgKey};
use pqgate_core::wg::Key32;
use serde_json::{Value, json};

use crate::pqpsk::Node;
use crate::wg::engine::{AgileStatus, Engine};

/// Gauge: the epoch of the PQ PSK a peer holds (labels `interface`, `peer`).
pub(crate) const METRIC_EPOCH: &str = "pqgate_pqpsk_epoch";
/// Gauge: 1 while a peer may carry data (pq-preferred, or pq-required with a current PQ PSK).
pub(crate) const METRIC_DATA_ALLOWED: &str = "pqgate_pqpsk_data_allowed";
/// Gauge: unix seconds of a peer's last PSK installation (0: none yet).
pub(crate) const METRIC_LAST_ROTATION: &str = "pqgate_pqpsk_last_rotation_seconds";
/// Counter: PSKs installed for a peer (labels `interface`, `peer`).
pub(crate) const METRIC_PEER_ROTATIONS: &str = "pqgate_pqpsk_peer_rotations_total";
/// Counter: a peer's failures (labels `interface`, `peer`, `reason`).
pub(crate) const METRIC_PEER_FAILURES: &str = "pqgate_pqpsk_peer_failures_total";

/// What `GET /status` reads: every interface's node and its peers' effective modes.
#[derive(Clone, Default)]
pub(crate) struct StatusBoard(pub(super) Arc<RwLock<Vec<BoardEntry>>>);

/// One interface on the board.
#[derive(Clone)]
pub(super) struct BoardEntry {
    pub iface: String,
    pub profile: String,
    pub listen: Option<SocketAddr>,
    pub node: Arc<Node>,
    /// The interface's engine (agile tunnel state per peer).
    pub engine: Arc<Engine>,
    /// Each pq peer: key, certificate name, effective mode.
    pub peers: Vec<(WgKey, String, PqMode)>,
}

fn mode_label(m: PqMode) -> &'static str {
    match m {
        PqMode::Required => "pq-required",
        PqMode::Preferred => "pq-preferred",
    }
}

/// The key exchange the profile's channel uses.
fn channel_group(profile: &str) -> &'static str {
    match profile {
        "cnsa2" => "MLKEM1024",
        _ => "X25519MLKEM768",
    }
}

fn kem_label(k: pqgate_core::pqpsk::KemId) -> Option<&'static str> {
    use pqgate_core::pqpsk::KemId;
    match k {
        KemId::McEliece460896 => Some("classic-mceliece-460896"),
        KemId::Hqc128 => Some("hqc-128"),
        _ => None,
    }
}

fn failures_json(f: &pqgate_core::pqpsk::status::FailureCounts) -> Value {
    let map: serde_json::Map<String, Value> = f
        .nonzero()
        .into_iter()
        .map(|(r, n)| (r.label().to_owned(), json!(n)))
        .collect();
    Value::Object(map)
}

impl StatusBoard {
    /// Every interface and peer as JSON (`now_ms`: unix milliseconds, for the rotation ages).
    pub(crate) fn json(&self, now_ms: u64) -> Value {
        let entries = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        let ifaces: Vec<Value> = entries.iter().map(|e| entry_json(e, now_ms)).collect();
        json!({ "interfaces": ifaces })
    }

    /// Sets the per-peer metrics (labels `interface`, `peer`) from the nodes' status.
    pub(crate) fn record_metrics(&self) {
        let entries = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        for e in &entries {
            for v in views(e) {
                let labels = [("interface", e.iface.clone()), ("peer", v.key.clone())];
                let s = &v.status;
                metrics::gauge!(METRIC_EPOCH, &labels).set(s.epoch.unwrap_or(0) as f64);
                metrics::gauge!(METRIC_DATA_ALLOWED, &labels).set(f64::from(u8::from(v.allowed)));
                let secs = s.last_rotation_ms.unwrap_or(0) / 1000;
                metrics::gauge!(METRIC_LAST_ROTATION, &labels).set(secs as f64);
                metrics::counter!(METRIC_PEER_ROTATIONS, &labels).absolute(s.rotations);
                for f in pqgate_core::pqpsk::Failure::ALL {
                    let labels = [
                        ("interface", e.iface.clone()),
                        ("peer", v.key.clone()),
                        ("reason", f.label().to_owned()),
                    ];
                    let n = s.failures.get(f);
                    metrics::counter!(METRIC_PEER_FAILURES, &labels).absolute(n);
                }
            }
        }
    }
}

/// One pq peer as status and metrics see it.
struct View<'a> {
    /// The peer's WireGuard key, and as base64 (the label and JSON form).
    raw: WgKey,
    key: String,
    name: &'a str,
    mode: PqMode,
    status: pqgate_core::pqpsk::PeerStatus,
    allowed: bool,
}

fn views(e: &BoardEntry) -> Vec<View<'_>> {
    let mut status = e.node.status();
    e.peers
        .iter()
        .filter_map(|(key, name, mode)| {
            let at = status.iter().position(|(k, _)| k == key)?;
            let (_, s) = status.swap_remove(at);
            let allowed = match mode {
                PqMode::Preferred => true,
                PqMode::Required => s.epoch.is_some() && !s.expired,
            };
            Some(View {
                raw: *key,
                key: Key32::from_bytes(*key).to_base64(),
                name,
                mode: *mode,
                status: s,
                allowed,
            })
        })
        .collect()
}

fn agile_json(a: Option<AgileStatus>) -> Value {
    let Some(a) = a else {
        return Value::Null;
    };
    json!({
        "aead": a.aead,
        "send_epoch": a.send_epoch,
        "send_generation": a.send_generation,
        "recv_epoch": a.recv_epoch,
        "recv_generation": a.recv_generation,
        "key_updates": a.key_updates,
        "tx_packets": a.tx_packets,
        "rx_packets": a.rx_packets,
    })
}

fn entry_json(e: &BoardEntry, now_ms: u64) -> Value {
    let peers: Vec<Value> = views(e)
        .into_iter()
        .map(|v| {
            let s = &v.status;
            let agile = e.engine.agile_status(&v.raw);
            let mut kems = vec![channel_group(&e.profile)];
            kems.extend(kem_label(s.kem));
            json!({
                "public_key": v.key,
                "name": v.name,
                "mode": mode_label(v.mode),
                "epoch": s.epoch,
                "last_rotation_ms": s.last_rotation_ms,
                "last_rotation_age_ms": s.last_rotation_ms.map(|t| now_ms.saturating_sub(t)),
                "rotations": s.rotations,
                "kems": kems,
                "channel_up": s.channel_up,
                "expired": s.expired,
                "data_allowed": v.allowed,
                "failures": failures_json(&s.failures),
                "agile": agile_json(agile),
            })
        })
        .collect();
    json!({
        "interface": e.iface,
        "profile": e.profile,
        "listen": e.listen.map_or("shared with the tunnel port".to_owned(), |a| a.to_string()),
        "refused": failures_json(&e.node.failures()),
        "peers": peers,
    })
}
