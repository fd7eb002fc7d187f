//! The ruleset in `nft` syntax, as `nft list table` prints it (so `pqgate firewall show` and
//! `nft -f` agree): for people, and for loading by hand with `nft -f`.

use std::fmt::{self, Display, Formatter, Write};

use super::{Chain, ChainKind, Family, Hook, Match, Meter, Policy, Rule, Ruleset, Verdict};

impl Display for Ruleset {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "table inet {} {{", self.table)?;
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{chain}")?;
        }
        writeln!(f, "}}")
    }
}

impl Display for Chain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tchain {} {{", self.name)?;
        let kind = match self.kind {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        };
        let hook = match self.hook {
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Postrouting => "postrouting",
        };
        let priority = match (self.kind, self.priority) {
            (ChainKind::Filter, 0) => "filter".to_owned(),
            (ChainKind::Nat, 100) => "srcnat".to_owned(),
            (_, p) => p.to_string(),
        };
        let policy = match self.policy {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        };
        writeln!(
            f,
            "\t\ttype {kind} hook {hook} priority {priority}; policy {policy};"
        )?;
        for rule in &self.rules {
            writeln!(f, "\t\t{rule}")?;
        }
        writeln!(f, "\t}}")
    }
}

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        if let Some(meter) = &self.meter {
            write!(f, "{meter} ")?;
        }
        let verdict = match self.verdict {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Masquerade => "masquerade",
        };
        write!(f, "{verdict} comment {:?}", self.comment)
    }
}

impl Display for Meter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let rate = self.per_second;
        write!(
            f,
            "meter {} {{ {} saddr limit rate over {rate}/second burst {rate} packets }}",
            self.name,
            self.family.nft_name()
        )
    }
}

impl Display for Match {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::CtState(states) => {
                let names: Vec<&str> = states.iter().map(|s| s.nft_name()).collect();
                write!(f, "ct state {}", names.join(","))
            }
            Self::IifName(name) => write!(f, "iifname {name:?}"),
            Self::OifName(name) => write!(f, "oifname {name:?}"),
            Self::L4Proto(l4) => write!(f, "meta l4proto {}", l4.nft_name()),
            Self::Saddr(family, nets) => {
                write!(
                    f,
                    "{} saddr {}",
                    family.nft_name(),
                    set(nets.iter().map(cidr))
                )
            }
            Self::Daddr(addr) => write!(f, "{} daddr {addr}", Family::of(*addr).nft_name()),
            Self::Dport(l4, ports) => write!(f, "{} dport {}", l4.nft_name(), set(ports.iter())),
            Self::IcmpType(family, types) => {
                let proto = match family {
                    Family::V4 => "icmp",
                    Family::V6 => "icmpv6",
                };
                write!(f, "{proto} type {}", set(types.iter()))
            }
            Self::UdpPayloadWord(word) => write!(f, "@th,64,32 {word:#x}"),
        }
    }
}

/// A prefix as nft writes it: a bare address for a host route.
fn cidr(c: &crate::wg::IpCidr) -> String {
    let host = match c.addr() {
        std::net::IpAddr::V4(_) => 32,
        std::net::IpAddr::V6(_) => 128,
    };
    match c.prefix() == host {
        true => c.addr().to_string(),
        false => c.network().to_string(),
    }
}

/// One item bare, several as `{ a, b }`.
fn set<T: Display>(items: impl Iterator<Item = T>) -> String {
    let items: Vec<String> = items.map(|i| i.to_string()).collect();
    match items.as_slice() {
        [one] => one.clone(),
        _ => {
            let mut out = String::from("{ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{item}");
            }
            out.push_str(" }");
            out
        }
    }
}
