//! What `GET /status`, `pqgate status` and the per-peer metrics show of the PQ PSK channels:
//! a board of the running nodes with each pq peer's effective mode, rendered as JSON or text
//! and copied into labelled metrics; plus the small HTTP client of `pqgate status`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use pqgate_core::pqpsk::{PqMode, WgKey};
use pqgate_core::wg::Key32;
use serde_json::{Value, json};

use crate::pqpsk::Node;
use crate::wg::engine::{AgileStatus, Engine};

/// Gauge: the epoch of the PQ PSK a peer holds (labels `interface`, `peer`).
pub const METRIC_EPOCH: &str = "pqgate_pqpsk_epoch";
/// Gauge: 1 while a peer may carry data (pq-preferred, or pq-required with a current PQ PSK).
pub const METRIC_DATA_ALLOWED: &str = "pqgate_pqpsk_data_allowed";
/// Gauge: unix seconds of a peer's last PSK installation (0: none yet).
pub const METRIC_LAST_ROTATION: &str = "pqgate_pqpsk_last_rotation_seconds";
/// Counter: PSKs installed for a peer (labels `interface`, `peer`).
pub const METRIC_PEER_ROTATIONS: &str = "pqgate_pqpsk_peer_rotations_total";
/// Counter: a peer's failures (labels `interface`, `peer`, `reason`).
pub const METRIC_PEER_FAILURES: &str = "pqgate_pqpsk_peer_failures_total";

/// What `GET /status` reads: every interface's node and its peers' effective modes.
#[derive(Clone, Default)]
pub struct StatusBoard(pub(super) Arc<RwLock<Vec<BoardEntry>>>);

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
    pub fn json(&self, now_ms: u64) -> Value {
        let entries = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        let ifaces: Vec<Value> = entries.iter().map(|e| entry_json(e, now_ms)).collect();
        json!({ "interfaces": ifaces })
    }

    /// Sets the per-peer metrics (labels `interface`, `peer`) from the nodes' status.
    pub fn record_metrics(&self) {
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

/// `pqgate status` text: one block per interface, one line per peer.
pub fn render_text(v: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let ifaces = v["interfaces"].as_array().unwrap_or(&empty);
    if ifaces.is_empty() {
        out.push_str("no interface with [wireguard.pq]\n");
    }
    for i in ifaces {
        out.push_str(&format!(
            "interface {} (profile {}, QUIC {}), refused: {}\n",
            text(&i["interface"]),
            text(&i["profile"]),
            text(&i["listen"]),
            i["refused"]
        ));
        for p in i["peers"].as_array().unwrap_or(&empty) {
            out.push_str(&format!(
                "  peer {} ({}) {}: epoch {}, last rotation {} ms ago, rotations {}, kems {}, \
                 channel {}, data {}, failures {}\n",
                text(&p["public_key"]),
                text(&p["name"]),
                text(&p["mode"]),
                text(&p["epoch"]),
                text(&p["last_rotation_age_ms"]),
                text(&p["rotations"]),
                p["kems"],
                if p["channel_up"] == json!(true) {
                    "up"
                } else {
                    "down"
                },
                if p["data_allowed"] == json!(true) {
                    "allowed"
                } else {
                    "BLOCKED"
                },
                p["failures"],
            ));
            let a = &p["agile"];
            if a.is_object() {
                out.push_str(&format!(
                    "    agile {}: sends epoch {} key {}, opens epoch {} key {}, {} key updates, \
                     packets tx {} rx {}\n",
                    text(&a["aead"]),
                    text(&a["send_epoch"]),
                    text(&a["send_generation"]),
                    text(&a["recv_epoch"]),
                    text(&a["recv_generation"]),
                    text(&a["key_updates"]),
                    text(&a["tx_packets"]),
                    text(&a["rx_packets"]),
                ));
            }
        }
    }
    out
}

/// Why `pqgate status` got no status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The admin endpoint could not be reached or read.
    #[error("admin endpoint {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It answered something other than `200` with JSON.
    #[error("admin endpoint {addr}: {reason}")]
    Answer {
        /// The address.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
}

/// Bounds for `pqgate status`: the admin endpoint is local and answers at once.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest status answer read (about 1 KB per peer).
const MAX_STATUS_BYTES: u64 = 64 << 20;

/// `GET /status` from the admin endpoint at `addr`.
pub fn fetch_status(addr: SocketAddr) -> Result<Value, FetchError> {
    use std::io::{Read, Write};
    let io = |source| FetchError::Io { addr, source };
    let mut s = std::net::TcpStream::connect_timeout(&addr, FETCH_TIMEOUT).map_err(io)?;
    s.set_read_timeout(Some(FETCH_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(FETCH_TIMEOUT)).map_err(io)?;
    s.write_all(format!("GET /status HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(io)?;
    let mut raw = Vec::new();
    s.take(MAX_STATUS_BYTES).read_to_end(&mut raw).map_err(io)?;
    let answer = |reason: &str| FetchError::Answer {
        addr,
        reason: reason.to_owned(),
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| answer("no HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        let line = head.lines().next().unwrap_or_default();
        return Err(answer(&format!("answered {line:?}")));
    }
    serde_json::from_slice(&raw[split + 4..]).map_err(|e| answer(&e.to_string()))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_marks_blocked_peers() {
        let v = json!({"interfaces": [{"interface": "wg0", "profile": "pq-hybrid",
            "listen": "shared", "refused": {}, "peers": [{"public_key": "K", "name": "b",
            "mode": "pq-required", "epoch": null, "last_rotation_age_ms": null, "rotations": 0,
            "kems": ["X25519MLKEM768"], "channel_up": false, "data_allowed": false,
            "failures": {"channel": 2}}]}]});
        let t = render_text(&v);
        assert!(t.contains("interface wg0 (profile pq-hybrid"), "{t}");
        assert!(t.contains("epoch -") && t.contains("data BLOCKED"), "{t}");
        assert!(t.contains("{\"channel\":2}"), "{t}");
        assert!(!t.contains("agile"), "{t}");
        let mut with_agile = v.clone();
        with_agile["interfaces"][0]["peers"][0]["agile"] = json!({"aead": "SM4-GCM",
            "send_epoch": 7, "send_generation": 3, "recv_epoch": 7, "recv_generation": 2,
            "key_updates": 40, "tx_packets": 900, "rx_packets": 800});
        let t = render_text(&with_agile);
        assert!(
            t.contains("agile SM4-GCM: sends epoch 7 key 3, opens epoch 7 key 2, 40 key updates"),
            "{t}"
        );
        assert_eq!(
            render_text(&json!({})),
            "no interface with [wireguard.pq]\n"
        );
    }
}
