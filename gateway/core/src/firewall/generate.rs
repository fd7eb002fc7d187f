//! Builds the [`Ruleset`] from a [`Config`]: which ports the config serves, on which addresses,
//! from which sources, in the order nft evaluates them.

use std::net::IpAddr;

use super::{
    Chain, ChainKind, CtState, Family, FirewallError, Hook, L4, Match, Meter, Policy, Rule,
    Ruleset, Verdict,
};
use crate::config::{Config, Transport};
use crate::wg::IpCidr;

/// Priority of the filter chains (nft's `filter`).
const PRIORITY_FILTER: i32 = 0;
/// Priority of the masquerade chain (nft's `srcnat`).
const PRIORITY_SRCNAT: i32 = 100;

/// A WireGuard handshake initiation starts with message type 1 and three reserved zero bytes;
/// read big-endian from the UDP payload that is 0x01000000.
const WG_INITIATION_WORD: u32 = 0x0100_0000;

/// ICMP types every host needs (path MTU discovery, errors for its own connections).
const ICMP_ESSENTIAL: &[&str] = &[
    "destination-unreachable",
    "time-exceeded",
    "parameter-problem",
];
/// ICMPv6 types IPv6 cannot work without (RFC 4890: errors, neighbor and router discovery).
const ICMPV6_ESSENTIAL: &[&str] = &[
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
];

/// What a UDP port carries: it decides how handshakes are recognised for rate limiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpKind {
    /// WireGuard: handshake initiations are rate limited.
    WireGuard,
    /// QUIC: new flows are rate limited.
    Quic,
}

/// A UDP port pqgate serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpService {
    /// For the rule comment, e.g. `wireguard wg0`.
    pub label: String,
    /// The port.
    pub port: u16,
    /// The bound address, when it is not the wildcard.
    pub addr: Option<IpAddr>,
    /// The protocol on it.
    pub kind: UdpKind,
}

/// Every UDP port the config serves (WireGuard, QUIC). The one place to extend when a section
/// that listens on UDP is added to [`Config`]. A `[[wireguard]]` interface without a
/// `listen_port` (ephemeral port) gets no rule: it only initiates, and replies pass as
/// established traffic.
pub fn udp_services(config: &Config) -> Vec<UdpService> {
    let wireguard = config
        .wireguard
        .iter()
        .filter(|w| w.listen_port != 0)
        .map(|w| UdpService {
            label: format!("wireguard {}", w.name),
            port: w.listen_port,
            addr: None,
            kind: UdpKind::WireGuard,
        });
    // A `[wireguard.pq]` channel on its own port (sharing the tunnel's port needs no rule).
    let pq = config.wireguard.iter().filter_map(|w| {
        let a = w.pq.as_ref()?.listen.filter(|a| a.port() != 0)?;
        Some(UdpService {
            label: format!("wireguard {} pq", w.name),
            port: a.port(),
            addr: (!a.ip().is_unspecified()).then_some(a.ip()),
            kind: UdpKind::Quic,
        })
    });
    // A `transport = "quic"` listener receives QUIC on UDP at its address.
    let quic = config
        .listeners
        .iter()
        .filter(|l| l.transport == Transport::Quic && !l.listen.ip().is_loopback())
        .map(|l| UdpService {
            label: format!("listener {}", l.name),
            port: l.listen.port(),
            addr: (!l.listen.ip().is_unspecified()).then_some(l.listen.ip()),
            kind: UdpKind::Quic,
        });
    wireguard.chain(pq).chain(quic).collect()
}

/// A TCP port pqgate serves, from a listener, connector or the admin endpoint.
struct TcpService {
    label: String,
    addr: IpAddr,
    port: u16,
}

/// Every TCP port the config serves to other hosts (a loopback-bound one needs no rule: the
/// ruleset accepts all loopback traffic). The admin endpoint is not included.
fn tcp_services(config: &Config) -> Vec<TcpService> {
    let listeners = config
        .listeners
        .iter()
        .filter(|l| l.transport == Transport::Tls)
        .map(|l| (format!("listener {}", l.name), l.listen));
    let connectors = config
        .connectors
        .iter()
        .map(|c| (format!("connector {}", c.name), c.listen));
    listeners
        .chain(connectors)
        .filter(|(_, a)| !a.ip().is_loopback())
        .map(|(label, a)| TcpService {
            label,
            addr: a.ip(),
            port: a.port(),
        })
        .collect()
}

/// Builds the ruleset for `config` (whether or not `firewall.enabled` is set).
pub fn generate(config: &Config) -> Result<Ruleset, FirewallError> {
    let fw = &config.firewall;
    let management = fw
        .management_cidrs()
        .map_err(|(index, source)| FirewallError::Management { index, source })?;
    let mut chains = vec![
        filter_chain("input", Hook::Input, input_rules(config, &management)),
        filter_chain("forward", Hook::Forward, forward_rules(config)),
    ];
    if !fw.masquerade.is_empty() {
        chains.push(Chain {
            name: "postrouting",
            kind: ChainKind::Nat,
            hook: Hook::Postrouting,
            priority: PRIORITY_SRCNAT,
            policy: Policy::Accept,
            rules: fw
                .masquerade
                .iter()
                .map(|out| {
                    rule(
                        vec![Match::OifName(out.clone())],
                        Verdict::Masquerade,
                        format!("masquerade out of {out}"),
                    )
                })
                .collect(),
        });
    }
    Ok(Ruleset {
        table: fw.table.clone(),
        chains,
    })
}

fn filter_chain(name: &'static str, hook: Hook, rules: Vec<Rule>) -> Chain {
    Chain {
        name,
        kind: ChainKind::Filter,
        hook,
        priority: PRIORITY_FILTER,
        policy: Policy::Drop,
        rules,
    }
}

fn rule(matches: Vec<Match>, verdict: Verdict, comment: impl Into<String>) -> Rule {
    Rule {
        matches,
        meter: None,
        verdict,
        comment: comment.into(),
    }
}

/// Rules every filter chain starts with: replies pass, broken packets do not.
fn conntrack_rules() -> [Rule; 2] {
    [
        rule(
            vec![Match::CtState(vec![CtState::Established, CtState::Related])],
            Verdict::Accept,
            "replies and related",
        ),
        rule(
            vec![Match::CtState(vec![CtState::Invalid])],
            Verdict::Drop,
            "invalid",
        ),
    ]
}

fn input_rules(config: &Config, management: &[IpCidr]) -> Vec<Rule> {
    let fw = &config.firewall;
    let mut rules = Vec::from(conntrack_rules());
    rules.push(rule(
        vec![Match::IifName("lo".into())],
        Verdict::Accept,
        "loopback",
    ));
    rules.extend(icmp_rules(fw.allow_ping));
    let udp = udp_services(config);
    rules.extend(rate_limit_rules(fw, &udp));
    for s in tcp_services(config) {
        rules.push(rule(
            port_matches(Some(s.addr), L4::Tcp, vec![s.port]),
            Verdict::Accept,
            s.label,
        ));
    }
    for s in &udp {
        rules.push(rule(
            port_matches(s.addr, L4::Udp, vec![s.port]),
            Verdict::Accept,
            s.label.clone(),
        ));
    }
    rules.extend(admin_rules(config, management));
    for (l4, ports, label) in [
        (L4::Tcp, &fw.extra_tcp, "extra_tcp"),
        (L4::Udp, &fw.extra_udp, "extra_udp"),
    ] {
        if !ports.is_empty() {
            rules.push(rule(
                vec![Match::Dport(l4, ports.clone())],
                Verdict::Accept,
                label,
            ));
        }
    }
    rules
}

/// `[ip daddr A] tcp dport P`: the destination address only when the socket is bound to one.
fn port_matches(addr: Option<IpAddr>, l4: L4, ports: Vec<u16>) -> Vec<Match> {
    let mut m = Vec::with_capacity(2);
    if let Some(a) = addr.filter(|a| !a.is_unspecified()) {
        m.push(Match::Daddr(a));
    }
    m.push(Match::Dport(l4, ports));
    m
}

fn icmp_rules(allow_ping: bool) -> Vec<Rule> {
    let mut rules = vec![
        rule(
            vec![Match::IcmpType(Family::V4, ICMP_ESSENTIAL.to_vec())],
            Verdict::Accept,
            "icmp errors",
        ),
        rule(
            vec![Match::IcmpType(Family::V6, ICMPV6_ESSENTIAL.to_vec())],
            Verdict::Accept,
            "icmpv6 errors and neighbor discovery",
        ),
    ];
    if allow_ping {
        for family in [Family::V4, Family::V6] {
            rules.push(rule(
                vec![Match::IcmpType(family, vec!["echo-request"])],
                Verdict::Accept,
                "ping",
            ));
        }
    }
    rules
}

/// Per-source drop rules placed before the accepts: new TCP connections, then handshakes on
/// each kind of UDP service; one rule per address family (a meter keys on one family).
pub(super) fn rate_limit_rules(fw: &super::FirewallConfig, udp: &[UdpService]) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut limited = |name: &str, matches: Vec<Match>, per_second: u32, comment: &str| {
        for (family, suffix) in [(Family::V4, "4"), (Family::V6, "6")] {
            rules.push(Rule {
                matches: matches.clone(),
                meter: Some(Meter {
                    name: format!("{name}{suffix}"),
                    family,
                    per_second,
                }),
                verdict: Verdict::Drop,
                comment: comment.to_owned(),
            });
        }
    };
    if fw.new_connections_per_second > 0 {
        limited(
            "new_tcp",
            vec![Match::CtState(vec![CtState::New]), Match::L4Proto(L4::Tcp)],
            fw.new_connections_per_second,
            "new_connections_per_second",
        );
    }
    if fw.handshakes_per_second == 0 {
        return rules;
    }
    let ports = |kind| -> Vec<u16> {
        let mut p: Vec<u16> = udp
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.port)
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let wg = ports(UdpKind::WireGuard);
    if !wg.is_empty() {
        limited(
            "wg_init",
            vec![
                Match::Dport(L4::Udp, wg),
                Match::UdpPayloadWord(WG_INITIATION_WORD),
            ],
            fw.handshakes_per_second,
            "handshakes_per_second: wireguard initiations",
        );
    }
    let quic = ports(UdpKind::Quic);
    if !quic.is_empty() {
        limited(
            "quic_new",
            vec![
                Match::Dport(L4::Udp, quic),
                Match::CtState(vec![CtState::New]),
            ],
            fw.handshakes_per_second,
            "handshakes_per_second: new quic flows",
        );
    }
    rules
}

/// The admin port, only from the management networks of the family the socket serves.
fn admin_rules(config: &Config, management: &[IpCidr]) -> Vec<Rule> {
    let admin = &config.admin;
    if !admin.enabled || admin.listen.ip().is_loopback() {
        return Vec::new();
    }
    let ip = admin.listen.ip();
    // An IPv4 socket serves IPv4 only; an IPv6 wildcard socket may serve both.
    let families: &[Family] = match ip {
        IpAddr::V4(_) => &[Family::V4],
        IpAddr::V6(v6) if v6.is_unspecified() => &[Family::V4, Family::V6],
        IpAddr::V6(_) => &[Family::V6],
    };
    let mut rules = Vec::new();
    for &family in families {
        let nets: Vec<IpCidr> = management
            .iter()
            .filter(|c| Family::of(c.addr()) == family)
            .map(IpCidr::network)
            .collect();
        if nets.is_empty() {
            continue;
        }
        let mut matches = vec![Match::Saddr(family, nets)];
        matches.extend(port_matches(Some(ip), L4::Tcp, vec![admin.listen.port()]));
        rules.push(rule(matches, Verdict::Accept, "admin from management"));
    }
    rules
}

fn forward_rules(config: &Config) -> Vec<Rule> {
    let mut rules = Vec::from(conntrack_rules());
    for pair in &config.firewall.forward {
        rules.push(rule(
            vec![
                Match::IifName(pair.from.clone()),
                Match::OifName(pair.to.clone()),
            ],
            Verdict::Accept,
            format!("forward {} -> {}", pair.from, pair.to),
        ));
    }
    rules
}

#[cfg(test)]
mod pq_tests {
    use super::*;

    fn wireguard(pq_listen: Option<&str>) -> crate::wg::WireguardConfig {
        let pq = crate::wg::config::WgPqConfig {
            ca: "ca.pem".into(),
            crl: vec![],
            cert: "c.pem".into(),
            key: "k.pem".into(),
            listen: pq_listen.map(|a| a.parse().expect("addr")),
            rotation_interval_secs: 120,
            mode: Default::default(),
            second_kem: Default::default(),
            profile: "pq-hybrid".into(),
        };
        crate::wg::WireguardConfig {
            name: "wg0".into(),
            private_key: None,
            private_key_file: Some("wg.key".into()),
            listen_port: 51820,
            address: vec![],
            mtu: crate::wg::config::DEFAULT_MTU,
            fwmark: None,
            offload: true,
            queues: None,
            pq: Some(pq),
            peers: vec![],
        }
    }

    #[test]
    fn a_separate_pq_port_is_a_quic_service_a_shared_one_is_not() {
        let shared = Config {
            wireguard: vec![wireguard(None)],
            ..Config::default()
        };
        assert_eq!(
            udp_services(&shared).len(),
            1,
            "sharing needs no extra rule"
        );
        let separate = Config {
            wireguard: vec![wireguard(Some("192.0.2.1:4433"))],
            ..Config::default()
        };
        let services = udp_services(&separate);
        assert_eq!(services.len(), 2);
        assert_eq!(services[1].port, 4433);
        assert_eq!(services[1].kind, UdpKind::Quic);
        assert_eq!(services[1].addr, Some("192.0.2.1".parse().expect("ip")));
        assert_eq!(services[1].label, "wireguard wg0 pq");
    }
}
