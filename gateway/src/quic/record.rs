//! Learns which key-exchange group and cipher suite a QUIC handshake negotiated, which quinn
//! does not expose: the provider's groups and suites are wrapped so that using one notes its
//! name in a thread-local slot, and a wrapped quinn session reads that slot around each
//! synchronous handshake step and returns the result as [`QuicHandshake`].
//!
//! Only the negotiated group completes a key exchange (`complete` on the client,
//! `start_and_complete` on the server), and only the negotiated suite derives handshake and
//! 1-RTT packet keys (the Initial keys come from the separate RFC 9001 initial suite, which is
//! not wrapped), so the slot never holds a merely offered algorithm.

use std::any::Any;
use std::cell::Cell;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use quinn_proto::crypto::{
    self as qc, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, UnsupportedVersion,
};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectError, ConnectionId, Side, TransportError};
use rustls::crypto::{
    ActiveKeyExchange, CompletedKeyExchange, CryptoProvider, SharedSecret, SupportedKxGroup,
};
use rustls::quic::HeaderProtectionKey;
use rustls::{CipherSuite, CipherSuiteCommon, NamedGroup, SupportedCipherSuite, Tls13CipherSuite};

thread_local! {
    /// What the handshake step running on this thread negotiated.
    static SEEN: Cell<(Option<NamedGroup>, Option<CipherSuite>)> = const { Cell::new((None, None)) };
}

fn note_group(g: NamedGroup) {
    SEEN.with(|s| s.set((Some(g), s.get().1)));
}

fn note_suite(c: CipherSuite) {
    SEEN.with(|s| s.set((s.get().0, Some(c))));
}

/// What a QUIC connection's handshake data holds (from `Connection::handshake_data`).
#[derive(Clone, Debug, Default)]
pub(crate) struct QuicHandshake {
    /// Negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// Negotiated key-exchange group.
    pub group: Option<NamedGroup>,
    /// Negotiated cipher suite.
    pub suite: Option<CipherSuite>,
}

impl QuicHandshake {
    /// Reads the facts off an established connection.
    pub(crate) fn of(conn: &quinn::Connection) -> Self {
        conn.handshake_data()
            .and_then(|d| d.downcast::<Self>().ok())
            .map(|b| *b)
            .unwrap_or_default()
    }
}

/// Returns `provider` with every group and suite wrapped (wrappers are made once per algorithm
/// and process, so reloads do not allocate new ones).
pub(crate) fn recording_provider(provider: &CryptoProvider) -> CryptoProvider {
    CryptoProvider {
        kx_groups: provider.kx_groups.iter().map(|g| wrap_group(*g)).collect(),
        cipher_suites: provider
            .cipher_suites
            .iter()
            .map(|s| match s {
                SupportedCipherSuite::Tls13(t) => SupportedCipherSuite::Tls13(wrap_suite(t)),
                other => *other,
            })
            .collect(),
        ..provider.clone()
    }
}

/// Looks `key` up in `cache` or leaks one new wrapper for it (bounded by the algorithms that
/// exist: a handful per process).
fn cached<T: ?Sized + 'static, K: PartialEq + Copy + Send + 'static>(
    cache: &'static OnceLock<Mutex<Vec<(K, &'static T)>>>,
    key: K,
    make: impl FnOnce() -> &'static T,
) -> &'static T {
    let mut list = cache
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((_, w)) = list.iter().find(|(k, _)| *k == key) {
        return w;
    }
    let w = make();
    list.push((key, w));
    w
}

type GroupCache = OnceLock<Mutex<Vec<(usize, &'static dyn SupportedKxGroup)>>>;
type SuiteCache = OnceLock<Mutex<Vec<(usize, &'static Tls13CipherSuite)>>>;

fn wrap_group(inner: &'static dyn SupportedKxGroup) -> &'static dyn SupportedKxGroup {
    static CACHE: GroupCache = OnceLock::new();
    let key = std::ptr::from_ref(inner).cast::<()>() as usize;
    cached(&CACHE, key, || Box::leak(Box::new(Group(inner))))
}

fn wrap_suite(inner: &'static Tls13CipherSuite) -> &'static Tls13CipherSuite {
    static CACHE: SuiteCache = OnceLock::new();
    let key = std::ptr::from_ref(inner) as usize;
    cached(&CACHE, key, || {
        let quic = inner.quic.map(|q| {
            let w: &'static dyn rustls::quic::Algorithm = Box::leak(Box::new(Algorithm {
                inner: q,
                suite: inner.common.suite,
            }));
            w
        });
        Box::leak(Box::new(Tls13CipherSuite {
            common: CipherSuiteCommon {
                suite: inner.common.suite,
                hash_provider: inner.common.hash_provider,
                confidentiality_limit: inner.common.confidentiality_limit,
            },
            hkdf_provider: inner.hkdf_provider,
            aead_alg: inner.aead_alg,
            quic,
        }))
    })
}

#[derive(Debug)]
struct Group(&'static dyn SupportedKxGroup);

impl SupportedKxGroup for Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(Active(self.0.start()?)))
    }

    fn start_and_complete(&self, peer: &[u8]) -> Result<CompletedKeyExchange, rustls::Error> {
        let done = self.0.start_and_complete(peer)?;
        note_group(done.group);
        Ok(done)
    }

    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        self.0.ffdhe_group()
    }

    fn name(&self) -> NamedGroup {
        self.0.name()
    }

    fn fips(&self) -> bool {
        self.0.fips()
    }

    fn usable_for_version(&self, version: rustls::ProtocolVersion) -> bool {
        self.0.usable_for_version(version)
    }
}

struct Active(Box<dyn ActiveKeyExchange>);

impl ActiveKeyExchange for Active {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let group = self.0.group();
        let secret = self.0.complete(peer)?;
        note_group(group);
        Ok(secret)
    }

    fn hybrid_component(&self) -> Option<(NamedGroup, &[u8])> {
        self.0.hybrid_component()
    }

    fn complete_hybrid_component(
        self: Box<Self>,
        peer: &[u8],
    ) -> Result<SharedSecret, rustls::Error> {
        let group = self.0.hybrid_component().map(|(g, _)| g);
        let secret = self.0.complete_hybrid_component(peer)?;
        if let Some(g) = group {
            note_group(g);
        }
        Ok(secret)
    }

    fn pub_key(&self) -> &[u8] {
        self.0.pub_key()
    }

    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        self.0.ffdhe_group()
    }

    fn group(&self) -> NamedGroup {
        self.0.group()
    }
}

struct Algorithm {
    inner: &'static dyn rustls::quic::Algorithm,
    suite: CipherSuite,
}

impl rustls::quic::Algorithm for Algorithm {
    fn packet_key(
        &self,
        key: rustls::crypto::cipher::AeadKey,
        iv: rustls::crypto::cipher::Iv,
    ) -> Box<dyn rustls::quic::PacketKey> {
        note_suite(self.suite);
        self.inner.packet_key(key, iv)
    }

    fn header_protection_key(
        &self,
        key: rustls::crypto::cipher::AeadKey,
    ) -> Box<dyn HeaderProtectionKey> {
        self.inner.header_protection_key(key)
    }

    fn aead_key_len(&self) -> usize {
        self.inner.aead_key_len()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// A quinn session that notes the negotiated group and suite.
struct Session {
    inner: Box<dyn qc::Session>,
    group: Option<NamedGroup>,
    suite: Option<CipherSuite>,
}

impl Session {
    fn wrap(inner: Box<dyn qc::Session>) -> Box<dyn qc::Session> {
        Box::new(Self {
            inner,
            group: None,
            suite: None,
        })
    }

    /// Runs one synchronous handshake step and keeps what it noted.
    fn step<T>(&mut self, f: impl FnOnce(&mut dyn qc::Session) -> T) -> T {
        SEEN.with(|s| s.set((None, None)));
        let out = f(&mut *self.inner);
        let (group, suite) = SEEN.with(|s| s.replace((None, None)));
        self.group = group.or(self.group);
        self.suite = suite.or(self.suite);
        out
    }
}

impl qc::Session for Session {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        let data = self.inner.handshake_data()?;
        let alpn = data
            .downcast::<quinn_proto::crypto::rustls::HandshakeData>()
            .ok()
            .and_then(|d| d.protocol);
        Some(Box::new(QuicHandshake {
            alpn,
            group: self.group,
            suite: self.suite,
        }))
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.inner.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        self.step(|s| s.read_handshake(buf))
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        self.step(|s| s.write_handshake(buf))
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.step(|s| s.next_1rtt_keys())
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}

/// A server crypto config whose sessions record what they negotiate.
pub(crate) struct RecordingServer(pub Arc<dyn qc::ServerConfig>);

impl qc::ServerConfig for RecordingServer {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.0.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.0.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn qc::Session> {
        Session::wrap(self.0.clone().start_session(version, params))
    }
}

/// A client crypto config whose sessions record what they negotiate.
pub(crate) struct RecordingClient(pub Arc<dyn qc::ClientConfig>);

impl qc::ClientConfig for RecordingClient {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn qc::Session>, ConnectError> {
        let inner = self.0.clone().start_session(version, server_name, params)?;
        Ok(Session::wrap(inner))
    }
}
