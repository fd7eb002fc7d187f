//! The agile tunnel's data packet, byte by byte (docs/design/agile-tunnel.md): a 16-byte header (type
//! 0x11, key phase, two zero bytes, receiver index u32 LE, counter u64 LE) that is also the AEAD's
//! associated data; the nonce (per-direction IV xor the counter, as RFC 8446 section 5.3); the
//! zero padding of the inner IP packet and its removal. Pure functions over caller buffers.

/// First byte of an agile data packet. WireGuard uses 1-4 and QUIC sets the 0x40 bit (when
/// `grease_quic_bit` is off on both ends), so one UDP port tells the three apart.
pub const MSG_TYPE: u8 = 0x11;

/// Header bytes: type, key phase, two reserved zero bytes, receiver index, counter.
pub const HEADER_LEN: usize = 16;

/// Plaintext is zero-padded to a multiple of this many bytes (as WireGuard), up to the MTU.
pub const PAD_MULTIPLE: usize = 16;

/// Shortest nonce the counter fits in (8 bytes of counter).
pub const MIN_NONCE_LEN: usize = 8;

/// Longest nonce accepted (the plugin ABI's own bound).
pub const MAX_NONCE_LEN: usize = 32;

/// IPv4 header: total length at bytes 2..4.
const IPV4_MIN_HEADER: usize = 20;

/// IPv6 fixed header: payload length at bytes 4..6, excluding these 40 bytes.
const IPV6_HEADER: usize = 40;

/// Why a datagram is not a well-formed agile header. The sender (or the path) is to blame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Shorter than the header plus the tag.
    #[error("truncated agile packet ({0} bytes)")]
    Truncated(usize),
    /// The first byte is not [`MSG_TYPE`].
    #[error("not an agile data packet (type {0:#04x})")]
    NotAgile(u8),
    /// A reserved byte is not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
}

/// The header's variable fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The receiver's index for this peer, direction and epoch.
    pub receiver: u32,
    /// The key generation within the epoch, modulo 256 (0 for the exporter's key, +1 per key
    /// update): tells the receiver whether the current, the next or the previous key seals it.
    pub phase: u8,
    /// The packet counter (nonce input), from 0 per key.
    pub counter: u64,
}

impl Header {
    /// The 16 header bytes (also the AAD).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = MSG_TYPE;
        out[1] = self.phase;
        out[4..8].copy_from_slice(&self.receiver.to_le_bytes());
        out[8..16].copy_from_slice(&self.counter.to_le_bytes());
        out
    }

    /// Parses the header of `datagram`, which must hold at least `HEADER_LEN + tag_len` bytes.
    pub fn parse(datagram: &[u8], tag_len: usize) -> Result<Self, HeaderError> {
        let Some(head) = datagram.first_chunk::<HEADER_LEN>() else {
            return Err(HeaderError::Truncated(datagram.len()));
        };
        if head[0] != MSG_TYPE {
            return Err(HeaderError::NotAgile(head[0]));
        }
        if datagram.len() < HEADER_LEN.saturating_add(tag_len) {
            return Err(HeaderError::Truncated(datagram.len()));
        }
        if head[2..4] != [0, 0] {
            return Err(HeaderError::Reserved);
        }
        let mut receiver = [0u8; 4];
        receiver.copy_from_slice(&head[4..8]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&head[8..16]);
        Ok(Self {
            receiver: u32::from_le_bytes(receiver),
            phase: head[1],
            counter: u64::from_le_bytes(counter),
        })
    }
}

/// Whether `datagram` starts like an agile data packet (the engine's demultiplexer).
pub fn is_agile(datagram: &[u8]) -> bool {
    datagram.first() == Some(&MSG_TYPE)
}

/// Writes the nonce for `counter` into `out`: `iv` xor the counter as a big-endian integer
/// right-aligned to the nonce length. `out` and `iv` have the same length, at least
/// [`MIN_NONCE_LEN`] (checked when keys are installed); otherwise only the overlap is copied.
pub fn nonce_into(iv: &[u8], counter: u64, out: &mut [u8]) {
    for (o, i) in out.iter_mut().zip(iv) {
        *o = *i;
    }
    let tail = out.len().saturating_sub(8);
    for (o, c) in out[tail..].iter_mut().zip(counter.to_be_bytes()) {
        *o ^= c;
    }
}

/// The padded plaintext length for an inner packet of `len` bytes: rounded up to a multiple of
/// [`PAD_MULTIPLE`] but never past `mtu` (and never below `len`).
pub fn padded_len(len: usize, mtu: usize) -> usize {
    let rounded = len.div_ceil(PAD_MULTIPLE).saturating_mul(PAD_MULTIPLE);
    rounded.min(mtu).max(len)
}

/// The inner packet's own length from its IP header: 0 for an empty plaintext (keepalive), the
/// IPv4 total length or 40 + the IPv6 payload length; `None` when the header is not IPv4/IPv6,
/// is cut, or claims more than `plaintext` holds.
pub fn inner_len(plaintext: &[u8]) -> Option<usize> {
    let first = match plaintext.first() {
        None => return Some(0),
        Some(b) => *b,
    };
    let (len, min) = match first >> 4 {
        4 => (usize::from(read_u16(plaintext, 2)?), IPV4_MIN_HEADER),
        6 => (
            IPV6_HEADER.checked_add(usize::from(read_u16(plaintext, 4)?))?,
            IPV6_HEADER,
        ),
        _ => return None,
    };
    (len >= min && len <= plaintext.len()).then_some(len)
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_layout() {
        let h = Header {
            receiver: 0x0403_0201,
            phase: 0xfe,
            counter: 0x0807_0605_0403_0201,
        };
        let bytes = h.encode();
        assert_eq!(
            bytes,
            [0x11, 0xfe, 0, 0, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        let mut dgram = bytes.to_vec();
        dgram.extend_from_slice(&[0u8; 16]);
        assert_eq!(Header::parse(&dgram, 16), Ok(h));
    }

    #[test]
    fn header_refusals() {
        let mut d = Header {
            receiver: 1,
            phase: 0,
            counter: 2,
        }
        .encode()
        .to_vec();
        assert_eq!(Header::parse(&d, 16), Err(HeaderError::Truncated(16)));
        assert_eq!(Header::parse(&d[..15], 0), Err(HeaderError::Truncated(15)));
        assert_eq!(Header::parse(&[], 0), Err(HeaderError::Truncated(0)));
        d.extend_from_slice(&[0u8; 16]);
        for at in 2..4 {
            let mut bad = d.clone();
            bad[at] = 0x80;
            assert_eq!(Header::parse(&bad, 16), Err(HeaderError::Reserved));
        }
        let mut phased = d.clone();
        phased[1] = 0x80;
        assert_eq!(Header::parse(&phased, 16).map(|h| h.phase), Ok(0x80));
        for t in [1u8, 4, 0x40, 0xc0, 0x10, 0x12] {
            let mut bad = d.clone();
            bad[0] = t;
            assert_eq!(Header::parse(&bad, 16), Err(HeaderError::NotAgile(t)));
            assert!(!is_agile(&bad));
        }
        assert!(is_agile(&d));
    }

    #[test]
    fn nonce_is_iv_xor_big_endian_counter_right_aligned() {
        let iv = [0xffu8; 12];
        let mut out = [0u8; 12];
        nonce_into(&iv, 0x0102_0304_0506_0708, &mut out);
        assert_eq!(
            out,
            [
                0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7
            ]
        );
        let iv8 = [0u8; 8];
        let mut out8 = [0u8; 8];
        nonce_into(&iv8, 1, &mut out8);
        assert_eq!(out8, [0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn padding_rounds_up_to_the_mtu_only() {
        assert_eq!(padded_len(0, 1420), 0);
        assert_eq!(padded_len(1, 1420), 16);
        assert_eq!(padded_len(16, 1420), 16);
        assert_eq!(padded_len(1419, 1420), 1420);
        assert_eq!(padded_len(1420, 1420), 1420);
        assert_eq!(padded_len(1415, 1418), 1418);
        assert_eq!(padded_len(1500, 1420), 1500);
    }

    #[test]
    fn inner_length_from_ip_headers() {
        assert_eq!(inner_len(&[]), Some(0));
        let mut v4 = vec![0u8; 48];
        v4[0] = 0x45;
        v4[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(inner_len(&v4), Some(40));
        v4[2..4].copy_from_slice(&49u16.to_be_bytes());
        assert_eq!(inner_len(&v4), None);
        v4[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(inner_len(&v4), None);
        let mut v6 = vec![0u8; 64];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(inner_len(&v6), Some(48));
        v6[4..6].copy_from_slice(&25u16.to_be_bytes());
        assert_eq!(inner_len(&v6), None);
        assert_eq!(inner_len(&[0x45, 0]), None);
        assert_eq!(inner_len(&[0x60; 5]), None);
        assert_eq!(inner_len(&[0x00; 64]), None);
    }
}
