//! Internet checksum arithmetic (RFC 1071): ones'-complement sums over big-endian 16-bit words,
//! the IPv4 header checksum and the TCP/UDP pseudo-header sums (RFC 9293 3.1, RFC 768, RFC 8200
//! 8.1). Sums are folded 16-bit values, not complemented; [`finish`] complements.
//!
//! Sums of pieces combine with [`add`] as long as every piece but the last has even length
//! (true for IP, TCP and UDP headers, which are multiples of 4 bytes).

/// Ones'-complement sum of `data` as big-endian 16-bit words, an odd last byte padded with a
/// zero byte; folded to 16 bits, not complemented.
pub fn sum(data: &[u8]) -> u16 {
    // Blocks of 1 GiB (even, so word alignment holds) keep the wide sum far from overflow.
    let mut acc: u64 = 0;
    for block in data.chunks(1 << 30) {
        acc = u64::from(fold(acc + wide_sum(block)));
    }
    let native = fold(acc);
    u16::from_be_bytes(native.to_ne_bytes())
}

/// Unfolded sum of native-endian 16-bit words of `data` (at most 1 GiB).
fn wide_sum(data: &[u8]) -> u64 {
    // RFC 1071 2(B): the sum is byte-order independent up to a final swap, so add native-endian
    // 32-bit words into a u64 (2^32 words would be needed to overflow) and let the caller swap
    // once at the end. This loop vectorises.
    let (words, rest) = data.as_chunks::<4>();
    let mut acc: u64 = words
        .iter()
        .map(|w| u64::from(u32::from_ne_bytes(*w)))
        .sum();
    let (pairs, odd) = rest.as_chunks::<2>();
    for p in pairs {
        acc += u64::from(u16::from_ne_bytes(*p));
    }
    if let Some(&last) = odd.first() {
        acc += u64::from(u16::from_ne_bytes([last, 0]));
    }
    acc
}

/// Ones'-complement addition of two folded sums.
pub fn add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    // At most one carry: 0xffff + 0xffff = 0x1fffe -> 0xffff.
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The checksum to store for a folded sum: its ones' complement.
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// The IPv4 header checksum of `header` (its own checksum field, bytes 10-11, is skipped), to
/// be stored in that field.
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let (before, after) = header.split_at(header.len().min(10));
    let after = after.get(2..).unwrap_or(&[]);
    finish(add(sum(before), sum(after)))
}

/// The IPv4 pseudo-header sum (source, destination, zero, protocol, L4 length).
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u16 {
    add(add(sum(&src), sum(&dst)), add(u16::from(proto), len))
}

/// The IPv6 pseudo-header sum (source, destination, 32-bit upper-layer length, next header).
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, len: u32) -> u16 {
    add(add(sum(src), sum(dst)), add(u16::from(proto), len_sum(len)))
}

/// The pseudo-header sum from the source and destination addresses as they lie in the IP
/// header (8 bytes for IPv4, 32 for IPv6), the protocol and the L4 length.
pub(crate) fn pseudo(addrs: &[u8], proto: u8, len: u32) -> u16 {
    add(sum(addrs), add(u16::from(proto), len_sum(len)))
}

/// A 32-bit length as the sum of its two 16-bit halves.
fn len_sum(len: u32) -> u16 {
    add((len >> 16) as u16, (len & 0xffff) as u16)
}

/// Folds a wide sum of 16-bit words to 16 bits with end-around carries.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word-by-word reference, as RFC 1071 section 4.1 writes it.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            acc += hi | lo;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 works the sum of 00 01 f2 03 f4 f5 f6 f7 by hand: 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(finish(sum(&data)), 0x220d);
        // Split into even pieces, the sums combine.
        assert_eq!(add(sum(&data[..2]), sum(&data[2..])), 0xddf2);
    }

    #[test]
    fn ipv4_header_example() {
        // A well-known header: 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
        // By hand: 4500+0073+0000+4000+4011+c0a8+0001+c0a8+00c7 = 0x2479c -> 0x479e, ~ = 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        assert_eq!(sum(&h), 0xffff, "a valid header sums to all ones");
    }

    #[test]
    fn odd_lengths_and_carries_match_reference() {
        let mut x: u32 = 0x1234_5678;
        let data: Vec<u8> = (0..1501)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for len in [0, 1, 2, 3, 5, 7, 8, 9, 63, 64, 65, 1500, 1501] {
            assert_eq!(sum(&data[..len]), reference(&data[..len]), "len {len}");
        }
        assert_eq!(sum(&[0xff; 4096]), 0xffff);
        assert_eq!(add(0xffff, 0xffff), 0xffff);
    }

    #[test]
    fn pseudo_headers_by_hand() {
        // 10.0.0.1 -> 10.0.0.2, TCP, 20 bytes: 0a00+0001+0a00+0002+0006+0014 = 0x141d.
        assert_eq!(pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 20), 0x141d);
        // fd00::1 -> fd00::2, UDP, 0x10008 bytes: fd00+1+fd00+2+0011+(1+8) = 0x1fa1d -> 0xfa1e.
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = 1;
        let mut b = a;
        b[15] = 2;
        assert_eq!(pseudo_v6(&a, &b, 17, 0x1_0008), 0xfa1e);
    }
}
