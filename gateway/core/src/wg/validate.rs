//! Semantic checks on the `[[wireguard]]` sections: every problem with its key path
//! (`wireguard[0].peer[2].public_key: ...`). Opens no file: key files are checked when read.

use std::collections::HashMap;

use super::config::{MIN_AGILE_KEY_PACKETS, WgPeerPq, WireguardConfig, WireguardPeerConfig};
use super::iface::MAX_QUEUES;
use super::key::Key32;
use super::quick::is_interface_name;
use crate::validate::Issue;

/// Smallest MTU Linux accepts on a link that carries IPv4 (RFC 791).
const MTU_MIN: u16 = 68;
/// Largest MTU whose packets still fit one UDP datagram over IPv6: 65,535 less the IPv6 (40)
/// and UDP (8) headers and WireGuard's 32 bytes of framing and tag.
const MTU_MAX: u16 = 65_455;

/// Checks every `[[wireguard]]` section; returns every issue found (empty: valid).
pub fn check(sections: &[WireguardConfig]) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut push = |key: String, message: String| issues.push(Issue { key, message });
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ports: HashMap<u16, usize> = HashMap::new();
    for (i, w) in sections.iter().enumerate() {
        let at = format!("wireguard[{i}]");
        if !is_interface_name(&w.name) {
            push(
                format!("{at}.name"),
                format!(
                    "{:?} is not an interface name: 1-15 characters (IFNAMSIZ) of \
                     a-z A-Z 0-9 _ = + . -, not . or ..",
                    w.name
                ),
            );
        }
        if let Some(first) = names.insert(&w.name, i) {
            push(
                format!("{at}.name"),
                format!("{:?} is already the name of wireguard[{first}]", w.name),
            );
        }
        let taken = (w.listen_port != 0)
            .then(|| ports.insert(w.listen_port, i))
            .flatten();
        if let Some(first) = taken {
            push(
                format!("{at}.listen_port"),
                format!("{} is already used by wireguard[{first}]", w.listen_port),
            );
        }
        match (&w.private_key, &w.private_key_file) {
            (Some(_), Some(_)) => push(
                format!("{at}.private_key"),
                "private_key and private_key_file are exclusive: choose one".to_owned(),
            ),
            (None, None) => push(
                format!("{at}.private_key"),
                "missing: set private_key (base64) or private_key_file".to_owned(),
            ),
            _ => {}
        }
        if !(MTU_MIN..=MTU_MAX).contains(&w.mtu) {
            push(
                format!("{at}.mtu"),
                format!("{} is out of range ({MTU_MIN}-{MTU_MAX})", w.mtu),
            );
        }
        if let Some(q) = w.queues.filter(|q| !(1..=MAX_QUEUES).contains(q)) {
            push(
                format!("{at}.queues"),
                format!("{q} is out of range (1-{MAX_QUEUES}); leave it out for one per CPU"),
            );
        }
        check_peers(&at, &w.peers, &mut push);
        check_pq(&at, w, &mut push);
    }
    issues
}

/// `[wireguard.pq]` through the channel's own checks, and each peer's `pq` table.
fn check_pq(at: &str, w: &WireguardConfig, push: &mut impl FnMut(String, String)) {
    if let Some(pq) = &w.pq {
        let channel = pq.channel(&[], |_| None);
        for issue in crate::pqpsk::config::validate(&format!("{at}.pq"), &channel) {
            push(issue.key, issue.message);
        }
        if pq
            .listen
            .is_some_and(|a| a.port() != 0 && a.port() == w.listen_port)
        {
            push(
                format!("{at}.pq.listen"),
                "is the tunnel's own port: leave listen out to share it".to_owned(),
            );
        }
    }
    for (j, p) in w.peers.iter().enumerate() {
        let Some(q) = &p.pq else { continue };
        if w.pq.is_none() {
            push(
                format!("{at}.peer[{j}].pq"),
                "needs the interface's [wireguard.pq] table".to_owned(),
            );
        }
        if !crate::route::is_valid_server_name(&q.name) {
            push(
                format!("{at}.peer[{j}].pq.name"),
                format!("{:?} is not a valid DNS name", q.name),
            );
        }
        check_agile_key_packets(&format!("{at}.peer[{j}].pq"), q, push);
    }
}

/// `agile_key_packets` needs `agile` and at least [`MIN_AGILE_KEY_PACKETS`].
fn check_agile_key_packets(at: &str, q: &WgPeerPq, push: &mut impl FnMut(String, String)) {
    let Some(n) = q.agile_key_packets else { return };
    let key = format!("{at}.agile_key_packets");
    if q.agile.is_none() {
        push(key, "needs `agile` (an AEAD) on the same peer".to_owned());
    } else if n < MIN_AGILE_KEY_PACKETS {
        push(
            key,
            format!("{n} is below the minimum of {MIN_AGILE_KEY_PACKETS} packets per key"),
        );
    }
}

fn check_peers(at: &str, peers: &[WireguardPeerConfig], push: &mut impl FnMut(String, String)) {
    let mut keys: HashMap<Key32, usize> = HashMap::new();
    for (j, p) in peers.iter().enumerate() {
        let at = format!("{at}.peer[{j}]");
        if let Some(first) = keys.insert(p.public_key, j) {
            push(
                format!("{at}.public_key"),
                format!("the same public key as peer[{first}]"),
            );
        }
        if p.preshared_key.is_some() && p.preshared_key_file.is_some() {
            push(
                format!("{at}.preshared_key"),
                "preshared_key and preshared_key_file are exclusive: choose one".to_owned(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::DEFAULT_MTU;
    use super::super::key::{PresharedKey, PrivateKey};
    use super::*;

    fn peer(k: u8) -> WireguardPeerConfig {
        WireguardPeerConfig::for_test(k, None)
    }

    fn wg(name: &str, port: u16) -> WireguardConfig {
        WireguardConfig {
            name: name.into(),
            private_key: Some(PrivateKey::from_bytes([1; 32])),
            private_key_file: None,
            listen_port: port,
            address: vec![],
            mtu: DEFAULT_MTU,
            fwmark: None,
            offload: true,
            queues: None,
            pq: None,
            peers: vec![peer(2), peer(3)],
        }
    }

    fn keys(c: &[WireguardConfig]) -> Vec<String> {
        check(c).into_iter().map(|i| i.key).collect()
    }

    #[test]
    fn a_valid_section_has_no_issue() {
        assert!(check(&[wg("wg0", 51820), wg("wg1", 0), wg("wg2", 0)]).is_empty());
    }

    #[test]
    fn queues_must_be_between_one_and_the_maximum() {
        let with = |name: &str, queues: Option<u16>| WireguardConfig {
            offload: false,
            queues,
            ..wg(name, 0)
        };
        let sections = [
            with("a", None),
            with("b", Some(1)),
            with("c", Some(MAX_QUEUES)),
            with("d", Some(0)),
            with("e", Some(MAX_QUEUES + 1)),
        ];
        let text: Vec<String> = check(&sections).iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                format!(
                    "wireguard[3].queues: 0 is out of range (1-{MAX_QUEUES}); leave it out for one per CPU"
                ),
                format!(
                    "wireguard[4].queues: {} is out of range (1-{MAX_QUEUES}); leave it out for one per CPU",
                    MAX_QUEUES + 1
                ),
            ]
        );
    }

    #[test]
    fn every_issue_names_its_key_path() {
        let mut a = wg("wg0", 51820);
        a.private_key_file = Some("k".into());
        a.mtu = 40;
        a.peers[1] = peer(2);
        a.peers[1].preshared_key = Some(PresharedKey::from_bytes([5; 32]));
        a.peers[1].preshared_key_file = Some("p".into());
        let mut b = wg("wg0", 51820);
        b.private_key = None;
        let c = wg("a-very-long-name0", 0);
        let d = wg("bad/name", 0);
        assert_eq!(
            keys(&[a, b, c, d]),
            [
                "wireguard[0].private_key",
                "wireguard[0].mtu",
                "wireguard[0].peer[1].public_key",
                "wireguard[0].peer[1].preshared_key",
                "wireguard[1].name",
                "wireguard[1].listen_port",
                "wireguard[1].private_key",
                "wireguard[2].name",
                "wireguard[3].name",
            ]
        );
    }

    #[test]
    fn pq_tables_are_checked_with_their_key_paths() {
        let mut a = wg("wg0", 51820);
        a.peers[0].pq = Some(super::super::config::WgPeerPq {
            agile: None,
            agile_key_packets: None,
            name: "b.example".into(),
            address: None,
            mode: None,
            second_kem: None,
        });
        a.peers[1].pq = Some(super::super::config::WgPeerPq {
            agile: None,
            agile_key_packets: Some(100),
            name: "not a name".into(),
            ..a.peers[0].pq.clone().expect("set")
        });
        assert_eq!(
            keys(std::slice::from_ref(&a)),
            [
                "wireguard[0].peer[0].pq",
                "wireguard[0].peer[1].pq",
                "wireguard[0].peer[1].pq.name",
                "wireguard[0].peer[1].pq.agile_key_packets"
            ]
        );
        if let Some(q) = a.peers[1].pq.as_mut() {
            q.agile = Some("AES-256-GCM".into());
        }
        assert!(
            keys(std::slice::from_ref(&a)).len() == 3,
            "with agile, 100 is fine"
        );
        if let Some(q) = a.peers[1].pq.as_mut() {
            q.agile_key_packets = Some(MIN_AGILE_KEY_PACKETS - 1);
        }
        assert_eq!(
            keys(std::slice::from_ref(&a)).last().map(String::as_str),
            Some("wireguard[0].peer[1].pq.agile_key_packets")
        );
        if let Some(q) = a.peers[1].pq.as_mut() {
            q.agile_key_packets = Some(100);
        }
        a.pq = Some(super::super::config::WgPqConfig {
            ca: "ca.pem".into(),
            crl: vec![],
            cert: "c.pem".into(),
            key: "k.pem".into(),
            listen: Some("0.0.0.0:51820".parse().expect("addr")),
            rotation_interval_secs: 0,
            mode: Default::default(),
            second_kem: Default::default(),
            profile: "pq-hybrid".into(),
        });
        assert_eq!(
            keys(&[a]),
            [
                "wireguard[0].pq.rotation_interval_secs",
                "wireguard[0].pq.listen",
                "wireguard[0].peer[1].pq.name"
            ]
        );
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let mut a = wg("wg0", 1);
        a.peers.push(peer(3));
        let issues = check(&[a.clone(), a]);
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(
                &"wireguard[0].peer[2].public_key: the same public key as peer[1]".into()
            ),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("wireguard[1].name: \"wg0\" is already")),
            "{text:?}"
        );
    }
}
