//! The 10-byte `struct virtio_net_hdr` (include/uapi/linux/virtio_net.h) that starts every TUN
//! read and write with `IFF_VNET_HDR`: parsed and written in native byte order, as TUN uses it
//! (without `TUNSETVNETLE`/`TUNSETVNETBE`). Parsing checks the layout only; what the fields mean
//! for a packet is checked by [`crate::offload::segment`].

use super::OffloadError;

/// Size of `struct virtio_net_hdr` (TUN's default `TUNSETVNETHDRSZ`), in bytes.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial; finish it from `csum_start`.
pub const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
pub const DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`: one packet.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: TCP over IPv4 segmentation (TSO).
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP`: UDP fragmentation offload (UFO); never enabled, refused.
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: TCP over IPv6 segmentation (TSO).
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: UDP segmentation (USO, Linux 6.2+ on TUN).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: flag bit on `gso_type` (TSO with ECN/CWR); never enabled, refused.
pub const GSO_ECN: u8 = 0x80;

/// Flag bits this codec knows.
const KNOWN_FLAGS: u8 = NEEDS_CSUM | DATA_VALID;

/// One `struct virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `NEEDS_CSUM` and/or `DATA_VALID`.
    pub flags: u8,
    /// One of the `GSO_*` values, possibly with `GSO_ECN`.
    pub gso_type: u8,
    /// Length of the headers before the payload: a hint on reads (the kernel puts the linear
    /// length there), exact on writes.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Offset of the L4 header, where checksumming starts.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (16 for TCP, 6 for UDP).
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Splits a TUN read into its header and the packet behind it; refuses a read shorter than
    /// the header and flag bits it does not know.
    pub fn parse(b: &[u8]) -> Result<(VnetHdr, &[u8]), OffloadError> {
        let Some((head, packet)) = b.split_first_chunk::<VNET_HDR_LEN>() else {
            return Err(OffloadError::Truncated {
                what: "virtio_net_hdr",
                need: VNET_HDR_LEN,
                have: b.len(),
            });
        };
        let hdr = VnetHdr {
            flags: head[0],
            gso_type: head[1],
            hdr_len: u16::from_ne_bytes([head[2], head[3]]),
            gso_size: u16::from_ne_bytes([head[4], head[5]]),
            csum_start: u16::from_ne_bytes([head[6], head[7]]),
            csum_offset: u16::from_ne_bytes([head[8], head[9]]),
        };
        if hdr.flags & !KNOWN_FLAGS != 0 {
            return Err(OffloadError::UnknownFlags(hdr.flags));
        }
        Ok((hdr, packet))
    }

    /// Writes the header in TUN's layout.
    pub fn write(&self, out: &mut [u8; VNET_HDR_LEN]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// Whether this header asks for segmentation (any type but `GSO_NONE`).
    pub fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_native_order() {
        let hdr = VnetHdr {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 0x0102,
            gso_size: 1380,
            csum_start: 40,
            csum_offset: 16,
        };
        let mut out = [0u8; VNET_HDR_LEN];
        hdr.write(&mut out);
        assert_eq!(out[2..4], 0x0102u16.to_ne_bytes());
        let mut read = out.to_vec();
        read.extend_from_slice(b"pkt");
        let (back, rest) = VnetHdr::parse(&read).expect("valid header");
        assert_eq!(back, hdr);
        assert_eq!(rest, b"pkt");
    }

    #[test]
    fn refuses_short_and_unknown_flags() {
        assert!(matches!(
            VnetHdr::parse(&[0; 9]),
            Err(OffloadError::Truncated { have: 9, .. })
        ));
        let mut b = [0u8; 12];
        b[0] = 4;
        assert_eq!(VnetHdr::parse(&b), Err(OffloadError::UnknownFlags(4)));
    }
}
