//! IP addresses with a prefix length (`10.0.0.1/24`, `fd00::1/64`; a bare address is a host
//! route), as wg-quick's `Address` and wg's `AllowedIPs` take them. The address is kept as written,
//! host bits included; [`IpCidr::network`] masks them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest IPv4 prefix.
const V4_BITS: u8 = 32;
/// Longest IPv6 prefix.
const V6_BITS: u8 = 128;
/// Most digits a valid prefix length has (`128`).
const MAX_PREFIX_DIGITS: usize = 3;

/// Why a text is not an address with an optional prefix length.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address (IPv4 or IPv6, no zone or port)")]
    Address(String),
    /// The part after `/` is not a decimal number.
    #[error("prefix length {0:?} is not a number")]
    PrefixSyntax(String),
    /// The prefix length exceeds the address size.
    #[error("prefix length /{prefix} is out of range for {family} (0-{max})")]
    PrefixRange {
        /// The length given.
        prefix: u16,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The longest prefix for that family.
        max: u8,
    },
}

/// An IP address and a prefix length no longer than the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// Pairs an address with a prefix length, refusing one longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::PrefixRange {
                prefix: prefix.into(),
                family: family(addr),
                max,
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The host route for one address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The address as written, host bits included.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The same prefix with the host bits cleared (`10.0.0.1/24` -> `10.0.0.0/24`).
    pub fn network(&self) -> Self {
        Self {
            addr: mask(self.addr, self.prefix),
            prefix: self.prefix,
        }
    }

    /// Whether no host bits are set (the address is the network's first address).
    pub fn is_network(&self) -> bool {
        self.network().addr == self.addr
    }

    /// Whether `ip` lies inside this prefix. Families never mix: an IPv4 address is not inside an
    /// IPv6 prefix, IPv4-mapped (`::ffff:a.b.c.d`) included, as in WireGuard's allowed-IPs table.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == mask(self.addr, self.prefix)
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => V4_BITS,
        IpAddr::V6(_) => V6_BITS,
    }
}

fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Clears every bit after the first `prefix` bits (`prefix` is at most the address size).
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::MAX
                .checked_shl(u32::from(V4_BITS - prefix))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & bits))
        }
        IpAddr::V6(a) => {
            let bits = u128::MAX
                .checked_shl(u32::from(V6_BITS - prefix))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & bits))
        }
    }
}

/// Parses `ADDR/PREFIX` or a bare `ADDR` (a host route). No surrounding whitespace.
impl FromStr for IpCidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::Address(addr_text.to_owned()))?;
        let Some(prefix_text) = prefix_text else {
            return Ok(Self::host(addr));
        };
        let prefix = parse_prefix(prefix_text)?;
        let max = max_prefix(addr);
        let prefix =
            u8::try_from(prefix)
                .ok()
                .filter(|&p| p <= max)
                .ok_or(CidrError::PrefixRange {
                    prefix,
                    family: family(addr),
                    max,
                })?;
        Ok(Self { addr, prefix })
    }
}

/// Decimal digits only (no sign, no spaces), at most three of them.
fn parse_prefix(text: &str) -> Result<u16, CidrError> {
    let digits_only = !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit());
    if !digits_only || text.len() > MAX_PREFIX_DIGITS {
        return Err(CidrError::PrefixSyntax(text.to_owned()));
    }
    text.parse()
        .map_err(|_| CidrError::PrefixSyntax(text.to_owned()))
}

/// Always `ADDR/PREFIX`, IPv6 in its canonical (RFC 5952) text form.
impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Config files write prefixes as strings (`"10.0.0.1/24"`).
impl<'de> serde::Deserialize<'de> for IpCidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for IpCidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> IpCidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_v4_and_v6_with_prefix() {
        let c = cidr("10.0.0.1/24");
        assert_eq!((c.addr(), c.prefix()), (ip("10.0.0.1"), 24));
        let c = cidr("fd00::1/64");
        assert_eq!((c.addr(), c.prefix()), (ip("fd00::1"), 64));
        assert_eq!(cidr("10.0.0.1/24").to_string(), "10.0.0.1/24");
        assert_eq!(cidr("FD00:0:0::1/64").to_string(), "fd00::1/64");
    }

    #[test]
    fn bare_address_is_a_host_route() {
        assert_eq!(cidr("192.0.2.7"), IpCidr::new(ip("192.0.2.7"), 32).unwrap());
        assert_eq!(cidr("2001:db8::7").prefix(), 128);
        assert_eq!(cidr("2001:db8::7"), IpCidr::host(ip("2001:db8::7")));
        assert_eq!(cidr("192.0.2.7").to_string(), "192.0.2.7/32");
    }

    #[test]
    fn network_masks_host_bits() {
        assert_eq!(cidr("10.1.2.3/24").network(), cidr("10.1.2.0/24"));
        assert_eq!(cidr("10.1.2.3/9").network(), cidr("10.0.0.0/9"));
        assert_eq!(
            cidr("fd00:1:2:3:4::1/64").network(),
            cidr("fd00:1:2:3::/64")
        );
        assert_eq!(cidr("fd00::ffff/127").network(), cidr("fd00::fffe/127"));
        assert!(!cidr("10.1.2.3/24").is_network());
        assert!(cidr("10.1.2.0/24").is_network());
        assert!(cidr("10.1.2.3").is_network());
    }

    #[test]
    fn zero_prefix_matches_the_whole_family() {
        let any4 = cidr("0.0.0.0/0");
        assert!(any4.contains(ip("255.255.255.255")));
        assert!(any4.contains(ip("0.0.0.0")));
        assert!(!any4.contains(ip("::1")));
        assert_eq!(cidr("10.9.8.7/0").network(), any4);
        let any6 = cidr("::/0");
        assert!(any6.contains(ip("ffff::1")));
        assert!(!any6.contains(ip("10.0.0.1")));
        assert_eq!(cidr("fd00::1/0").network(), any6);
    }

    #[test]
    fn full_prefix_matches_one_address() {
        let h4 = cidr("10.0.0.1/32");
        assert!(h4.contains(ip("10.0.0.1")));
        assert!(!h4.contains(ip("10.0.0.0")));
        assert!(!h4.contains(ip("10.0.0.2")));
        assert_eq!(h4.network(), h4);
        let h6 = cidr("fd00::1/128");
        assert!(h6.contains(ip("fd00::1")));
        assert!(!h6.contains(ip("fd00::")));
        assert!(!h6.contains(ip("fd00::2")));
        assert_eq!(h6.network(), h6);
    }

    #[test]
    fn contains_at_boundaries() {
        let c = cidr("10.0.0.77/24");
        assert!(c.contains(ip("10.0.0.0")));
        assert!(c.contains(ip("10.0.0.255")));
        assert!(!c.contains(ip("10.0.1.0")));
        assert!(!c.contains(ip("9.255.255.255")));
        let c = cidr("fd00:0:0:1::/64");
        assert!(c.contains(ip("fd00:0:0:1:ffff:ffff:ffff:ffff")));
        assert!(!c.contains(ip("fd00:0:0:2::")));
        let odd = cidr("172.16.0.0/12");
        assert!(odd.contains(ip("172.31.255.255")));
        assert!(!odd.contains(ip("172.32.0.0")));
    }

    #[test]
    fn v4_mapped_stays_ipv6() {
        let mapped = cidr("::ffff:10.0.0.0/104");
        assert!(mapped.addr().is_ipv6());
        assert!(mapped.contains(ip("::ffff:10.1.2.3")));
        assert!(!mapped.contains(ip("10.1.2.3")), "families never mix");
        assert!(!cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert_eq!(cidr("::ffff:10.0.0.1").prefix(), 128);
        assert_eq!(cidr("::ffff:10.0.0.1").to_string(), "::ffff:10.0.0.1/128");
    }

    #[test]
    fn prefix_out_of_range() {
        let e = "10.0.0.0/33".parse::<IpCidr>().unwrap_err();
        assert_eq!(
            e,
            CidrError::PrefixRange {
                prefix: 33,
                family: "IPv4",
                max: 32
            }
        );
        assert_eq!(
            e.to_string(),
            "prefix length /33 is out of range for IPv4 (0-32)"
        );
        assert!(matches!(
            "fd00::/129".parse::<IpCidr>(),
            Err(CidrError::PrefixRange { prefix: 129, .. })
        ));
        assert!(matches!(
            "fd00::/999".parse::<IpCidr>(),
            Err(CidrError::PrefixRange { prefix: 999, .. })
        ));
        assert!(IpCidr::new(ip("10.0.0.0"), 33).is_err());
        assert!(IpCidr::new(ip("::"), 129).is_err());
        assert!(IpCidr::new(ip("::"), 128).is_ok());
    }

    #[test]
    fn prefix_syntax_errors() {
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/ 8",
            "10.0.0.0/8 ",
            "10.0.0.0/0x8",
            "10.0.0.0/1000",
            "10.0.0.0/8/8",
            "10.0.0.0/2a",
        ] {
            assert!(
                matches!(bad.parse::<IpCidr>(), Err(CidrError::PrefixSyntax(_))),
                "{bad}"
            );
        }
        // Leading zeroes are only digits.
        assert_eq!(cidr("10.0.0.0/08").prefix(), 8);
    }

    #[test]
    fn address_errors() {
        for bad in [
            "",
            "/24",
            "10.0.0/24",
            "10.0.0.256",
            "fd00::1%eth0/64",
            "[fd00::1]/64",
            " 10.0.0.1",
            "host.example/32",
            "10.0.0.1:51820",
        ] {
            assert!(
                matches!(bad.parse::<IpCidr>(), Err(CidrError::Address(_))),
                "{bad}"
            );
        }
        let e = "nope/8".parse::<IpCidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"nope\" is not an IP address (IPv4 or IPv6, no zone or port)"
        );
    }

    #[test]
    fn orders_and_hashes_as_values() {
        let mut v = vec![cidr("10.0.0.0/8"), cidr("10.0.0.0/8"), cidr("::/0")];
        v.sort();
        v.dedup();
        assert_eq!(v.len(), 2);
    }
}
