//! The allowed-IPs table (longest-prefix match from an address to a peer, by linear scan in this
//! slice) and the IP header fields the engine routes on. Never panics on short or odd packets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pqgate_core::wg::IpCidr;

/// Prefix -> peer index. As in WireGuard, a prefix listed by two peers belongs to the later one.
#[derive(Clone, Debug, Default)]
pub struct AllowedIps {
    entries: Vec<(IpCidr, usize)>,
}

impl AllowedIps {
    /// Adds every prefix of peer `peer`, replacing an identical prefix held by another peer.
    pub fn insert(&mut self, cidrs: &[IpCidr], peer: usize) {
        for c in cidrs {
            let net = c.network();
            self.entries.retain(|(e, _)| *e != net);
            self.entries.push((net, peer));
        }
    }

    /// The peer whose prefix contains `ip` most specifically.
    pub fn lookup(&self, ip: IpAddr) -> Option<usize> {
        self.entries
            .iter()
            .filter(|(c, _)| c.contains(ip))
            .max_by_key(|(c, _)| c.prefix())
            .map(|&(_, p)| p)
    }
}

/// The source address of an IPv4 or IPv6 packet, `None` if it is neither or too short.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => Some(IpAddr::V4(v4(packet.get(12..16)?)?)),
        6 => Some(IpAddr::V6(v6(packet.get(8..24)?)?)),
        _ => None,
    }
}

/// The destination address of an IPv4 or IPv6 packet, `None` if it is neither or too short.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => Some(IpAddr::V4(v4(packet.get(16..20)?)?)),
        6 if packet.len() >= 40 => Some(IpAddr::V6(v6(packet.get(24..40)?)?)),
        _ => None,
    }
}

fn v4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

fn v6(b: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> IpCidr {
        s.parse().expect("test prefix")
    }

    #[test]
    fn longest_prefix_wins_and_families_do_not_mix() {
        let mut t = AllowedIps::default();
        t.insert(&[cidr("10.0.0.0/8"), cidr("::/0")], 0);
        t.insert(&[cidr("10.1.0.0/16")], 1);
        assert_eq!(t.lookup("10.1.2.3".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("10.2.2.3".parse().unwrap()), Some(0));
        assert_eq!(t.lookup("11.0.0.1".parse().unwrap()), None);
        assert_eq!(t.lookup("fd00::1".parse().unwrap()), Some(0));
    }

    #[test]
    fn same_prefix_moves_to_the_later_peer() {
        let mut t = AllowedIps::default();
        t.insert(&[cidr("10.0.0.1/32")], 0);
        t.insert(&[cidr("10.0.0.1/32")], 1);
        assert_eq!(t.lookup("10.0.0.1".parse().unwrap()), Some(1));
    }

    #[test]
    fn headers_parse_and_garbage_does_not() {
        let mut p4 = [0u8; 20];
        p4[0] = 0x45;
        p4[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(source(&p4), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(destination(&p4), Some("10.0.0.2".parse().unwrap()));
        let mut p6 = [0u8; 40];
        p6[0] = 0x60;
        p6[23] = 1;
        p6[39] = 2;
        assert_eq!(source(&p6), Some("::1".parse().unwrap()));
        assert_eq!(destination(&p6), Some("::2".parse().unwrap()));
        for bad in [&[][..], &[0x45][..], &p4[..19], &p6[..39], &[0x70; 40][..]] {
            assert_eq!(destination(bad), None);
        }
        assert_eq!(source(&[0x45, 0, 0]), None);
    }
}
