//! `pqgate status`: the running daemon's PQ PSK channels, fetched from its admin endpoint's
//! `GET /status` (over [`crate::admin::http::get`], bounded in time and size), printed as text
//! or JSON.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::admin::http::{self, ClientLimits};

/// Bounds for `pqgate status`: the admin endpoint is local and answers at once; its answer is
/// about 1 KB per peer.
const LIMITS: ClientLimits = ClientLimits {
    connect: Duration::from_secs(5),
    total: Duration::from_secs(10),
    max_body: 64 << 20,
};

/// Prints the status of the daemon whose admin endpoint is `admin`.
pub(crate) fn run(admin: SocketAddr, json: bool) -> anyhow::Result<ExitCode> {
    let v = fetch_status(admin)?;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&v)?),
        false => print!("{}", render_text(&v)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `GET /status` from the admin endpoint at `addr`, on a runtime of its own (the CLI is not
/// async).
fn fetch_status(addr: SocketAddr) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (status, body) = rt
        .block_on(http::get(addr, "/status", &LIMITS))
        .with_context(|| format!("admin endpoint {addr}"))?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "admin endpoint {addr}: answered {status}"
    );
    serde_json::from_slice(&body).with_context(|| format!("admin endpoint {addr}: /status"))
}

/// `pqgate status` text: one block per interface, one line per peer.
fn render_text(v: &Value) -> String {
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
