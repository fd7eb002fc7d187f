//! Generator and validation tests: each rule class from the config that asks for it.

use std::net::SocketAddr;

use super::*;
use crate::config::{Config, ConnectorConfig, KxPolicy, Limits, ListenerConfig, default_profile};

fn listener(name: &str, listen: &str) -> ListenerConfig {
    ListenerConfig::for_test(name, listen.parse().unwrap())
}

fn connector(name: &str, listen: &str) -> ConnectorConfig {
    ConnectorConfig {
        name: name.into(),
        listen: listen.parse().unwrap(),
        remote: "gw.example:8443".parse().unwrap(),
        server_name: None,
        policy: KxPolicy::HybridRequired,
        profile: default_profile(),
        tls12: false,
        ca: Some("ca.pem".into()),
        pin_sha256: vec![],
        client_cert: None,
        client_key: None,
        alpn: vec![],
        limits: Limits::default(),
        transport: Default::default(),
    }
}

fn text(cfg: &Config) -> String {
    generate(cfg).unwrap().to_string()
}

fn input_lines(cfg: &Config) -> Vec<String> {
    let rs = generate(cfg).unwrap();
    rs.chain("input")
        .unwrap()
        .rules
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn default_config_opens_nothing_but_essentials() {
    let rs = generate(&Config::default()).unwrap();
    assert_eq!(rs.table, "pqgate");
    let names: Vec<_> = rs.chains.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["input", "forward"],
        "no nat chain without masquerade"
    );
    let input = rs.chain("input").unwrap();
    assert_eq!((input.policy, input.hook), (Policy::Drop, Hook::Input));
    let lines = input_lines(&Config::default());
    assert_eq!(
        lines,
        [
            "ct state established,related accept comment \"replies and related\"",
            "ct state invalid drop comment \"invalid\"",
            "iifname \"lo\" accept comment \"loopback\"",
            "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept \
             comment \"icmp errors\"",
            "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, \
             parameter-problem, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
             nd-neighbor-advert } accept comment \"icmpv6 errors and neighbor discovery\"",
            "icmp type echo-request accept comment \"ping\"",
            "icmpv6 type echo-request accept comment \"ping\"",
        ]
    );
    // The admin endpoint is on 127.0.0.1 by default: loopback covers it, no rule.
    assert!(!text(&Config::default()).contains("9851"));
}

#[test]
fn ping_can_be_refused() {
    let mut cfg = Config::default();
    cfg.firewall.allow_ping = false;
    assert!(!text(&cfg).contains("echo-request"));
    assert!(text(&cfg).contains("nd-neighbor-solicit"), "ND stays open");
}

#[test]
fn listener_and_connector_ports_respect_the_bind_address() {
    let mut cfg = Config::default();
    cfg.listeners.push(listener("web", "0.0.0.0:8443"));
    cfg.listeners.push(listener("v6", "[2001:db8::1]:443"));
    cfg.listeners.push(listener("local", "127.0.0.1:9443"));
    cfg.connectors.push(connector("out", "10.1.2.3:7000"));
    let lines = input_lines(&cfg);
    assert!(lines.contains(&"tcp dport 8443 accept comment \"listener web\"".to_owned()));
    assert!(lines.contains(
        &"ip6 daddr 2001:db8::1 tcp dport 443 accept comment \"listener v6\"".to_owned()
    ));
    assert!(
        lines.contains(
            &"ip daddr 10.1.2.3 tcp dport 7000 accept comment \"connector out\"".to_owned()
        )
    );
    assert!(!text(&cfg).contains("9443"), "loopback-bound: no rule");
}

#[test]
fn admin_only_from_management_networks_per_family() {
    let mut cfg = Config::default();
    cfg.admin.listen = SocketAddr::from(([0, 0, 0, 0], 9851));
    cfg.firewall.management = vec!["10.9.0.7/24".into(), "192.0.2.1".into(), "fd00::/8".into()];
    let lines = input_lines(&cfg);
    let admin: Vec<_> = lines.iter().filter(|l| l.contains("9851")).collect();
    assert_eq!(
        admin,
        [
            "ip saddr { 10.9.0.0/24, 192.0.2.1 } tcp dport 9851 accept comment \"admin from management\""
        ],
        "IPv4 socket: IPv4 networks only, host bits masked, host routes bare"
    );
    cfg.admin.listen = "[::]:9851".parse().unwrap();
    let lines = input_lines(&cfg);
    assert_eq!(lines.iter().filter(|l| l.contains("9851")).count(), 2);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ip6 saddr fd00::/8 tcp dport 9851"))
    );
    cfg.admin.listen = "10.9.0.1:9851".parse().unwrap();
    let lines = input_lines(&cfg);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ip daddr 10.9.0.1 tcp dport 9851"))
    );
    cfg.admin.enabled = false;
    assert!(!text(&cfg).contains("9851"));
}

#[test]
fn admin_without_management_networks_gets_no_rule() {
    let mut cfg = Config::default();
    cfg.admin.listen = SocketAddr::from(([0, 0, 0, 0], 9851));
    cfg.firewall.management.clear();
    assert!(!text(&cfg).contains("9851"));
}

#[test]
fn extra_ports() {
    let mut cfg = Config::default();
    cfg.firewall.extra_tcp = vec![22, 2222];
    cfg.firewall.extra_udp = vec![68];
    let lines = input_lines(&cfg);
    assert!(lines.contains(&"tcp dport { 22, 2222 } accept comment \"extra_tcp\"".to_owned()));
    assert!(lines.contains(&"udp dport 68 accept comment \"extra_udp\"".to_owned()));
}

#[test]
fn new_connection_limit_per_source_and_family_before_the_accepts() {
    let mut cfg = Config::default();
    cfg.listeners.push(listener("web", "0.0.0.0:8443"));
    cfg.firewall.new_connections_per_second = 25;
    let lines = input_lines(&cfg);
    let limit = lines
        .iter()
        .position(|l| l.contains("meter new_tcp4"))
        .unwrap();
    let accept = lines.iter().position(|l| l.contains("dport 8443")).unwrap();
    assert!(limit < accept);
    assert_eq!(
        lines[limit],
        "ct state new meta l4proto tcp meter new_tcp4 { ip saddr limit rate over 25/second \
         burst 25 packets } drop comment \"new_connections_per_second\""
    );
    assert!(lines[limit + 1].contains("meter new_tcp6 { ip6 saddr"));
}

#[test]
fn handshake_limit_needs_udp_services() {
    let mut cfg = Config::default();
    cfg.firewall.handshakes_per_second = 10;
    assert!(
        !text(&cfg).contains(" meter "),
        "no UDP service, nothing to limit"
    );
}

fn wireguard(name: &str, listen_port: u16) -> crate::wg::WireguardConfig {
    crate::wg::WireguardConfig {
        name: name.into(),
        private_key: None,
        private_key_file: Some("wg.key".into()),
        listen_port,
        address: vec![],
        mtu: crate::wg::config::DEFAULT_MTU,
        fwmark: None,
        offload: true,
        queues: None,
        pq: None,
        peers: vec![],
    }
}

#[test]
fn a_quic_listener_opens_udp_not_tcp() {
    let mut cfg = Config::default();
    let mut quic = listener("tunnel", "0.0.0.0:4433");
    quic.transport = crate::config::Transport::Quic;
    cfg.listeners.push(quic);
    let lines = input_lines(&cfg);
    assert!(
        lines.contains(&"udp dport 4433 accept comment \"listener tunnel\"".to_owned()),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("tcp dport 4433")),
        "{lines:?}"
    );
}

#[test]
fn wireguard_ports_open_and_their_initiations_are_limited() {
    let mut cfg = Config {
        wireguard: vec![wireguard("wg0", 51820), wireguard("wg9", 0)],
        ..Config::default()
    };
    let services = udp_services(&cfg);
    assert_eq!(services.len(), 1, "an ephemeral port gets no rule");
    let lines = input_lines(&cfg);
    assert!(lines.contains(&"udp dport 51820 accept comment \"wireguard wg0\"".to_owned()));
    assert!(!text(&cfg).contains(" meter "));
    cfg.firewall.handshakes_per_second = 20;
    let lines = input_lines(&cfg);
    let limit = lines
        .iter()
        .position(|l| l.contains("meter wg_init4"))
        .unwrap();
    let accept = lines
        .iter()
        .position(|l| l.contains("wireguard wg0"))
        .unwrap();
    assert!(limit < accept, "{lines:#?}");
    assert!(lines[limit].starts_with("udp dport 51820 @th,64,32 0x1000000 meter wg_init4"));
}

#[test]
fn handshake_limits_by_udp_kind() {
    let service = |label: &str, port, kind| UdpService {
        label: label.into(),
        port,
        addr: None,
        kind,
    };
    let udp = [
        service("wireguard wg1", 51821, UdpKind::WireGuard),
        service("wireguard wg0", 51820, UdpKind::WireGuard),
        service("quic psk", 4433, UdpKind::Quic),
    ];
    let mut fw = FirewallConfig {
        handshakes_per_second: 5,
        ..FirewallConfig::default()
    };
    let lines: Vec<String> = generate::rate_limit_rules(&fw, &udp)
        .iter()
        .map(ToString::to_string)
        .collect();
    let wg = "udp dport { 51820, 51821 } @th,64,32 0x1000000 meter wg_init";
    let quic = "udp dport 4433 ct state new meter quic_new";
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!(
            "{wg}4 {{ ip saddr limit rate over 5/second burst 5 packets }} drop comment \
             \"handshakes_per_second: wireguard initiations\""
        )
    );
    assert!(lines[1].starts_with(&format!("{wg}6 {{ ip6 saddr limit")));
    assert!(lines[2].starts_with(&format!("{quic}4 {{ ip saddr limit rate over 5/second")));
    assert!(lines[3].starts_with(&format!("{quic}6 {{ ip6 saddr")));
    fw.handshakes_per_second = 0;
    assert!(generate::rate_limit_rules(&fw, &udp).is_empty());
}

#[test]
fn forward_pairs_and_masquerade() {
    let mut cfg = Config::default();
    cfg.firewall.forward = vec![ForwardConfig {
        from: "wg0".into(),
        to: "eth1".into(),
    }];
    cfg.firewall.masquerade = vec!["eth0".into()];
    let rs = generate(&cfg).unwrap();
    let fwd = rs.chain("forward").unwrap();
    assert_eq!(fwd.policy, Policy::Drop);
    let lines: Vec<_> = fwd.rules.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[2],
        "iifname \"wg0\" oifname \"eth1\" accept comment \"forward wg0 -> eth1\""
    );
    let nat = rs.chain("postrouting").unwrap();
    assert_eq!(
        (nat.kind, nat.hook, nat.priority),
        (ChainKind::Nat, Hook::Postrouting, 100)
    );
    assert_eq!(
        nat.rules[0].to_string(),
        "oifname \"eth0\" masquerade comment \"masquerade out of eth0\""
    );
    let t = rs.to_string();
    assert!(
        t.contains("type nat hook postrouting priority srcnat; policy accept;"),
        "{t}"
    );
    assert_eq!(rs.rule_count(), 7 + 3 + 1);
}

#[test]
fn table_name_is_configurable() {
    let mut cfg = Config::default();
    cfg.firewall.table = "edge".into();
    assert!(text(&cfg).starts_with("table inet edge {\n\tchain input {\n"));
}

#[test]
fn unvalidated_bad_management_is_an_error_not_a_panic() {
    let mut cfg = Config::default();
    cfg.firewall.management = vec!["10.0.0.0/8".into(), "nope".into()];
    let err = generate(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("firewall.management[1]: not a CIDR"),
        "{err}"
    );
}

#[test]
fn validation_names_every_bad_key() {
    let mut cfg = Config::default();
    cfg.firewall.table = "1bad name".into();
    cfg.firewall.management = vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()];
    cfg.firewall.forward = vec![ForwardConfig {
        from: "wg0".into(),
        to: "a-name-far-too-long".into(),
    }];
    cfg.firewall.masquerade = vec!["eth 0".into()];
    cfg.firewall.extra_udp = vec![53, 0];
    cfg.firewall.handshakes_per_second = 2_000_000;
    let issues = crate::validate::validate(&cfg);
    let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "firewall.table",
            "firewall.management[1]",
            "firewall.handshakes_per_second",
            "firewall.forward[0].to",
            "firewall.masquerade[0]",
            "firewall.extra_udp[1]",
        ]
    );
    assert!(issues[1].message.starts_with("not a CIDR"), "{}", issues[1]);
    assert!(crate::validate::validate(&Config::default()).is_empty());
}

#[test]
fn interface_names_follow_linux_limits() {
    assert!(config::ifname_problem("wg0").is_none());
    assert!(config::ifname_problem("enp0s31f6.100").is_none());
    assert!(config::ifname_problem("fifteen-chars15").is_none());
    for bad in [
        "",
        ".",
        "..",
        "sixteen-chars-16",
        "a/b",
        "a b",
        "a\"b",
        "eth*",
    ] {
        assert!(config::ifname_problem(bad).is_some(), "{bad:?}");
    }
}
