//! `[firewall]`: what the operator says about the host firewall pqgate owns (its own nftables
//! table), with defaults that touch nothing, and the semantic checks of those keys.

use serde::{Deserialize, Serialize};

use crate::validate::Issue;
use crate::wg::IpCidr;

/// The table name used when none is configured.
pub const DEFAULT_TABLE: &str = "pqgate";

/// Longest table name accepted (nft allows more; a short name keeps `nft list` readable).
const MAX_TABLE_LEN: usize = 32;

/// Longest Linux interface name (IFNAMSIZ is 16 with the terminating NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// Highest rate limit accepted, per source and second: above it a limit protects nothing.
const MAX_RATE_PER_SECOND: u32 = 1_000_000;

/// `[firewall]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// Install the ruleset at start (off by default: a developer's firewall stays untouched).
    pub enabled: bool,
    /// Name of pqgate's own table (`table inet <table>`); nothing outside it is changed.
    pub table: String,
    /// Keep the table when pqgate stops (the box stays locked down between restarts).
    pub persist: bool,
    /// Networks (CIDR) allowed to reach the admin endpoint; loopback always can.
    pub management: Vec<String>,
    /// Answer ICMP/ICMPv6 echo requests.
    pub allow_ping: bool,
    /// New TCP connections per second and source address above which they are dropped; 0: off.
    pub new_connections_per_second: u32,
    /// Tunnel handshakes (WireGuard initiations, new QUIC flows) per second and source; 0: off.
    pub handshakes_per_second: u32,
    /// Interface pairs allowed to forward traffic (`[[firewall.forward]]`).
    pub forward: Vec<ForwardConfig>,
    /// Interfaces whose outgoing traffic is masqueraded (source NAT to the interface address).
    pub masquerade: Vec<String>,
    /// Further TCP ports to open on every address (e.g. 22 for ssh).
    pub extra_tcp: Vec<u16>,
    /// Further UDP ports to open on every address (e.g. 68 for a DHCP client).
    pub extra_udp: Vec<u16>,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            table: DEFAULT_TABLE.to_owned(),
            persist: false,
            management: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
            allow_ping: true,
            new_connections_per_second: 0,
            handshakes_per_second: 0,
            forward: Vec::new(),
            masquerade: Vec::new(),
            extra_tcp: Vec::new(),
            extra_udp: Vec::new(),
        }
    }
}

/// `[[firewall.forward]]`: traffic entering on `from` may leave on `to` (replies come back by
/// connection tracking; add the reverse pair to allow connections started on the other side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Incoming interface.
    pub from: String,
    /// Outgoing interface.
    pub to: String,
}

impl FirewallConfig {
    /// The management networks, parsed; the index and error of the first that is not a CIDR.
    pub fn management_cidrs(&self) -> Result<Vec<IpCidr>, (usize, crate::wg::CidrError)> {
        self.management
            .iter()
            .enumerate()
            .map(|(i, text)| text.parse::<IpCidr>().map_err(|e| (i, e)))
            .collect()
    }
}

/// Checks `[firewall]` and returns every issue, keyed `firewall.<key>`.
pub fn check(fw: &FirewallConfig) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut push = |key: String, message: String| issues.push(Issue { key, message });
    if !is_valid_table_name(&fw.table) {
        push(
            "firewall.table".into(),
            format!(
                "{:?} must be 1-{MAX_TABLE_LEN} characters of A-Z a-z 0-9 _ -, starting with a letter",
                fw.table
            ),
        );
    }
    for (i, text) in fw.management.iter().enumerate() {
        if let Err(e) = text.parse::<IpCidr>() {
            push(
                format!("firewall.management[{i}]"),
                format!("not a CIDR: {e}"),
            );
        }
    }
    for (key, rate) in [
        ("new_connections_per_second", fw.new_connections_per_second),
        ("handshakes_per_second", fw.handshakes_per_second),
    ] {
        if rate > MAX_RATE_PER_SECOND {
            push(
                format!("firewall.{key}"),
                format!("must be at most {MAX_RATE_PER_SECOND} (0 turns the limit off)"),
            );
        }
    }
    for (i, pair) in fw.forward.iter().enumerate() {
        for (field, name) in [("from", &pair.from), ("to", &pair.to)] {
            if let Some(why) = ifname_problem(name) {
                push(format!("firewall.forward[{i}].{field}"), why);
            }
        }
    }
    for (i, name) in fw.masquerade.iter().enumerate() {
        if let Some(why) = ifname_problem(name) {
            push(format!("firewall.masquerade[{i}]"), why);
        }
    }
    for (key, ports) in [("extra_tcp", &fw.extra_tcp), ("extra_udp", &fw.extra_udp)] {
        for (i, port) in ports.iter().enumerate() {
            if *port == 0 {
                push(
                    format!("firewall.{key}[{i}]"),
                    "port 0 is not a port".into(),
                );
            }
        }
    }
    issues
}

fn is_valid_table_name(name: &str) -> bool {
    name.len() <= MAX_TABLE_LEN
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Why `name` cannot be a Linux interface name, if it cannot. Stricter than the kernel (which
/// takes nearly any byte): only characters that need no quoting anywhere.
pub fn ifname_problem(name: &str) -> Option<String> {
    let ok_chars = name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'@'));
    let bad =
        name.is_empty() || name.len() > MAX_IFNAME_LEN || name == "." || name == ".." || !ok_chars;
    bad.then(|| {
        format!(
            "{name:?} is not an interface name (1-{MAX_IFNAME_LEN} characters of \
             A-Z a-z 0-9 _ - . @)"
        )
    })
}
