//! The nftables ruleset pqgate installs, as plain data built from a [`Config`] (no IO): one
//! `inet` table with an input chain that opens only what the config serves, a forward chain with
//! the configured interface pairs, and masquerading. Rendered as `nft` text here; the daemon turns
//! the same model into nftables JSON and applies it.

pub mod config;
mod generate;
#[cfg(test)]
mod tests;
mod text;

use std::net::IpAddr;

pub use config::{FirewallConfig, ForwardConfig};
pub use generate::{UdpKind, UdpService, generate, udp_services};

use crate::wg::IpCidr;

/// Why a ruleset could not be generated (only from a config that skipped validation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// A management network is not a CIDR.
    #[error("firewall.management[{index}]: not a CIDR: {source}")]
    Management {
        /// Position in `firewall.management`.
        index: usize,
        /// The parse error.
        #[source]
        source: crate::wg::CidrError,
    },
}

/// A whole table: what `nft list table inet <name>` shows after applying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// The table's name (family is always `inet`).
    pub table: String,
    /// Base chains, in order.
    pub chains: Vec<Chain>,
}

/// A base chain attached to a netfilter hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Chain name.
    pub name: &'static str,
    /// `filter` or `nat`.
    pub kind: ChainKind,
    /// Where it hooks in.
    pub hook: Hook,
    /// Hook priority (0 = `filter`, 100 = `srcnat`).
    pub priority: i32,
    /// The verdict for packets no rule decides.
    pub policy: Policy,
    /// Rules, evaluated in order.
    pub rules: Vec<Rule>,
}

/// Chain type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainKind {
    /// Packet filtering.
    Filter,
    /// Address translation.
    Nat,
}

/// Netfilter hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Packets for this host.
    Input,
    /// Packets routed through this host.
    Forward,
    /// Packets leaving this host, after routing.
    Postrouting,
}

/// Chain policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Let through.
    Accept,
    /// Discard silently.
    Drop,
}

/// One rule: every match must hold, then the meter (if any) must fire, then the verdict applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Conditions, all of which must hold.
    pub matches: Vec<Match>,
    /// A per-source rate limit: the rule applies only to sources over the rate.
    pub meter: Option<Meter>,
    /// What happens to a matching packet.
    pub verdict: Verdict,
    /// Why the rule exists (shown by `nft list`; at most 128 bytes).
    pub comment: String,
}

/// Address family of an address match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `ip`.
    V4,
    /// `ip6`.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

/// Transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Connection tracking state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtState {
    /// Part of a connection seen both ways.
    Established,
    /// Related to one (ICMP errors, FTP data).
    Related,
    /// First packet of a connection.
    New,
    /// Matches no connection and starts none.
    Invalid,
}

/// A condition on a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `ct state a,b`.
    CtState(Vec<CtState>),
    /// `iifname "x"`.
    IifName(String),
    /// `oifname "x"`.
    OifName(String),
    /// `meta l4proto tcp`.
    L4Proto(L4),
    /// `ip saddr { .. }` / `ip6 saddr { .. }`; every prefix is of that family.
    Saddr(Family, Vec<IpCidr>),
    /// `ip daddr x` / `ip6 daddr x`.
    Daddr(IpAddr),
    /// `tcp dport { .. }` / `udp dport { .. }`.
    Dport(L4, Vec<u16>),
    /// `icmp type { .. }` / `icmpv6 type { .. }` (nft type names).
    IcmpType(Family, Vec<&'static str>),
    /// The first 32 bits of the UDP payload (`@th,64,32`, big-endian) equal this.
    UdpPayloadWord(u32),
}

/// A per-source-address rate limit kept in a dynamic set named `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meter {
    /// Set name, unique in the table.
    pub name: String,
    /// The source address family it keys on.
    pub family: Family,
    /// Packets per second (and burst) a source may send before the rule applies.
    pub per_second: u32,
}

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let through.
    Accept,
    /// Discard.
    Drop,
    /// Source NAT to the outgoing interface's address.
    Masquerade,
}

impl Family {
    /// `ip` or `ip6`, as nft names the header.
    pub fn nft_name(self) -> &'static str {
        match self {
            Self::V4 => "ip",
            Self::V6 => "ip6",
        }
    }
}

impl L4 {
    /// `tcp` or `udp`.
    pub fn nft_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl CtState {
    /// The nft name of the state.
    pub fn nft_name(self) -> &'static str {
        match self {
            Self::Established => "established",
            Self::Related => "related",
            Self::New => "new",
            Self::Invalid => "invalid",
        }
    }
}

impl Ruleset {
    /// The chain named `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// Total number of rules over all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}
