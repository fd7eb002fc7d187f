//! The rotation machine's crypto for one QUIC connection: its TLS exporter, and the second KEMs
//! from the registry (`pqgate_agility::kem::checked`), with this node's long-term McEliece key.
//! Every peer-supplied KEM input is length-checked before it reaches the KEM.

use std::sync::OnceLock;

use pqgate_agility::kem::{self, Kem, KeyPair};
use pqgate_agility::plugin::PluginError;
use pqgate_core::pqpsk::derive::{CONTEXT_LEN, EXPORTER_LEN};
use pqgate_core::pqpsk::machine::Secret;
use pqgate_core::pqpsk::{ChannelCrypto, CryptoError, EXPORTER_LABEL, KemId};
use zeroize::Zeroizing;

/// This node's long-term KEM keys, made once (at start, or when the first peer that needs one
/// is added).
#[derive(Default)]
pub(super) struct StaticKeys {
    /// Classic McEliece 460896 (key generation ~170 ms: once per node, never per peer).
    pub mceliece: OnceLock<KeyPair>,
}

fn kem_err(op: &'static str, reason: impl ToString) -> CryptoError {
    CryptoError::Kem {
        op,
        reason: reason.to_string(),
    }
}

/// The self-tested KEM behind `id`.
pub(super) fn kem_for(id: KemId) -> Result<&'static dyn Kem, CryptoError> {
    let name = id
        .registry_name()
        .ok_or_else(|| kem_err("select", "no KEM"))?;
    kem::checked(name).map_err(|e| kem_err("select", e))
}

/// Crypto for one connection (or none: `conn` absent means every exporter call fails).
pub(super) struct ConnCrypto<'a> {
    /// The QUIC connection whose TLS session exports keys.
    pub conn: Option<&'a quinn::Connection>,
    /// This node's static keys.
    pub keys: &'a StaticKeys,
}

impl ChannelCrypto for ConnCrypto<'_> {
    fn exporter(
        &self,
        context: &[u8; CONTEXT_LEN],
    ) -> Result<Zeroizing<[u8; EXPORTER_LEN]>, CryptoError> {
        let conn = self.conn.ok_or(CryptoError::Exporter)?;
        let mut out = Zeroizing::new([0u8; EXPORTER_LEN]);
        conn.export_keying_material(&mut out[..], EXPORTER_LABEL, context)
            .map_err(|_| CryptoError::Exporter)?;
        Ok(out)
    }

    fn static_public(&self, id: KemId) -> Result<Vec<u8>, CryptoError> {
        match (id, self.keys.mceliece.get()) {
            (KemId::McEliece460896, Some(pair)) => Ok(pair.public.clone()),
            _ => Err(kem_err("static key", "no static key for this KEM")),
        }
    }

    fn public_key_ok(&self, id: KemId, public: &[u8]) -> bool {
        kem_for(id).is_ok_and(|kem| public.len() == kem.public_key_len())
    }

    fn keypair(&self, id: KemId) -> Result<(Vec<u8>, Secret), CryptoError> {
        let pair = kem_for(id)?.keypair().map_err(|e| kem_err("keypair", e))?;
        Ok((pair.public, pair.secret))
    }

    fn encapsulate(&self, id: KemId, public: &[u8]) -> Result<(Vec<u8>, Secret), CryptoError> {
        let kem = kem_for(id)?;
        if public.len() != kem.public_key_len() {
            return Err(kem_err("encapsulate", "public key of the wrong length"));
        }
        let enc = kem
            .encapsulate(public)
            .map_err(|e| kem_err("encapsulate", e))?;
        Ok((enc.ciphertext, enc.shared))
    }

    fn decapsulate(&self, id: KemId, secret: &[u8], ct: &[u8]) -> Result<Secret, CryptoError> {
        let kem = kem_for(id)?;
        if ct.len() != kem.ciphertext_len() {
            return Err(kem_err("decapsulate", "ciphertext of the wrong length"));
        }
        kem.decapsulate(secret, ct)
            .map_err(|e| kem_err("decapsulate", e))
    }

    fn decapsulate_static(&self, id: KemId, ct: &[u8]) -> Result<Secret, CryptoError> {
        match (id, self.keys.mceliece.get()) {
            (KemId::McEliece460896, Some(pair)) => self.decapsulate(id, &pair.secret, ct),
            _ => Err(kem_err("decapsulate", "no static key for this KEM")),
        }
    }
}

/// Self-tests every KEM in `used` (fail closed: an error here stops the start or the peer's
/// addition) and makes the McEliece key when `need_mceliece` and `keys` lack it. Slow
/// (McEliece): call off the async threads.
pub(super) fn prepare(
    keys: &StaticKeys,
    used: &[KemId],
    need_mceliece: bool,
) -> Result<(), PluginError> {
    for name in used.iter().filter_map(|id| id.registry_name()) {
        kem::checked(name)?;
    }
    if let (true, None, Some(name)) = (
        need_mceliece,
        keys.mceliece.get(),
        KemId::McEliece460896.registry_name(),
    ) {
        let pair = kem::checked(name)?.keypair()?;
        // Another caller may have set it meanwhile: either key serves.
        let _ = keys.mceliece.set(pair);
    }
    Ok(())
}
