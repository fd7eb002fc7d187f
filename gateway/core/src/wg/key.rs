//! WireGuard's 32-byte keys as written by wg(8): 44 characters of canonical standard base64 (the
//! `base64` crate's strict `STANDARD` engine: padding required, no whitespace, no URL-safe
//! alphabet, no stray trailing bits). Public keys print freely; private and pre-shared keys never
//! appear in `Debug` output or in errors, and overwrite their bytes when dropped.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::{DecodeError, DecodeSliceError, Engine as _};

/// Bytes in every WireGuard key (Curve25519 keys and the pre-shared key alike).
pub const KEY_LEN: usize = 32;

/// Length of a key in base64 (32 bytes -> 44 characters, one `=`).
pub const KEY_BASE64_LEN: usize = 44;

/// Which key a value was meant to be, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRole {
    /// An interface's `PrivateKey`.
    Private,
    /// A peer's `PublicKey`.
    Public,
    /// A peer's `PresharedKey`.
    Preshared,
}

impl KeyRole {
    /// Whether values in this role are secret (never echoed).
    pub fn is_secret(self) -> bool {
        !matches!(self, Self::Public)
    }
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Private => "private key",
            Self::Public => "public key",
            Self::Preshared => "pre-shared key",
        })
    }
}

/// Why a 44-character text is not canonical standard base64 of a key. Offsets count bytes from
/// the start of the text.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Base64Error {
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

impl Base64Error {
    /// Names what the `base64` crate refused in `text`, without the refused byte's value where
    /// that is a valid symbol (a secret's last character).
    fn from_decode(text: &str, e: DecodeError) -> Self {
        match e {
            DecodeError::InvalidByte(offset, b'=') => Self::Padding(offset),
            DecodeError::InvalidByte(offset, _) => Self::InvalidChar {
                offset,
                // Every earlier byte was a base64 symbol (ASCII), so `offset` is a character
                // boundary.
                ch: text
                    .get(offset..)
                    .and_then(|t| t.chars().next())
                    .unwrap_or(char::REPLACEMENT_CHARACTER),
            },
            DecodeError::InvalidLastSymbol(offset, _) => Self::NonCanonical(offset),
            DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
                Self::Padding(text.find('=').unwrap_or(text.len()))
            }
        }
    }
}

/// Why a text is not a key. Never contains the text itself: it may be a secret.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 44 characters long.
    #[error("{role} must be {KEY_BASE64_LEN} base64 characters ({KEY_LEN} bytes), got {len}")]
    Length {
        /// The key expected.
        role: KeyRole,
        /// Characters (bytes) given.
        len: usize,
    },
    /// 44 characters, but not canonical base64 of 32 bytes.
    #[error("{role} is not valid base64: {source}")]
    Base64 {
        /// The key expected.
        role: KeyRole,
        /// What is wrong with the encoding.
        #[source]
        source: Base64Error,
    },
}

impl KeyError {
    /// The key that was expected.
    pub fn role(&self) -> KeyRole {
        match self {
            Self::Length { role, .. } | Self::Base64 { role, .. } => *role,
        }
    }
}

/// Decodes a base64 key into its 32 bytes.
fn decode(role: KeyRole, text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    if text.len() != KEY_BASE64_LEN {
        return Err(KeyError::Length {
            role,
            len: text.len(),
        });
    }
    let invalid = |source| KeyError::Base64 { role, source };
    // 44 characters hold at most 33 bytes: one more than a key, so a long text is caught below.
    const MAX: usize = KEY_BASE64_LEN / 4 * 3;
    let mut buf = zeroize::Zeroizing::new([0u8; MAX]);
    let got = STANDARD
        .decode_slice(text, buf.as_mut_slice())
        .map_err(|e| match e {
            DecodeSliceError::DecodeError(e) => invalid(Base64Error::from_decode(text, e)),
            DecodeSliceError::OutputSliceTooSmall => invalid(Base64Error::DecodedLength {
                expected: KEY_LEN,
                got: MAX + 1,
            }),
        })?;
    if got != KEY_LEN {
        return Err(invalid(Base64Error::DecodedLength {
            expected: KEY_LEN,
            got,
        }));
    }
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(&buf[..KEY_LEN]);
    Ok(out)
}

/// A public 32-byte key (a peer's Curve25519 public key). Prints as base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key32([u8; KEY_LEN]);

impl Key32 {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the base64 form; `role` names the key in the error.
    pub fn from_base64(role: KeyRole, text: &str) -> Result<Self, KeyError> {
        decode(role, text).map(Self)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The base64 form, as wg(8) writes it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

/// Parses a public key.
impl FromStr for Key32 {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(KeyRole::Public, s)
    }
}

impl fmt::Display for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key32({self})")
    }
}

/// 32 secret bytes: `Debug` prints `<redacted>`, equality takes the same time whatever the bytes,
/// and drop zeroizes them. Moves may still leave copies on the stack: the daemon should copy live
/// keys into the protocol library's own key types and drop these promptly.
#[derive(Clone)]
struct Secret([u8; KEY_LEN]);

impl Secret {
    /// Overwrites the bytes with zeroes (volatile writes, not optimised away).
    fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let diff = self
            .0
            .iter()
            .zip(&other.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Defines a secret-key newtype over [`Secret`] with the same constructors as [`Key32`].
macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(Secret);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(Secret(bytes))
            }

            /// Parses the base64 form; errors never contain the text.
            pub fn from_base64(text: &str) -> Result<Self, KeyError> {
                decode($role, text).map(|b| Self(Secret(b)))
            }

            /// The raw secret bytes.
            pub const fn expose(&self) -> &[u8; KEY_LEN] {
                &self.0.0
            }

            /// The base64 form, for writing a config file. The returned `String` is not
            /// overwritten when dropped.
            pub fn expose_base64(&self) -> String {
                STANDARD.encode(self.0.0)
            }
        }

        impl FromStr for $name {
            type Err = KeyError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_base64(s)
            }
        }
    };
}

secret_key!(
    /// An interface's Curve25519 private key (any 32 bytes: WireGuard clamps it when used).
    PrivateKey,
    KeyRole::Private
);

secret_key!(
    /// A peer's optional symmetric pre-shared key. All zeroes is what WireGuard uses when none is
    /// set, so it adds nothing.
    PresharedKey,
    KeyRole::Preshared
);

impl PresharedKey {
    /// Whether this is the all-zero key, which WireGuard treats as "no pre-shared key".
    pub fn is_zero(&self) -> bool {
        self.0 == Secret([0; KEY_LEN])
    }
}

/// Config files spell every key in base64; a secret never appears in an error.
impl<'de> serde::Deserialize<'de> for Key32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Public keys print as base64.
impl serde::Serialize for Key32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

/// What a secret key serializes to: `pqgate check` prints the effective config, and a secret must
/// never reach its output.
pub const REDACTED: &str = "(redacted)";

macro_rules! secret_serde {
    ($name:ident) => {
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = zeroize::Zeroizing::new(String::deserialize(d)?);
                Self::from_base64(text.trim()).map_err(serde::de::Error::custom)
            }
        }

        /// Always [`REDACTED`], never the key.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(REDACTED)
            }
        }
    };
}
secret_serde!(PrivateKey);
secret_serde!(PresharedKey);

#[cfg(test)]
mod tests {
    use super::*;

    /// `wg genkey`-shaped sample (not a key used anywhere).
    const SAMPLE: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

    fn sample_bytes() -> [u8; KEY_LEN] {
        STANDARD.decode(SAMPLE).unwrap().try_into().unwrap()
    }

    #[test]
    fn public_key_round_trip_and_display() {
        let key: Key32 = SAMPLE.parse().unwrap();
        assert_eq!(key.to_base64(), SAMPLE);
        assert_eq!(key.to_string(), SAMPLE);
        assert_eq!(format!("{key:?}"), format!("Key32({SAMPLE})"));
        assert_eq!(Key32::from_bytes(*key.as_bytes()), key);
        assert_eq!(key.as_bytes(), &sample_bytes());
    }

    #[test]
    fn all_byte_values_round_trip() {
        for fill in [0u8, 1, 0x7f, 0x80, 0xfe, 0xff] {
            let key = Key32::from_bytes([fill; KEY_LEN]);
            let text = key.to_base64();
            assert_eq!(text.len(), KEY_BASE64_LEN);
            assert_eq!(Key32::from_base64(KeyRole::Public, &text).unwrap(), key);
        }
    }

    #[test]
    fn length_errors_name_the_key() {
        let e = Key32::from_base64(KeyRole::Public, "Zm9v").unwrap_err();
        assert_eq!(
            e,
            KeyError::Length {
                role: KeyRole::Public,
                len: 4
            }
        );
        assert_eq!(
            e.to_string(),
            "public key must be 44 base64 characters (32 bytes), got 4"
        );
        // 33 bytes are also 44 characters (no padding): caught by the decoded length.
        let long = STANDARD.encode([1u8; 33]);
        assert_eq!(long.len(), KEY_BASE64_LEN);
        assert_eq!(
            PrivateKey::from_base64(&long),
            Err(KeyError::Base64 {
                role: KeyRole::Private,
                source: Base64Error::DecodedLength {
                    expected: 32,
                    got: 33
                }
            })
        );
        let long = STANDARD.encode([1u8; 34]);
        assert_eq!(
            PrivateKey::from_base64(&long),
            Err(KeyError::Length {
                role: KeyRole::Private,
                len: 48
            })
        );
        assert_eq!(
            PresharedKey::from_base64("").unwrap_err().role(),
            KeyRole::Preshared
        );
    }

    #[test]
    fn encoding_errors_say_why() {
        let spaced = format!(" {}", &SAMPLE[1..]);
        let e = Key32::from_base64(KeyRole::Public, &spaced).unwrap_err();
        assert_eq!(
            e.to_string(),
            "public key is not valid base64: whitespace ' ' at offset 0"
        );
        // 44 characters with two '=': 31 bytes.
        let short = format!("{}A==", &SAMPLE[..41]);
        let e = Key32::from_base64(KeyRole::Public, &short).unwrap_err();
        assert!(
            e.to_string().contains("decodes to 31 bytes, expected 32"),
            "{e}"
        );
        // Unused low bits set in the last character.
        let mut bad = SAMPLE.to_owned();
        bad.replace_range(42..43, "l");
        let e = Key32::from_base64(KeyRole::Public, &bad).unwrap_err();
        assert!(matches!(
            e,
            KeyError::Base64 {
                source: Base64Error::NonCanonical(42),
                ..
            }
        ));
        // URL-safe alphabet.
        let url = SAMPLE.replace('+', "-");
        assert!(Key32::from_base64(KeyRole::Public, &url).is_err());
        assert!(std::error::Error::source(&e).is_some());
    }

    /// What the hand-written codec this replaced refused, one case per rule, as 44-character keys.
    #[test]
    fn strict_standard_base64_only() {
        let with = |at: usize, ch: &str| {
            let mut t = SAMPLE.to_owned();
            t.replace_range(at..at + 1, ch);
            t
        };
        let cases = [
            // Whitespace anywhere.
            (
                with(0, " "),
                Base64Error::InvalidChar { offset: 0, ch: ' ' },
            ),
            (
                with(20, "\n"),
                Base64Error::InvalidChar {
                    offset: 20,
                    ch: '\n',
                },
            ),
            (
                with(43, "\t"),
                Base64Error::InvalidChar {
                    offset: 43,
                    ch: '\t',
                },
            ),
            // URL-safe alphabet and non-ASCII.
            (
                with(7, "-"),
                Base64Error::InvalidChar { offset: 7, ch: '-' },
            ),
            (
                with(3, "_"),
                Base64Error::InvalidChar { offset: 3, ch: '_' },
            ),
            (
                format!("{}\u{e9}=", &SAMPLE[..41]),
                Base64Error::InvalidChar {
                    offset: 41,
                    ch: '\u{e9}',
                },
            ),
            // Misplaced or excess padding.
            (with(0, "="), Base64Error::Padding(0)),
            (with(41, "="), Base64Error::Padding(41)),
            (format!("{}===", &SAMPLE[..41]), Base64Error::Padding(41)),
            (format!("{}====", &SAMPLE[..40]), Base64Error::Padding(40)),
            (format!("{}==A", &SAMPLE[..41]), Base64Error::Padding(41)),
            // Unused bits set before one or two '='.
            (with(42, "l"), Base64Error::NonCanonical(42)),
            (
                format!("{}Ah==", &SAMPLE[..40]),
                Base64Error::NonCanonical(41),
            ),
            // Canonical, but not 32 bytes.
            (
                format!("{}A==", &SAMPLE[..41]),
                Base64Error::DecodedLength {
                    expected: 32,
                    got: 31,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.len(), KEY_BASE64_LEN, "{text:?}");
            assert_eq!(
                Key32::from_base64(KeyRole::Public, &text),
                Err(KeyError::Base64 {
                    role: KeyRole::Public,
                    source: want
                }),
                "{text:?}"
            );
        }
        let e = Key32::from_base64(KeyRole::Public, &with(7, "-")).unwrap_err();
        assert!(e.to_string().contains("URL-safe"), "{e}");
        // Missing padding is a length error: a key is always 44 characters.
        assert!(matches!(
            Key32::from_base64(KeyRole::Public, &SAMPLE[..43]),
            Err(KeyError::Length { len: 43, .. })
        ));
    }

    #[test]
    fn secret_errors_never_echo_the_text() {
        let secret = format!("{}*", &SAMPLE[..43]);
        for e in [
            PrivateKey::from_base64(&secret).unwrap_err(),
            PresharedKey::from_base64(&secret).unwrap_err(),
            PrivateKey::from_base64(&SAMPLE[..40]).unwrap_err(),
        ] {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(&SAMPLE[..20]), "{shown}");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let private: PrivateKey = SAMPLE.parse().unwrap();
        let psk: PresharedKey = SAMPLE.parse().unwrap();
        assert_eq!(format!("{private:?}"), "PrivateKey(<redacted>)");
        assert_eq!(format!("{psk:?}"), "PresharedKey(<redacted>)");
        assert!(!format!("{private:#?}").contains(&SAMPLE[..10]));
        assert_eq!(private.expose(), &sample_bytes());
        assert_eq!(psk.expose_base64(), SAMPLE);
    }

    #[test]
    fn secret_equality() {
        let a = PrivateKey::from_bytes([1; KEY_LEN]);
        let mut other = [1; KEY_LEN];
        assert_eq!(a, a.clone());
        other[31] = 2;
        assert_ne!(a, PrivateKey::from_bytes(other));
        assert!(PresharedKey::from_bytes([0; KEY_LEN]).is_zero());
        assert!(!PresharedKey::from_bytes(other).is_zero());
    }

    #[test]
    fn secret_wipe_overwrites_the_bytes() {
        // Drop calls wipe; reading memory after drop would need unsafe code.
        let mut secret = Secret([0xa5; KEY_LEN]);
        secret.wipe();
        assert_eq!(secret.0, [0; KEY_LEN]);
    }

    #[test]
    fn serde_parses_base64_without_echoing_secrets() {
        use serde::Deserialize;
        use serde::de::value::{Error, StrDeserializer};
        let de = StrDeserializer::<Error>::new(SAMPLE);
        assert_eq!(
            PrivateKey::deserialize(de).unwrap().expose(),
            &sample_bytes()
        );
        let de = StrDeserializer::<Error>::new(SAMPLE);
        assert_eq!(Key32::deserialize(de).unwrap().as_bytes(), &sample_bytes());
        let bad = format!("{}*", &SAMPLE[..43]);
        let err = PresharedKey::deserialize(StrDeserializer::<Error>::new(&bad)).unwrap_err();
        assert!(!err.to_string().contains(&SAMPLE[..20]), "{err}");
    }

    #[test]
    fn roles() {
        assert!(KeyRole::Private.is_secret());
        assert!(KeyRole::Preshared.is_secret());
        assert!(!KeyRole::Public.is_secret());
        assert_eq!(KeyRole::Preshared.to_string(), "pre-shared key");
    }
}
