//! The allowed-IPs table: longest-prefix match from an address to a peer, through one
//! path-compressed binary trie per address family, so that lookup, insert and remove cost
//! O(prefix bits) whatever the number of peers and a lookup allocates nothing. Never panics on
//! odd input.

use std::net::IpAddr;

use super::IpCidr;

/// Prefix -> peer index. A prefix belongs to one peer: as in WireGuard, the later assignment
/// wins. IPv4 and IPv6 live in separate tries, so families never mix (an IPv4-mapped IPv6
/// address is looked up as IPv6).
#[derive(Clone, Debug, Default)]
pub struct AllowedIps {
    v4: Trie,
    v6: Trie,
}

impl AllowedIps {
    /// Assigns every prefix (host bits ignored) to peer `peer`, taking it from any other peer.
    pub fn insert(&mut self, cidrs: &[IpCidr], peer: usize) {
        for c in cidrs {
            self.assign(*c, peer);
        }
    }

    /// Assigns one prefix (host bits ignored) to `peer`; returns its previous owner, which may
    /// be `peer` itself.
    pub fn assign(&mut self, cidr: IpCidr, peer: usize) -> Option<usize> {
        let (trie, key, len) = self.slot_mut(cidr);
        trie.insert(key, len, peer)
    }

    /// Removes the prefix (host bits ignored) if `peer` holds it; returns whether it did.
    pub fn remove(&mut self, cidr: IpCidr, peer: usize) -> bool {
        if self.owner(cidr) != Some(peer) {
            return false;
        }
        let (trie, key, len) = self.slot_mut(cidr);
        trie.remove(key, len).is_some()
    }

    /// The peer holding exactly this prefix (host bits ignored).
    pub fn owner(&self, cidr: IpCidr) -> Option<usize> {
        let (key, len) = key_of(cidr);
        self.trie(cidr.addr()).get(key, len)
    }

    /// The peer whose prefix contains `ip` most specifically.
    pub fn lookup(&self, ip: IpAddr) -> Option<usize> {
        self.trie(ip).lookup(address_key(ip))
    }

    /// Whether `ip` routes to `peer` (the inbound source check).
    pub fn allows(&self, ip: IpAddr, peer: usize) -> bool {
        self.lookup(ip) == Some(peer)
    }

    /// How many prefixes are held.
    pub fn len(&self) -> usize {
        self.v4.len + self.v6.len
    }

    /// Whether no prefix is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every prefix.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    fn trie(&self, ip: IpAddr) -> &Trie {
        match ip {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => &self.v6,
        }
    }

    fn slot_mut(&mut self, cidr: IpCidr) -> (&mut Trie, u128, u8) {
        let (key, len) = key_of(cidr);
        let trie = match cidr.addr() {
            IpAddr::V4(_) => &mut self.v4,
            IpAddr::V6(_) => &mut self.v6,
        };
        (trie, key, len)
    }
}

/// The address bits left-aligned in a `u128` (IPv4 in the top 32 bits).
fn address_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_bits()) << 96,
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// A prefix as (left-aligned masked bits, length).
fn key_of(cidr: IpCidr) -> (u128, u8) {
    let len = cidr.prefix();
    (address_key(cidr.addr()) & mask(len), len)
}

/// The first `len` bits set (`len` at most 128).
fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Bit `i` of `key`, counting from the most significant (`i` below 128).
fn bit(key: u128, i: u8) -> usize {
    usize::from((key >> (127 - u32::from(i.min(127)))) & 1 == 1)
}

/// No node.
const NIL: usize = usize::MAX;

/// A trie node: a prefix, the peer holding it (if any) and the children by the next bit.
/// Invariant: a node either holds a value or has two children (path compression), its key has
/// no bit set past `len`, and a child's prefix extends its parent's.
#[derive(Clone, Copy, Debug)]
struct Node {
    key: u128,
    child: [usize; 2],
    value: Option<usize>,
    len: u8,
}

/// Where a node hangs: the root, or a parent's child slot.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Child(usize, usize),
}

/// A path-compressed binary trie over left-aligned keys, nodes in an arena with a free list.
/// Depth is at most the longest prefix plus one, so every operation is O(prefix bits).
#[derive(Clone, Debug)]
struct Trie {
    nodes: Vec<Node>,
    free: Vec<usize>,
    root: usize,
    len: usize,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            len: 0,
        }
    }
}

impl Trie {
    fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i)
    }

    fn lookup(&self, key: u128) -> Option<usize> {
        let mut best = None;
        let mut at = self.root;
        while let Some(n) = self.node(at) {
            if (key ^ n.key) & mask(n.len) != 0 {
                break;
            }
            best = n.value.or(best);
            if n.len >= 128 {
                break;
            }
            at = n.child[bit(key, n.len)];
        }
        best
    }

    /// The node holding exactly (`key`, `len`), with the link it hangs from and its parent's.
    fn find(&self, key: u128, len: u8) -> Option<(usize, Link, Link)> {
        let (mut link, mut parent) = (Link::Root, Link::Root);
        let mut at = self.root;
        while let Some(n) = self.node(at) {
            if n.len > len || (key ^ n.key) & mask(n.len) != 0 {
                return None;
            }
            if n.len == len {
                return Some((at, link, parent));
            }
            parent = link;
            link = Link::Child(at, bit(key, n.len));
            at = n.child[bit(key, n.len)];
        }
        None
    }

    fn get(&self, key: u128, len: u8) -> Option<usize> {
        let (at, _, _) = self.find(key, len)?;
        self.node(at)?.value
    }

    fn target(&self, link: Link) -> usize {
        match link {
            Link::Root => self.root,
            Link::Child(p, side) => self.node(p).map_or(NIL, |n| n.child[side]),
        }
    }

    fn set_link(&mut self, link: Link, to: usize) {
        match link {
            Link::Root => self.root = to,
            Link::Child(p, side) => {
                if let Some(n) = self.nodes.get_mut(p) {
                    n.child[side] = to;
                }
            }
        }
    }

    fn alloc(&mut self, node: Node) -> usize {
        match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.nodes.get_mut(i) {
                    *slot = node;
                }
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    fn release(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            *n = Node {
                key: 0,
                child: [NIL; 2],
                value: None,
                len: 0,
            };
            self.free.push(i);
        }
    }

    /// Stores `value` under (`key`, `len`); returns the value it replaced.
    fn insert(&mut self, key: u128, len: u8, value: usize) -> Option<usize> {
        let leaf = Node {
            key,
            child: [NIL; 2],
            value: Some(value),
            len,
        };
        let mut link = Link::Root;
        loop {
            let at = self.target(link);
            let Some(&n) = self.node(at) else {
                let new = self.alloc(leaf);
                self.set_link(link, new);
                self.len += 1;
                return None;
            };
            let common = ((key ^ n.key).leading_zeros() as u8).min(len).min(n.len);
            if common == n.len && common == len {
                let old = self.nodes.get_mut(at)?.value.replace(value);
                if old.is_none() {
                    self.len += 1;
                }
                return old;
            }
            if common == n.len {
                link = Link::Child(at, bit(key, n.len));
                continue;
            }
            // `n` leaves the path here: the new prefix sits above it, or a branch holds both.
            let above = if common == len {
                let mut node = leaf;
                node.child[bit(n.key, len)] = at;
                self.alloc(node)
            } else {
                let new = self.alloc(leaf);
                let mut branch = Node {
                    key: key & mask(common),
                    child: [NIL; 2],
                    value: None,
                    len: common,
                };
                branch.child[bit(key, common)] = new;
                branch.child[bit(n.key, common)] = at;
                self.alloc(branch)
            };
            self.set_link(link, above);
            self.len += 1;
            return None;
        }
    }

    /// Removes (`key`, `len`); returns the value it held. Nodes left with neither a value nor
    /// two children are spliced out, so the trie stays as if the prefix had never been added.
    fn remove(&mut self, key: u128, len: u8) -> Option<usize> {
        let (at, link, parent) = self.find(key, len)?;
        let n = *self.node(at)?;
        let old = n.value?;
        self.len = self.len.saturating_sub(1);
        match n.child {
            [a, b] if a != NIL && b != NIL => {
                if let Some(node) = self.nodes.get_mut(at) {
                    node.value = None;
                }
            }
            [only, NIL] | [NIL, only] if only != NIL => {
                self.set_link(link, only);
                self.release(at);
            }
            _ => {
                self.set_link(link, NIL);
                self.release(at);
                self.splice_parent(link, parent);
            }
        }
        Some(old)
    }

    /// After a leaf under `link` went away: its parent, if it holds no value, has one child
    /// left and is replaced by it.
    fn splice_parent(&mut self, link: Link, parent_link: Link) {
        let Link::Child(p, side) = link else {
            return;
        };
        let Some(&pn) = self.node(p) else {
            return;
        };
        if pn.value.is_some() {
            return;
        }
        let other = pn.child[1 - side];
        self.set_link(parent_link, other);
        self.release(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn cidr(s: &str) -> IpCidr {
        s.parse().expect("test prefix")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    impl Trie {
        /// Checks the invariants; returns the number of reachable nodes.
        fn check(&self) -> usize {
            let mut seen = 0;
            let mut values = 0;
            let mut stack = vec![(self.root, None::<(u128, u8, usize)>)];
            while let Some((at, parent)) = stack.pop() {
                if at == NIL {
                    continue;
                }
                let n = self.nodes[at];
                seen += 1;
                values += usize::from(n.value.is_some());
                assert_eq!(n.key & !mask(n.len), 0, "host bits in {n:?}");
                assert!(
                    n.value.is_some() || (n.child[0] != NIL && n.child[1] != NIL),
                    "a node with neither a value nor two children: {n:?}"
                );
                if let Some((pk, pl, side)) = parent {
                    assert!(n.len > pl, "child not longer than its parent");
                    assert_eq!((n.key ^ pk) & mask(pl), 0, "child outside its parent");
                    assert_eq!(bit(n.key, pl), side, "child on the wrong side");
                }
                for side in 0..2 {
                    stack.push((n.child[side], Some((n.key, n.len, side))));
                }
            }
            assert_eq!(values, self.len, "value count");
            assert_eq!(seen + self.free.len(), self.nodes.len(), "leaked nodes");
            seen
        }
    }

    #[test]
    fn longest_prefix_wins_and_families_do_not_mix() {
        let mut t = AllowedIps::default();
        t.insert(&[cidr("10.0.0.0/8"), cidr("::/0")], 0);
        t.insert(&[cidr("10.1.0.0/16")], 1);
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(1));
        assert_eq!(t.lookup(ip("10.2.2.3")), Some(0));
        assert_eq!(t.lookup(ip("11.0.0.1")), None);
        assert_eq!(t.lookup(ip("fd00::1")), Some(0));
        assert_eq!(
            t.lookup(ip("::ffff:10.1.2.3")),
            Some(0),
            "mapped stays IPv6"
        );
        t.insert(&[cidr("0.0.0.0/0")], 2);
        assert_eq!(t.lookup(ip("11.0.0.1")), Some(2));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn same_prefix_moves_to_the_later_peer() {
        let mut t = AllowedIps::default();
        assert_eq!(t.assign(cidr("10.0.0.1/32"), 0), None);
        assert_eq!(t.assign(cidr("10.0.0.1/32"), 1), Some(0));
        assert_eq!(t.assign(cidr("10.0.0.1/32"), 1), Some(1));
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(1));
        assert!(!t.remove(cidr("10.0.0.1/32"), 0), "only the owner removes");
        assert_eq!(t.owner(cidr("10.0.0.1/32")), Some(1));
        assert!(t.remove(cidr("10.0.0.1/32"), 1));
        assert_eq!(t.lookup(ip("10.0.0.1")), None);
        assert!(t.is_empty());
    }

    #[test]
    fn host_bits_are_ignored_and_removal_restores_shorter_prefixes() {
        let mut t = AllowedIps::default();
        t.insert(&[cidr("10.1.2.3/16")], 0);
        t.insert(&[cidr("10.1.2.0/24"), cidr("10.1.2.128/25")], 1);
        assert_eq!(t.owner(cidr("10.1.0.0/16")), Some(0));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(1));
        assert!(t.allows(ip("10.1.2.200"), 1) && !t.allows(ip("10.1.2.200"), 0));
        assert!(t.remove(cidr("10.1.2.128/25"), 1));
        assert!(t.remove(cidr("10.1.2.0/24"), 1));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(0));
        assert_eq!(t.v4.check(), 1);
        assert!(t.remove(cidr("10.1.0.0/16"), 0));
        assert_eq!(t.v4.check(), 0);
        assert_eq!(t.v4.root, NIL);
        t.insert(&[cidr("fd00::1/128"), cidr("fd00::/127")], 3);
        assert_eq!(t.lookup(ip("fd00::1")), Some(3));
        assert_eq!(t.lookup(ip("fd00::2")), None);
    }

    /// xorshift64*: a fixed-seed generator, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The obvious table: a list scanned in full, later assignment wins.
    #[derive(Default)]
    struct Naive(Vec<(IpCidr, usize)>);

    impl Naive {
        fn assign(&mut self, c: IpCidr, peer: usize) -> Option<usize> {
            let net = c.network();
            let old = self.0.iter().position(|(e, _)| *e == net);
            let prev = old.map(|i| self.0.remove(i).1);
            self.0.push((net, peer));
            prev
        }

        fn remove(&mut self, c: IpCidr, peer: usize) -> bool {
            let net = c.network();
            let before = self.0.len();
            self.0.retain(|e| *e != (net, peer));
            self.0.len() != before
        }

        fn lookup(&self, ip: IpAddr) -> Option<usize> {
            self.0
                .iter()
                .filter(|(c, _)| c.contains(ip))
                .max_by_key(|(c, _)| c.prefix())
                .map(|&(_, p)| p)
        }
    }

    /// Addresses that share long prefixes, so prefixes nest and branch often.
    fn random_address(rng: &mut Rng, v6: bool) -> IpAddr {
        let noise = rng.next() & rng.next();
        if v6 {
            let base: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0000;
            let x = (u128::from(noise) << rng.below(64)) ^ u128::from(rng.below(4));
            IpAddr::V6(Ipv6Addr::from_bits(base ^ x))
        } else {
            let x = (noise as u32) >> rng.below(32);
            IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 ^ x))
        }
    }

    fn random_prefix(rng: &mut Rng) -> IpCidr {
        let v6 = rng.below(3) == 0;
        let addr = random_address(rng, v6);
        let max = if v6 { 129 } else { 33 };
        let len = if rng.below(2) == 0 {
            max - 1
        } else {
            rng.below(max)
        };
        IpCidr::new(addr, len as u8).expect("length in range")
    }

    #[test]
    fn matches_a_naive_table_under_random_changes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut t, mut naive) = (AllowedIps::default(), Naive::default());
        let mut used: Vec<IpCidr> = Vec::new();
        for step in 0..6_000 {
            let peer = rng.below(8) as usize;
            match rng.below(10) {
                0..=4 => {
                    let c = random_prefix(&mut rng);
                    used.push(c);
                    assert_eq!(t.assign(c, peer), naive.assign(c, peer), "assign {c}");
                }
                5..=7 if !used.is_empty() => {
                    let c = used[rng.below(used.len() as u64) as usize];
                    let owner = if rng.below(2) == 0 { t.owner(c) } else { None };
                    let who = owner.unwrap_or(peer);
                    assert_eq!(t.remove(c, who), naive.remove(c, who), "remove {c}");
                }
                _ => {}
            }
            for _ in 0..8 {
                let v6 = rng.below(3) == 0;
                let a = random_address(&mut rng, v6);
                assert_eq!(t.lookup(a), naive.lookup(a), "lookup {a} at step {step}");
            }
            assert_eq!(t.len(), naive.0.len());
            if step % 500 == 0 {
                t.v4.check();
                t.v6.check();
            }
        }
        for (c, p) in &naive.0 {
            assert_eq!(t.owner(*c), Some(*p), "{c}");
        }
        let all: Vec<_> = naive.0.clone();
        for (c, p) in all {
            assert!(t.remove(c, p));
        }
        assert!(t.is_empty());
        assert_eq!((t.v4.check(), t.v6.check()), (0, 0));
    }

    #[test]
    fn nodes_are_reused_and_bounded() {
        let mut t = AllowedIps::default();
        for round in 0..3 {
            for i in 0..1_000u32 {
                let c = IpCidr::host(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + i * 7)));
                assert_eq!(t.assign(c, i as usize), None, "round {round}");
            }
            // A path-compressed trie holds at most 2n - 1 nodes for n prefixes.
            assert!(t.v4.check() < 2_000);
            for i in 0..1_000u32 {
                let c = IpCidr::host(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + i * 7)));
                assert!(t.remove(c, i as usize));
            }
            assert!(t.v4.nodes.len() < 2_000, "freed nodes are reused");
        }
    }
}
