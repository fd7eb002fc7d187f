//! The control protocol's wire messages: a 6-byte header (version u8 = 1, type u8, body length
//! u32 big-endian) and a body whose layout the type fixes. Parsing is strict: an unknown version
//! or type, a body over [`MAX_BODY`], a short field, a bad enum value or a trailing byte is an
//! error, and no input panics.

use super::WgKey;

/// Protocol version carried in every header.
pub const VERSION: u8 = 1;

/// Header bytes.
pub const HEADER_LEN: usize = 6;

/// Largest body accepted, in bytes: a Classic McEliece 460896 public key (524,160 bytes) plus
/// its framing, rounded up to 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// Why bytes are not a message.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Not protocol version 1.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// Unknown message type.
    #[error("unknown message type {0}")]
    Type(u8),
    /// The body length in the header exceeds [`MAX_BODY`].
    #[error("message body of {0} bytes is over the limit")]
    TooLong(u64),
    /// The input ends inside the header or body.
    #[error("message truncated")]
    Truncated,
    /// Bytes left over after the last field.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// An enum field holds an unknown value.
    #[error("unknown {field} value {value}")]
    BadValue {
        /// Field name.
        field: &'static str,
        /// The value.
        value: u8,
    },
}

/// The second KEM negotiated for a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KemId {
    /// No second KEM: the PSK rests on the channel's key exchange alone.
    None,
    /// Classic McEliece 460896 with the responder's long-term static key.
    McEliece460896,
    /// HQC-128 with a fresh key pair per epoch (the initiator's).
    Hqc128,
}

impl KemId {
    fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::McEliece460896 => 1,
            Self::Hqc128 => 2,
        }
    }

    fn from_code(value: u8) -> Result<Self, WireError> {
        match value {
            0 => Ok(Self::None),
            1 => Ok(Self::McEliece460896),
            2 => Ok(Self::Hqc128),
            value => Err(WireError::BadValue {
                field: "kem",
                value,
            }),
        }
    }

    /// The registry name (`pqgate_agility::kem::by_name`), `None` for no KEM.
    pub fn registry_name(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::McEliece460896 => Some("Classic-McEliece-460896"),
            Self::Hqc128 => Some("HQC-128"),
        }
    }

    /// Whether the responder holds a long-term static key (sent once per connection).
    pub fn is_static(self) -> bool {
        matches!(self, Self::McEliece460896)
    }
}

/// Why a responder refused a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The epoch is stale, repeated or too far from the responder's clock.
    BadEpoch,
    /// The KEM input was malformed or the KEM failed.
    Kem,
    /// The exporter or the derivation failed.
    Derive,
    /// A message arrived that the state does not allow.
    Protocol,
}

impl RefuseReason {
    fn code(self) -> u8 {
        match self {
            Self::BadEpoch => 1,
            Self::Kem => 2,
            Self::Derive => 3,
            Self::Protocol => 4,
        }
    }

    fn from_code(value: u8) -> Result<Self, WireError> {
        match value {
            1 => Ok(Self::BadEpoch),
            2 => Ok(Self::Kem),
            3 => Ok(Self::Derive),
            4 => Ok(Self::Protocol),
            value => Err(WireError::BadValue {
                field: "reason",
                value,
            }),
        }
    }
}

/// A control message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Type 1, initiator -> responder, first on a channel: who is talking to whom, which KEM.
    Hello {
        /// The initiator's WireGuard public key.
        initiator: WgKey,
        /// The responder's WireGuard public key, as the initiator expects it.
        responder: WgKey,
        /// The second KEM.
        kem: KemId,
    },
    /// Type 2, responder -> initiator: the responder's static KEM public key.
    StaticKey {
        /// Its KEM.
        kem: KemId,
        /// The public key.
        public: Vec<u8>,
    },
    /// Type 3, initiator -> responder: derive and install `epoch`. `offer` is a ciphertext to the
    /// static key, an ephemeral public key, or empty (no KEM).
    Rotate {
        /// Epoch number.
        epoch: u64,
        /// KEM input.
        offer: Vec<u8>,
    },
    /// Type 4, responder -> initiator: `epoch` is installed. `reply` is the ciphertext to the
    /// initiator's ephemeral key, or empty.
    Installed {
        /// Epoch number.
        epoch: u64,
        /// KEM output.
        reply: Vec<u8>,
    },
    /// Type 5, responder -> initiator: `epoch` was not installed.
    Refuse {
        /// Epoch number.
        epoch: u64,
        /// Why.
        reason: RefuseReason,
    },
}

/// A parsed header: message type and body length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub kind: u8,
    /// Body length in bytes (at most [`MAX_BODY`]).
    pub len: usize,
}

/// Parses and checks a header.
pub fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
    if bytes[0] != VERSION {
        return Err(WireError::Version(bytes[0]));
    }
    let kind = bytes[1];
    if !(1..=5).contains(&kind) {
        return Err(WireError::Type(kind));
    }
    let len = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let len = usize::try_from(len).map_err(|_| WireError::TooLong(u64::from(len)))?;
    if len > MAX_BODY {
        return Err(WireError::TooLong(len as u64));
    }
    Ok(Header { kind, len })
}

/// A cursor that refuses to read past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn key(&mut self) -> Result<WgKey, WireError> {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.take(32)?);
        Ok(k)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let b = self.take(4)?;
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        Ok(self.take(len)?.to_vec())
    }
    fn finish(self) -> Result<(), WireError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

/// Parses the body of a message of type `header.kind`; `body` must be exactly `header.len` bytes.
pub fn decode_body(header: Header, body: &[u8]) -> Result<Message, WireError> {
    if body.len() < header.len {
        return Err(WireError::Truncated);
    }
    if body.len() > header.len {
        return Err(WireError::Trailing(body.len() - header.len));
    }
    let mut r = Reader(body);
    let msg = match header.kind {
        1 => Message::Hello {
            initiator: r.key()?,
            responder: r.key()?,
            kem: KemId::from_code(r.u8()?)?,
        },
        2 => Message::StaticKey {
            kem: KemId::from_code(r.u8()?)?,
            public: r.bytes()?,
        },
        3 => Message::Rotate {
            epoch: r.u64()?,
            offer: r.bytes()?,
        },
        4 => Message::Installed {
            epoch: r.u64()?,
            reply: r.bytes()?,
        },
        5 => Message::Refuse {
            epoch: r.u64()?,
            reason: RefuseReason::from_code(r.u8()?)?,
        },
        kind => return Err(WireError::Type(kind)),
    };
    r.finish()?;
    Ok(msg)
}

/// Parses one whole frame (header and body, nothing after it).
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let head: &[u8; HEADER_LEN] = frame
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::Truncated)?;
    let header = parse_header(head)?;
    decode_body(header, &frame[HEADER_LEN..])
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), WireError> {
    let len = u32::try_from(bytes.len()).map_err(|_| WireError::TooLong(bytes.len() as u64))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Encodes a message as one frame; a body over [`MAX_BODY`] is an error.
pub fn encode(msg: &Message) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::new();
    let kind = match msg {
        Message::Hello {
            initiator,
            responder,
            kem,
        } => {
            body.extend_from_slice(initiator);
            body.extend_from_slice(responder);
            body.push(kem.code());
            1
        }
        Message::StaticKey { kem, public } => {
            body.push(kem.code());
            push_bytes(&mut body, public)?;
            2
        }
        Message::Rotate { epoch, offer } => {
            body.extend_from_slice(&epoch.to_be_bytes());
            push_bytes(&mut body, offer)?;
            3
        }
        Message::Installed { epoch, reply } => {
            body.extend_from_slice(&epoch.to_be_bytes());
            push_bytes(&mut body, reply)?;
            4
        }
        Message::Refuse { epoch, reason } => {
            body.extend_from_slice(&epoch.to_be_bytes());
            body.push(reason.code());
            5
        }
    };
    if body.len() > MAX_BODY {
        return Err(WireError::TooLong(body.len() as u64));
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLong(body.len() as u64))?;
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&[VERSION, kind]);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello {
                initiator: [1; 32],
                responder: [2; 32],
                kem: KemId::Hqc128,
            },
            Message::StaticKey {
                kem: KemId::McEliece460896,
                public: vec![7; 300],
            },
            Message::Rotate {
                epoch: 42,
                offer: vec![9; 156],
            },
            Message::Rotate {
                epoch: u64::MAX,
                offer: Vec::new(),
            },
            Message::Installed {
                epoch: 43,
                reply: vec![3; 17],
            },
            Message::Refuse {
                epoch: 44,
                reason: RefuseReason::BadEpoch,
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let frame = encode(&m).unwrap();
            assert_eq!(decode(&frame).unwrap(), m);
        }
    }

    #[test]
    fn known_bytes_of_a_rotate() {
        let frame = encode(&Message::Rotate {
            epoch: 1,
            offer: vec![0xaa],
        })
        .unwrap();
        assert_eq!(
            frame,
            [1, 3, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa]
        );
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            parse_header(&[2, 1, 0, 0, 0, 0]),
            Err(WireError::Version(2))
        );
        assert_eq!(parse_header(&[1, 0, 0, 0, 0, 0]), Err(WireError::Type(0)));
        assert_eq!(parse_header(&[1, 6, 0, 0, 0, 0]), Err(WireError::Type(6)));
        assert_eq!(
            parse_header(&[1, 2, 0, 0x10, 0, 1]),
            Err(WireError::TooLong(0x10_0001))
        );
        assert!(parse_header(&[1, 2, 0, 0x10, 0, 0]).is_ok());
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        for m in samples() {
            let frame = encode(&m).unwrap();
            for cut in 0..frame.len() {
                assert!(decode(&frame[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            let mut longer = frame.clone();
            longer.push(0);
            assert!(decode(&longer).is_err());
            // A header that claims one more byte, with that byte present: trailing in the body.
            let mut padded = frame.clone();
            let len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) + 1;
            padded[2..6].copy_from_slice(&len.to_be_bytes());
            padded.push(0);
            assert!(decode(&padded).is_err(), "{m:?} padded");
        }
    }

    #[test]
    fn bad_enum_values_are_errors() {
        let mut hello = encode(&samples()[0]).unwrap();
        let last = hello.len() - 1;
        hello[last] = 3;
        assert_eq!(
            decode(&hello),
            Err(WireError::BadValue {
                field: "kem",
                value: 3
            })
        );
        let mut refuse = encode(&samples()[5]).unwrap();
        let last = refuse.len() - 1;
        refuse[last] = 0;
        assert!(matches!(
            decode(&refuse),
            Err(WireError::BadValue {
                field: "reason",
                ..
            })
        ));
    }

    /// A small deterministic generator (xorshift), so the fuzz-ish tests need no RNG crate.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_and_mutated_inputs_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let frames: Vec<Vec<u8>> = samples().iter().map(|m| encode(m).unwrap()).collect();
        let mut parsed = 0;
        for round in 0..20_000 {
            let mut input = if round % 2 == 0 {
                frames[(rng.next() % frames.len() as u64) as usize].clone()
            } else {
                let len = (rng.next() % 80) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            };
            if !input.is_empty() {
                for _ in 0..(rng.next() % 4) {
                    let at = (rng.next() % input.len() as u64) as usize;
                    input[at] = rng.next() as u8;
                }
            }
            // Whatever decodes must re-encode to the same bytes (no lenient parsing).
            if let Ok(m) = decode(&input) {
                assert_eq!(encode(&m).unwrap(), input);
                parsed += 1;
            }
        }
        assert!(parsed > 0, "some mutated frames should still parse");
    }

    #[test]
    fn oversized_bodies_are_not_encoded() {
        let m = Message::StaticKey {
            kem: KemId::McEliece460896,
            public: vec![0; MAX_BODY],
        };
        assert!(matches!(encode(&m), Err(WireError::TooLong(_))));
    }
}
