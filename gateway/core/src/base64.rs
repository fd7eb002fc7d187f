//! Standard base64 (RFC 4648 section 4: `A-Z a-z 0-9 + /`, `=` padding) encoding and strict
//! decoding: one canonical text per byte string, so no whitespace, no missing or extra padding, no
//! URL-safe alphabet and no non-zero bits after the last encoded byte.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PAD: u8 = b'=';

/// Why a text is not canonical standard base64. Offsets count bytes from the start of the text.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Base64Error {
    /// The length is not a multiple of 4 (padding is required).
    #[error("length {0} is not a multiple of 4 (standard base64 is padded with '=')")]
    Length(usize),
    /// A character outside the standard alphabet.
    #[error("{} at offset {offset}{}", describe(*.ch), hint(*.ch))]
    InvalidChar {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        ch: char,
    },
    /// `=` anywhere but the last one or two characters of the text.
    #[error("misplaced '=' padding at offset {0}")]
    Padding(usize),
    /// The last character before the padding carries bits that no byte uses.
    #[error("non-canonical encoding: unused bits set in the character at offset {0}")]
    NonCanonical(usize),
    /// The text decodes to a different number of bytes than required.
    #[error("decodes to {got} bytes, expected {expected}")]
    DecodedLength {
        /// Bytes required.
        expected: usize,
        /// Bytes the text holds.
        got: usize,
    },
}

fn describe(ch: char) -> String {
    if ch.is_whitespace() {
        format!("whitespace {ch:?}")
    } else {
        format!("invalid character {ch:?}")
    }
}

fn hint(ch: char) -> &'static str {
    match ch {
        '-' | '_' => " (URL-safe base64 is not accepted)",
        _ => "",
    }
}

/// Encodes bytes as padded standard base64.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[sextet as usize]));
            } else {
                out.push(char::from(PAD));
            }
        }
    }
    out
}

/// Decodes canonical padded standard base64.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::with_capacity(decoded_len(text)?);
    decode_each(text, |b| out.push(b))?;
    Ok(out)
}

/// Decodes canonical padded standard base64 of exactly `N` bytes straight into an array (no heap
/// copy, which matters for secret keys).
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], Base64Error> {
    let got = decoded_len(text)?;
    if got != N {
        return Err(Base64Error::DecodedLength { expected: N, got });
    }
    let mut out = [0u8; N];
    let mut at = 0;
    decode_each(text, |b| {
        out[at] = b;
        at += 1;
    })?;
    Ok(out)
}

/// The number of bytes `text` decodes to, judged from its length and padding alone.
fn decoded_len(text: &str) -> Result<usize, Base64Error> {
    let len = text.len();
    if !len.is_multiple_of(4) {
        return Err(Base64Error::Length(len));
    }
    let pad = padding(text.as_bytes())?;
    Ok(len / 4 * 3 - pad)
}

/// Counts the trailing `=` (0 to 2); more is misplaced padding.
fn padding(text: &[u8]) -> Result<usize, Base64Error> {
    let pad = text.iter().rev().take_while(|&&c| c == PAD).count();
    if pad > 2 {
        return Err(Base64Error::Padding(text.len() - pad));
    }
    Ok(pad)
}

/// Decodes a text already known to have a valid length, feeding each byte to `push`.
fn decode_each(text: &str, mut push: impl FnMut(u8)) -> Result<(), Base64Error> {
    let bytes = text.as_bytes();
    let pad = padding(bytes)?;
    let data_len = bytes.len() - pad;
    let mut acc: u32 = 0;
    for (offset, &c) in bytes[..data_len].iter().enumerate() {
        acc = acc << 6 | u32::from(sextet(text, offset, c)?);
        if offset % 4 == 3 {
            push_bytes(acc, 3, &mut push);
            acc = 0;
        }
    }
    let tail = data_len % 4;
    if tail == 0 {
        return Ok(());
    }
    // 2 characters hold 12 bits for 1 byte, 3 hold 18 bits for 2 bytes: the rest must be zero.
    let unused_bits = if tail == 2 { 4 } else { 2 };
    if acc & ((1 << unused_bits) - 1) != 0 {
        return Err(Base64Error::NonCanonical(data_len - 1));
    }
    let out_len = tail - 1;
    push_bytes(acc << (6 * (4 - tail)), out_len, &mut push);
    Ok(())
}

/// Emits the top `count` bytes of a 24-bit group.
fn push_bytes(group: u32, count: usize, push: &mut impl FnMut(u8)) {
    for i in 0..count {
        push((group >> (16 - 8 * i)) as u8);
    }
}

/// The 6-bit value of the character at `offset` (a byte of `text`).
fn sextet(text: &str, offset: usize, c: u8) -> Result<u8, Base64Error> {
    match c {
        b'A'..=b'Z' => Ok(c - b'A'),
        b'a'..=b'z' => Ok(c - b'a' + 26),
        b'0'..=b'9' => Ok(c - b'0' + 52),
        b'+' => Ok(62),
        b'/' => Ok(63),
        PAD => Err(Base64Error::Padding(offset)),
        _ => Err(Base64Error::InvalidChar {
            offset,
            // Every earlier byte was ASCII, so `offset` is a character boundary.
            ch: text[offset..]
                .chars()
                .next()
                .unwrap_or(char::REPLACEMENT_CHARACTER),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10 test vectors.
    const RFC_VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors() {
        for (plain, encoded) in RFC_VECTORS {
            assert_eq!(encode(plain.as_bytes()), *encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes(), "{encoded}");
        }
    }

    #[test]
    fn round_trips_every_length_and_byte() {
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            let bytes = &all[all.len() - len..];
            let text = encode(bytes);
            assert_eq!(text.len(), len.div_ceil(3) * 4);
            assert_eq!(decode(&text).unwrap(), bytes, "len {len}");
        }
    }

    #[test]
    fn uses_the_standard_alphabet() {
        assert_eq!(encode(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn wireguard_key_lengths() {
        let key = [0x42u8; 32];
        let text = encode(&key);
        assert_eq!(text.len(), 44);
        assert!(text.ends_with('=') && !text.ends_with("=="));
        assert_eq!(decode_array::<32>(&text).unwrap(), key);
        assert_eq!(
            decode_array::<32>("Zm9v"),
            Err(Base64Error::DecodedLength {
                expected: 32,
                got: 3
            })
        );
        assert_eq!(decode_array::<0>("").unwrap(), [0u8; 0]);
    }

    #[test]
    fn rejects_bad_lengths() {
        for text in ["Z", "Zm", "Zm9", "Zm9vY", "Zm9vYg="] {
            assert_eq!(decode(text), Err(Base64Error::Length(text.len())), "{text}");
        }
    }

    #[test]
    fn rejects_whitespace_anywhere() {
        assert_eq!(
            decode("Zm9v\nYmFy"),
            Err(Base64Error::Length(9)),
            "odd length caught first"
        );
        assert_eq!(
            decode("Zm 9vYmF"),
            Err(Base64Error::InvalidChar { offset: 2, ch: ' ' })
        );
        assert_eq!(
            decode(" Zm9vYmF"),
            Err(Base64Error::InvalidChar { offset: 0, ch: ' ' })
        );
        assert_eq!(
            decode("Zm9vYmF\t"),
            Err(Base64Error::InvalidChar {
                offset: 7,
                ch: '\t'
            })
        );
        let e = decode("Zm\r\nYmFy").unwrap_err();
        assert_eq!(e.to_string(), "whitespace '\\r' at offset 2");
    }

    #[test]
    fn rejects_other_alphabets_and_non_ascii() {
        let e = decode("-_-_").unwrap_err();
        assert_eq!(e, Base64Error::InvalidChar { offset: 0, ch: '-' });
        assert!(e.to_string().contains("URL-safe"), "{e}");
        assert_eq!(
            decode("Zmé"),
            Err(Base64Error::InvalidChar {
                offset: 2, ch: 'é'
            })
        );
        assert_eq!(
            decode("Zm9v*mFy"),
            Err(Base64Error::InvalidChar { offset: 4, ch: '*' })
        );
    }

    #[test]
    fn rejects_misplaced_padding() {
        assert_eq!(decode("Zg=="), Ok(b"f".to_vec()));
        // Three or four '=' at the end.
        assert_eq!(decode("Z==="), Err(Base64Error::Padding(1)));
        assert_eq!(decode("===="), Err(Base64Error::Padding(0)));
        assert_eq!(decode("Zm9v===="), Err(Base64Error::Padding(4)));
        // Padding inside the text or between groups.
        assert_eq!(decode("Zg==Zm9v"), Err(Base64Error::Padding(2)));
        assert_eq!(decode("Z=g="), Err(Base64Error::Padding(1)));
        assert_eq!(decode("=Zm9"), Err(Base64Error::Padding(0)));
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "Zg==" is 'f'; "Zh==" sets one of the 4 unused bits.
        assert_eq!(decode("Zh=="), Err(Base64Error::NonCanonical(1)));
        // "Zm8=" is "fo"; "Zm9=" sets one of the 2 unused bits.
        assert_eq!(decode("Zm9="), Err(Base64Error::NonCanonical(2)));
        // A WireGuard key whose last character carries an unused bit.
        let text = encode(&[7u8; 32]);
        let mut bad = text.clone().into_bytes();
        bad[42] += 1;
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(decode(&bad), Err(Base64Error::NonCanonical(42)));
    }
}
