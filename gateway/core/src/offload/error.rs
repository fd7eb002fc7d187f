//! The one error type of the offload codec: every way a virtio header or packet can be malformed,
//! plus caller misuse of the lower-level API.

/// Why a TUN read cannot be segmented (or a segment not written).
///
/// All variants but [`OffloadError::BufferTooSmall`] blame the input (the kernel or whoever wrote
/// the packet); `BufferTooSmall` blames the caller.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffloadError {
    /// Fewer bytes than a header needs.
    #[error("truncated {what}: {need} bytes needed, {have} present")]
    Truncated {
        /// Which header.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The packet is longer than any TUN read or IP length field allows.
    #[error("packet of {0} bytes exceeds the 65,535-byte limit")]
    TooLong(usize),
    /// Flag bits other than `NEEDS_CSUM` and `DATA_VALID`.
    #[error("unknown virtio_net_hdr flags {0:#04x}")]
    UnknownFlags(u8),
    /// A GSO type this codec does not split (UFO, unknown values).
    #[error("unsupported GSO type {0:#04x}")]
    UnsupportedGsoType(u8),
    /// The ECN GSO bit: only offered to readers that enable `TUN_F_TSO_ECN`, which we do not.
    #[error("GSO with the ECN bit set (TUN_F_TSO_ECN is never enabled)")]
    Ecn,
    /// A GSO packet with `gso_size` 0.
    #[error("GSO packet with gso_size 0")]
    ZeroGsoSize,
    /// The IP version nibble is not 4 or 6, or does not match the GSO type.
    #[error("IP version {version} does not fit GSO type {gso_type:#04x}")]
    IpVersion {
        /// The version nibble.
        version: u8,
        /// The GSO type.
        gso_type: u8,
    },
    /// An IP length field disagrees with the bytes present.
    #[error("IP length field says {field} bytes, packet has {actual}")]
    IpLength {
        /// Total length the header declares.
        field: usize,
        /// Bytes present.
        actual: usize,
    },
    /// IPv4 header length below 20 or past the end.
    #[error("bad IPv4 header length {0}")]
    Ipv4HeaderLength(usize),
    /// IPv4 options on a GSO packet (the kernel never builds one; segments would need them copied).
    #[error("IPv4 options on a GSO packet")]
    Ipv4Options,
    /// A fragment on a GSO packet.
    #[error("IP fragment on a GSO packet")]
    Fragment,
    /// The transport protocol (or IPv6 next header) does not match the GSO type.
    #[error("protocol {found} where GSO type needs {expected}")]
    Protocol {
        /// Protocol the GSO type implies.
        expected: u8,
        /// Protocol (next header) found.
        found: u8,
    },
    /// `csum_start`/`csum_offset` point outside the packet or away from the L4 checksum.
    #[error("csum_start {start} + csum_offset {offset} invalid for a {len}-byte packet")]
    Checksum {
        /// `csum_start`.
        start: usize,
        /// `csum_offset`.
        offset: usize,
        /// Packet length.
        len: usize,
    },
    /// TCP data offset below 5 words or past the end.
    #[error("bad TCP header length {0}")]
    TcpHeaderLength(usize),
    /// The UDP length field disagrees with the IP payload length.
    #[error("UDP length field {field}, IP payload {actual}")]
    UdpLength {
        /// Length the UDP header declares.
        field: usize,
        /// IP payload bytes.
        actual: usize,
    },
    /// `hdr_len` points past the end of the packet.
    #[error("hdr_len {hdr_len} past the end of a {len}-byte packet")]
    HdrLen {
        /// `hdr_len`.
        hdr_len: usize,
        /// Packet length.
        len: usize,
    },
    /// A GSO packet without payload.
    #[error("GSO packet without payload")]
    EmptyPayload,
    /// Caller misuse: the output buffer cannot hold the segment.
    #[error("output buffer of {have} bytes, segment needs {need}")]
    BufferTooSmall {
        /// Bytes the segment needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// Caller misuse: a segment index past [`crate::offload::Plan::count`].
    #[error("segment {index} of {count}")]
    SegmentIndex {
        /// Index asked for.
        index: usize,
        /// Segments in the plan.
        count: usize,
    },
}
