//! Turns a plugin's AEAD and hash into a rustls TLS 1.3 cipher suite (and, when the AEAD has a
//! 16-byte tag and a header-protection block cipher, its QUIC keys): record protection per RFC
//! 8446 section 5.2, HMAC per RFC 2104 over the plugin hash, HKDF from rustls over that HMAC,
//! QUIC header protection per RFC 9001 section 5.4.

use std::sync::Arc;

use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter,
    Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls13AeadAlgorithm,
    UnsupportedOperationError, make_tls13_aad,
};
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::{hash, hmac};
use rustls::quic;
use rustls::{
    CipherSuite, CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls13CipherSuite,
};

use super::{AeadAlgorithm, HashAlgorithm, SuiteDecl};

/// The first `len` bytes of a key rustls derived for this AEAD (rustls sizes it with
/// `key_len`; a shorter one is passed whole and refused by the plugin).
fn sized(key: &AeadKey, len: usize) -> &[u8] {
    let bytes = key.as_ref();
    &bytes[..len.min(bytes.len())]
}

/// Leaks `value`: suites are built once per process from plugins loaded at start.
fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// Builds the rustls suite for `decl` from the plugin's `aead` and `hash`.
pub fn tls13_suite(
    decl: &SuiteDecl,
    aead: Arc<dyn AeadAlgorithm>,
    hash: Arc<dyn HashAlgorithm>,
) -> SupportedCipherSuite {
    let hash_provider: &'static PluginHash = leak(PluginHash { hash });
    let hmac: &'static PluginHmac = leak(PluginHmac {
        hash: hash_provider,
    });
    let quic: Option<&'static dyn quic::Algorithm> =
        (aead.tag_len() == 16 && aead.block_len() >= 16 && aead.nonce_len() == 12).then(|| {
            leak(PluginQuic {
                aead: aead.clone(),
                confidentiality_limit: decl.max_records_per_key,
                integrity_limit: decl.max_forgeries,
            }) as &'static dyn quic::Algorithm
        });
    let suite: &'static Tls13CipherSuite = leak(Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: CipherSuite::from(decl.code_point),
            hash_provider,
            confidentiality_limit: decl.max_records_per_key,
        },
        hkdf_provider: leak(HkdfUsingHmac(hmac)),
        aead_alg: leak(PluginTlsAead { aead }),
        quic,
    });
    SupportedCipherSuite::Tls13(suite)
}

/// A plugin hash as a rustls hash. rustls needs incremental hashing; the ABI offers one-shot
/// digests, so a context buffers its input (handshake transcripts are a few kilobytes).
struct PluginHash {
    hash: Arc<dyn HashAlgorithm>,
}

impl PluginHash {
    fn digest(&self, data: &[u8]) -> hash::Output {
        // A KAT-verified hash that fails later is a broken plugin: an empty output makes every
        // derived key wrong, so the handshake fails rather than proceeding insecurely.
        let out = self.hash.digest(data).unwrap_or_default();
        hash::Output::new(&out)
    }
}

impl hash::Hash for PluginHash {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(BufferedContext {
            hash: self.hash.clone(),
            data: Vec::new(),
        })
    }
    fn hash(&self, data: &[u8]) -> hash::Output {
        self.digest(data)
    }
    fn output_len(&self) -> usize {
        self.hash.output_len()
    }
    fn algorithm(&self) -> hash::HashAlgorithm {
        // No TLS HashAlgorithm code exists for national hashes; only compared for equality.
        hash::HashAlgorithm::Unknown(0xfe)
    }
}

struct BufferedContext {
    hash: Arc<dyn HashAlgorithm>,
    data: Vec<u8>,
}

impl hash::Context for BufferedContext {
    fn fork_finish(&self) -> hash::Output {
        hash::Output::new(&self.hash.digest(&self.data).unwrap_or_default())
    }
    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(Self {
            hash: self.hash.clone(),
            data: self.data.clone(),
        })
    }
    fn finish(self: Box<Self>) -> hash::Output {
        self.fork_finish()
    }
    fn update(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
    }
}

/// HMAC (RFC 2104) over a plugin hash.
struct PluginHmac {
    hash: &'static PluginHash,
}

impl hmac::Hmac for PluginHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn hmac::Key> {
        let block = self.hash.hash.block_len();
        let mut k = if key.len() > block {
            self.hash.digest(key).as_ref().to_vec()
        } else {
            key.to_vec()
        };
        k.resize(block, 0);
        Box::new(PluginHmacKey {
            hash: self.hash,
            ipad: k.iter().map(|b| b ^ 0x36).collect(),
            opad: k.iter().map(|b| b ^ 0x5c).collect(),
        })
    }
    fn hash_output_len(&self) -> usize {
        self.hash.hash.output_len()
    }
}

struct PluginHmacKey {
    hash: &'static PluginHash,
    ipad: Vec<u8>,
    opad: Vec<u8>,
}

impl hmac::Key for PluginHmacKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> hmac::Tag {
        let mut inner = self.ipad.clone();
        inner.extend_from_slice(first);
        middle.iter().for_each(|m| inner.extend_from_slice(m));
        inner.extend_from_slice(last);
        let mut outer = self.opad.clone();
        outer.extend_from_slice(self.hash.digest(&inner).as_ref());
        hmac::Tag::new(self.hash.digest(&outer).as_ref())
    }
    fn tag_len(&self) -> usize {
        self.hash.hash.output_len()
    }
}

/// A plugin AEAD as TLS 1.3 record protection.
struct PluginTlsAead {
    aead: Arc<dyn AeadAlgorithm>,
}

impl Tls13AeadAlgorithm for PluginTlsAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(RecordProtection::new(self.aead.clone(), key, iv))
    }
    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(RecordProtection::new(self.aead.clone(), key, iv))
    }
    fn key_len(&self) -> usize {
        self.aead.key_len()
    }
    fn extract_keys(
        &self,
        _key: AeadKey,
        _iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Err(UnsupportedOperationError)
    }
}

/// One direction's record key. A key the plugin refuses leaves `key` empty and every record
/// fails, which ends the connection.
struct RecordProtection {
    key: Option<Box<dyn super::AeadKey>>,
    tag_len: usize,
    iv: Iv,
}

impl RecordProtection {
    fn new(aead: Arc<dyn AeadAlgorithm>, key: AeadKey, iv: Iv) -> Self {
        Self {
            key: aead.new_key(sized(&key, aead.key_len())).ok(),
            tag_len: aead.tag_len(),
            iv,
        }
    }
}

impl MessageEncrypter for RecordProtection {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let key = self.key.as_ref().ok_or(Error::EncryptError)?;
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut inner = Vec::with_capacity(msg.payload.len() + 1);
        msg.payload.copy_to_vec(&mut inner);
        inner.push(u8::from(msg.typ));
        let nonce = Nonce::new(&self.iv, seq).0;
        let mut sealed = Vec::with_capacity(total_len);
        key.seal(&nonce, &make_tls13_aad(total_len), &inner, &mut sealed)
            .map_err(|_| Error::EncryptError)?;
        if sealed.len() != total_len {
            return Err(Error::EncryptError);
        }
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_slice(&sealed);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + self.tag_len
    }
}

impl MessageDecrypter for RecordProtection {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let key = self.key.as_ref().ok_or(Error::DecryptError)?;
        let payload = &mut msg.payload;
        if payload.len() < self.tag_len {
            return Err(Error::DecryptError);
        }
        let nonce = Nonce::new(&self.iv, seq).0;
        let mut plain = Vec::with_capacity(payload.len());
        key.open(&nonce, &make_tls13_aad(payload.len()), payload, &mut plain)
            .map_err(|_| Error::DecryptError)?;
        payload[..plain.len()].copy_from_slice(&plain);
        payload.truncate(plain.len());
        msg.into_tls13_unpadded_message()
    }
}

/// QUIC packet protection (RFC 9001 section 5.3) and header protection (section 5.4) from a
/// plugin AEAD and its block cipher.
struct PluginQuic {
    aead: Arc<dyn AeadAlgorithm>,
    confidentiality_limit: u64,
    integrity_limit: u64,
}

impl quic::Algorithm for PluginQuic {
    fn packet_key(&self, key: AeadKey, iv: Iv) -> Box<dyn quic::PacketKey> {
        Box::new(QuicPacketKey {
            key: self.aead.new_key(sized(&key, self.aead.key_len())).ok(),
            iv,
            confidentiality_limit: self.confidentiality_limit,
            integrity_limit: self.integrity_limit,
        })
    }
    fn header_protection_key(&self, key: AeadKey) -> Box<dyn quic::HeaderProtectionKey> {
        Box::new(QuicHeaderKey {
            aead: self.aead.clone(),
            key: sized(&key, self.aead.key_len()).to_vec(),
        })
    }
    fn aead_key_len(&self) -> usize {
        self.aead.key_len()
    }
}

struct QuicPacketKey {
    key: Option<Box<dyn super::AeadKey>>,
    iv: Iv,
    confidentiality_limit: u64,
    integrity_limit: u64,
}

impl quic::PacketKey for QuicPacketKey {
    fn encrypt_in_place(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<quic::Tag, Error> {
        let key = self.key.as_ref().ok_or(Error::EncryptError)?;
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let mut sealed = Vec::with_capacity(payload.len() + 16);
        key.seal(&nonce, header, payload, &mut sealed)
            .map_err(|_| Error::EncryptError)?;
        if sealed.len() != payload.len() + 16 {
            return Err(Error::EncryptError);
        }
        let (body, tag) = sealed.split_at(payload.len());
        payload.copy_from_slice(body);
        Ok(quic::Tag::from(tag))
    }

    fn decrypt_in_place<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a [u8], Error> {
        let key = self.key.as_ref().ok_or(Error::DecryptError)?;
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let mut plain = Vec::with_capacity(payload.len());
        key.open(&nonce, header, payload, &mut plain)
            .map_err(|_| Error::DecryptError)?;
        let n = plain.len();
        payload[..n].copy_from_slice(&plain);
        Ok(&payload[..n])
    }

    fn tag_len(&self) -> usize {
        16
    }
    fn confidentiality_limit(&self) -> u64 {
        self.confidentiality_limit
    }
    fn integrity_limit(&self) -> u64 {
        self.integrity_limit
    }
}

struct QuicHeaderKey {
    aead: Arc<dyn AeadAlgorithm>,
    key: Vec<u8>,
}

impl QuicHeaderKey {
    /// Applies or removes the mask: `masked` says whether `first` is masked on entry.
    fn xor(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
        masked: bool,
    ) -> Result<(), Error> {
        let block = self.aead.block_len();
        if sample.len() < block || packet_number.len() > 4 {
            return Err(Error::General("bad header-protection sample".into()));
        }
        let mut mask = vec![0u8; block];
        self.aead
            .encrypt_block(&self.key, &sample[..block], &mut mask)
            .map_err(|e| Error::General(e.to_string()))?;
        let bits = if *first & 0x80 != 0 { 0x0f } else { 0x1f };
        let plain_first = if masked {
            *first ^ (mask[0] & bits)
        } else {
            *first
        };
        let pn_len = usize::from(plain_first & 0x03) + 1;
        *first ^= mask[0] & bits;
        for (pn, m) in packet_number.iter_mut().zip(&mask[1..]).take(pn_len) {
            *pn ^= m;
        }
        Ok(())
    }
}

impl quic::HeaderProtectionKey for QuicHeaderKey {
    fn encrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.xor(sample, first, packet_number, false)
    }
    fn decrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.xor(sample, first, packet_number, true)
    }
    fn sample_len(&self) -> usize {
        self.aead.block_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{HashKat, PluginError};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use std::io::{Read, Write};

    /// SHA-256 from aws-lc-rs behind the plugin hash trait: stands in for a national hash.
    #[derive(Debug)]
    struct Sha256;

    impl HashAlgorithm for Sha256 {
        fn name(&self) -> &str {
            "test-SHA-256"
        }
        fn output_len(&self) -> usize {
            32
        }
        fn block_len(&self) -> usize {
            64
        }
        fn digest(&self, message: &[u8]) -> Result<Vec<u8>, PluginError> {
            Ok(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message)
                    .as_ref()
                    .to_vec(),
            )
        }
        fn kats(&self) -> &[HashKat] {
            &[]
        }
    }

    fn plugin_suite() -> SupportedCipherSuite {
        let aead = crate::builtin::aeads().remove(0);
        let decl = SuiteDecl {
            name: "TEST_AES_128_GCM_SHA256_VIA_PLUGIN".into(),
            code_point: 0xff42,
            aead: aead.name().into(),
            hash: "test-SHA-256".into(),
            max_records_per_key: 1 << 23,
            max_forgeries: 1 << 52,
            security_bits: 128,
        };
        tls13_suite(&decl, aead, Arc::new(Sha256))
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(CryptoProvider {
            cipher_suites: vec![plugin_suite()],
            kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
            ..rustls::crypto::aws_lc_rs::default_provider()
        })
    }

    fn transfer(client: &mut ClientConnection, server: &mut ServerConnection) {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets().unwrap();
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
    }

    #[test]
    fn a_plugin_suite_completes_a_hybrid_tls13_handshake_and_carries_data() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["plugin.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_der = CertificateDer::from(cert.der().to_vec());
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert_der).unwrap();
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("plugin.test").unwrap();
        let mut client = ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            transfer(&mut client, &mut server);
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(
            client
                .negotiated_cipher_suite()
                .map(|s| u16::from(s.suite())),
            Some(0xff42)
        );
        client.writer().write_all(&[7u8; 12_000]).unwrap();
        transfer(&mut client, &mut server);
        let mut got = vec![0u8; 12_000];
        server.reader().read_exact(&mut got).unwrap();
        assert!(got.iter().all(|&b| b == 7));
    }

    #[test]
    fn quic_header_protection_round_trips() {
        #[derive(Debug)]
        struct WithBlock(Arc<dyn AeadAlgorithm>);
        impl AeadAlgorithm for WithBlock {
            fn name(&self) -> &str {
                self.0.name()
            }
            fn key_len(&self) -> usize {
                self.0.key_len()
            }
            fn nonce_len(&self) -> usize {
                12
            }
            fn tag_len(&self) -> usize {
                16
            }
            fn new_key(&self, key: &[u8]) -> Result<Box<dyn crate::plugin::AeadKey>, PluginError> {
                self.0.new_key(key)
            }
            fn block_len(&self) -> usize {
                16
            }
            fn encrypt_block(
                &self,
                key: &[u8],
                block: &[u8],
                out: &mut [u8],
            ) -> Result<(), PluginError> {
                // A keyed permutation stand-in: xor with the key (test only).
                for (o, (b, k)) in out.iter_mut().zip(block.iter().zip(key)) {
                    *o = b ^ k;
                }
                Ok(())
            }
            fn kats(&self) -> &[crate::plugin::AeadKat] {
                &[]
            }
        }
        let quic = PluginQuic {
            aead: Arc::new(WithBlock(crate::builtin::aeads().remove(0))),
            confidentiality_limit: 1 << 23,
            integrity_limit: 1 << 52,
        };
        let hp = quic::Algorithm::header_protection_key(&quic, AeadKey::from([9u8; 32]));
        let sample = [3u8; 16];
        let (mut first, mut pn) = (0xc3u8, [1u8, 2, 3, 4]);
        hp.encrypt_in_place(&sample, &mut first, &mut pn).unwrap();
        assert_ne!((first, pn), (0xc3, [1, 2, 3, 4]));
        hp.decrypt_in_place(&sample, &mut first, &mut pn).unwrap();
        assert_eq!((first, pn), (0xc3, [1, 2, 3, 4]));
        let pk = quic::Algorithm::packet_key(&quic, AeadKey::from([5u8; 32]), Iv::new([1u8; 12]));
        let mut payload = b"quic payload".to_vec();
        let tag = pk.encrypt_in_place(7, b"header", &mut payload).unwrap();
        payload.extend_from_slice(tag.as_ref());
        let plain = pk.decrypt_in_place(7, b"header", &mut payload).unwrap();
        assert_eq!(plain, b"quic payload");
    }
}
