//! Published known-answer vectors for SM4-GCM, SM4 and SM3; each one names its source. The C ABI
//! descriptor points at these same bytes, so the compiled-in and run-time paths check one set.

/// One SM4-GCM vector: `seal(key, nonce, aad, plaintext) == ciphertext` (tag appended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AeadVector {
    /// Where the vector is published.
    pub source: &'static str,
    /// 16-byte key.
    pub key: &'static [u8],
    /// 12-byte nonce.
    pub nonce: &'static [u8],
    /// Associated data.
    pub aad: &'static [u8],
    /// Plaintext.
    pub plaintext: &'static [u8],
    /// Ciphertext with the 16-byte tag appended.
    pub ciphertext: &'static [u8],
}

/// One SM3 vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashVector {
    /// Where the vector is published.
    pub source: &'static str,
    /// Message.
    pub message: &'static [u8],
    /// 32-byte digest.
    pub digest: &'static [u8],
}

/// One raw SM4 block encryption vector (the header-protection primitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockVector {
    /// Where the vector is published.
    pub source: &'static str,
    /// 16-byte key.
    pub key: &'static [u8],
    /// One 16-byte block.
    pub plaintext: &'static [u8],
    /// Its encryption.
    pub ciphertext: &'static [u8],
}

/// Decodes hex at compile time; a malformed literal fails the build.
const fn hex<const N: usize>(s: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let s = s.as_bytes();
    assert!(s.len() == 2 * N, "hex literal has the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(s[2 * i]) << 4) | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

/// SM4-GCM: RFC 8998 Appendix A.1 ("SM4-GCM Test Vectors"). The RFC lists the ciphertext and the
/// tag separately; here the tag is appended, as the ABI's `ciphertext` field wants.
pub const SM4_GCM_KATS: [AeadVector; 1] = [AeadVector {
    source: "RFC 8998, Appendix A.1",
    key: &hex::<16>("0123456789ABCDEFFEDCBA9876543210"),
    nonce: &hex::<12>("00001234567800000000ABCD"),
    aad: &hex::<20>("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2"),
    plaintext: &hex::<64>(concat!(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB",
        "CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFF",
        "EEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
    )),
    ciphertext: &hex::<80>(concat!(
        "17F399F08C67D5EE19D0DC9969C4BB7D",
        "5FD46FD3756489069157B282BB200735",
        "D82710CA5C22F0CCFA7CBF93D496AC15",
        "A56834CBCF98C397B4024A2691233B8D",
        // Authentication Tag
        "83DE3541E4C2B58177E065A9BF7B62EC",
    )),
}];

/// SM3: the two examples of the SM3 specification (GB/T 32905-2016 / GM/T 0004-2012,
/// Appendix A): "abc" (one block after padding) and "abcd" x 16 (64 bytes, two blocks).
pub const SM3_KATS: [HashVector; 2] = [
    HashVector {
        source: "GB/T 32905-2016 (GM/T 0004-2012) Appendix A, example 1",
        message: b"abc",
        digest: &hex::<32>("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    },
    HashVector {
        source: "GB/T 32905-2016 (GM/T 0004-2012) Appendix A, example 2",
        message: b"abcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcd",
        digest: &hex::<32>("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
    },
];

/// Raw SM4: GB/T 32907-2016 (GM/T 0002-2012) Appendix A, example 1 (one encryption).
pub const SM4_BLOCK_KATS: [BlockVector; 1] = [BlockVector {
    source: "GB/T 32907-2016 (GM/T 0002-2012) Appendix A.1",
    key: &hex::<16>("0123456789abcdeffedcba9876543210"),
    plaintext: &hex::<16>("0123456789abcdeffedcba9876543210"),
    ciphertext: &hex::<16>("681edf34d206965e86b3e94f536e4246"),
}];
