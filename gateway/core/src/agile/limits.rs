//! How many packets one agile key may seal, and how many forgeries it may see, per AEAD
//! (RFC 9001 section 6.6 and appendix B; draft-irtf-cfrg-aead-limits), with a soft limit at
//! which the sender updates its key, and an operator's lower cap. Plugin AEADs take the limit their suite declares, or a
//! conservative default. Pure data; docs/design/agile-tunnel.md explains each number.

use pqgate_agility::plugin::AeadAlgorithm;
use pqgate_agility::selftest::names;

use super::wire::HEADER_LEN;

/// AES-GCM with packets (AAD + plaintext) of at most 2^11 bytes = 2^7 blocks: RFC 9001 B.1.1,
/// `q <= 2^35 / l` for an attacker advantage of 2^-57, gives 2^28 packets.
pub const AES_GCM_SMALL_PACKETS: u64 = 1 << 28;

/// Largest AAD + plaintext (bytes) for which [`AES_GCM_SMALL_PACKETS`] holds.
pub const AES_GCM_SMALL_PACKET_BYTES: usize = 1 << 11;

/// AES-GCM with packets up to 2^16 bytes (l = 2^12 blocks): RFC 9001 section 6.6, 2^23.
pub const AES_GCM_ANY_PACKETS: u64 = 1 << 23;

/// AES-GCM integrity limit: 2^52 forged packets (RFC 9001 section 6.6).
pub const AES_GCM_FORGERIES: u64 = 1 << 52;

/// ChaCha20-Poly1305 confidentiality: more than the 2^62 packets a counter may reach (RFC 9001
/// section 6.6), so the counter cap applies.
pub const CHACHA_PACKETS: u64 = MAX_COUNTER;

/// ChaCha20-Poly1305 integrity limit: 2^36 forged packets (RFC 9001 section 6.6).
pub const CHACHA_FORGERIES: u64 = 1 << 36;

/// No key seals more than 2^62 packets whatever its AEAD claims (QUIC's packet-number space;
/// far from the u64 wrap).
pub const MAX_COUNTER: u64 = 1 << 62;

/// A plugin AEAD whose suite declares nothing: AES-GCM's bound for any packet size, the most
/// conservative of the standard 128-bit-block AEADs.
pub const DEFAULT_PLUGIN_PACKETS: u64 = AES_GCM_ANY_PACKETS;

/// A plugin AEAD's forgery limit: ChaCha20-Poly1305's, the lower of the standard ones (the
/// registry exposes a plugin's declared `max_forgeries` only inside its QUIC algorithm).
pub const DEFAULT_PLUGIN_FORGERIES: u64 = CHACHA_FORGERIES;

/// Key generations per epoch (key updates + 1 is the count of keys an epoch may use): far beyond
/// any rate (2^32 updates of 2^21 packets or more each).
pub const MAX_GENERATION: u64 = u32::MAX as u64;

/// Why limits are refused: the caller is to blame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// `soft` above `hard`, or a zero `hard` or `integrity`.
    #[error("inconsistent limits: soft {soft}, hard {hard}, integrity {integrity}")]
    Inconsistent {
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
        /// Integrity limit.
        integrity: u64,
    },
}

/// Per-key usage limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    soft: u64,
    hard: u64,
    integrity: u64,
    last_generation: u64,
}

impl Limits {
    /// `hard` packets per key (counters `0..hard`), `integrity` failed opens per key; the soft
    /// limit, where the sender updates its key, is three quarters of `hard` (the last quarter is
    /// for an epoch whose key generations ran out, until the channel delivers a new epoch). Both are capped at [`MAX_COUNTER`] and raised to at least 1.
    pub fn new(hard: u64, integrity: u64) -> Self {
        let hard = hard.clamp(1, MAX_COUNTER);
        Self {
            soft: hard - hard / 4,
            hard,
            integrity: integrity.max(1),
            last_generation: MAX_GENERATION,
        }
    }

    /// Explicit limits (tests use tiny ones).
    pub fn with_soft(soft: u64, hard: u64, integrity: u64) -> Result<Self, LimitsError> {
        if soft > hard || hard == 0 || integrity == 0 || hard > MAX_COUNTER {
            return Err(LimitsError::Inconsistent {
                soft,
                hard,
                integrity,
            });
        }
        Ok(Self {
            soft,
            hard,
            integrity,
            last_generation: MAX_GENERATION,
        })
    }

    /// These limits with key generations `0..=last` per epoch (tests use few; the default is
    /// [`MAX_GENERATION`], which the value is capped at).
    pub fn with_last_generation(self, last: u64) -> Self {
        Self {
            last_generation: last.min(MAX_GENERATION),
            ..self
        }
    }

    /// The last key generation an epoch may use; past its soft limit the sender needs a new
    /// epoch.
    pub fn last_generation(&self) -> u64 {
        self.last_generation
    }

    /// These limits with at most `max_packets` packets per key (an operator's policy: keys
    /// change more often, never less). `None` keeps them.
    pub fn capped(self, max_packets: Option<u64>) -> Self {
        match max_packets {
            Some(max) if max < self.hard => Self {
                last_generation: self.last_generation,
                ..Self::new(max, self.integrity)
            },
            _ => self,
        }
    }

    /// The first counter at which the sender updates its key.
    pub fn soft(&self) -> u64 {
        self.soft
    }

    /// The first counter never used (packets per key).
    pub fn hard(&self) -> u64 {
        self.hard
    }

    /// Failed opens after which a receiving key is retired.
    pub fn integrity(&self) -> u64 {
        self.integrity
    }

    /// The limits of a built-in AEAD for plaintexts of at most `max_plaintext` bytes.
    pub fn builtin(aead: &str, max_plaintext: usize) -> Option<Self> {
        match aead {
            names::AES_128_GCM | names::AES_256_GCM => {
                let small = max_plaintext.saturating_add(HEADER_LEN) <= AES_GCM_SMALL_PACKET_BYTES;
                let packets = if small {
                    AES_GCM_SMALL_PACKETS
                } else {
                    AES_GCM_ANY_PACKETS
                };
                Some(Self::new(packets, AES_GCM_FORGERIES))
            }
            names::CHACHA20_POLY1305 => Some(Self::new(CHACHA_PACKETS, CHACHA_FORGERIES)),
            _ => None,
        }
    }

    /// A receiver's limits for `aead`: the most any conforming sender may put under one key,
    /// whatever its MTU and operator cap (both only lower the sender's limits). Receivers use
    /// these, so two peers need not agree on MTU or `agile_key_packets`. `declared`: as for
    /// [`Limits::for_aead`].
    pub fn for_receiving(aead: &dyn AeadAlgorithm, declared: Option<u64>) -> Self {
        Self::for_aead(aead, declared, 0)
    }

    /// The limits for `aead`: a built-in's own, else `declared` (the confidentiality limit a
    /// TLS 1.3 suite built on this AEAD declares: the registry's
    /// `aead_confidentiality_limit`), else [`DEFAULT_PLUGIN_PACKETS`]; forgeries
    /// [`DEFAULT_PLUGIN_FORGERIES`].
    pub fn for_aead(aead: &dyn AeadAlgorithm, declared: Option<u64>, max_plaintext: usize) -> Self {
        if let Some(limits) = Self::builtin(aead.name(), max_plaintext) {
            return limits;
        }
        Self::new(
            declared
                .filter(|&limit| limit > 0)
                .unwrap_or(DEFAULT_PLUGIN_PACKETS),
            DEFAULT_PLUGIN_FORGERIES,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pqgate_agility::Registry;

    /// The limits the daemon computes: the AEAD with what the registry's suites declare.
    fn from_registry(registry: &Registry, aead: &dyn AeadAlgorithm, mtu: usize) -> Limits {
        Limits::for_aead(aead, registry.aead_confidentiality_limit(aead.name()), mtu)
    }

    #[test]
    fn builtin_numbers() {
        let aes = Limits::builtin(names::AES_256_GCM, 1420).unwrap();
        assert_eq!(aes.hard(), 1 << 28);
        assert_eq!(aes.soft(), (1 << 28) - (1 << 26));
        assert_eq!(aes.integrity(), 1 << 52);
        assert_eq!(
            Limits::builtin(names::AES_256_GCM, 2032).unwrap().hard(),
            1 << 28
        );
        assert_eq!(
            Limits::builtin(names::AES_128_GCM, 2033).unwrap().hard(),
            1 << 23
        );
        assert_eq!(
            Limits::builtin(names::AES_256_GCM, 9000).unwrap().hard(),
            1 << 23
        );
        let chacha = Limits::builtin(names::CHACHA20_POLY1305, 65535).unwrap();
        assert_eq!(chacha.hard(), 1 << 62);
        assert_eq!(chacha.integrity(), 1 << 36);
        assert_eq!(Limits::builtin("SM4-GCM", 1420), None);
    }

    #[test]
    fn new_clamps_and_with_soft_checks() {
        assert_eq!(Limits::new(0, 0), Limits::with_soft(1, 1, 1).unwrap());
        assert_eq!(Limits::new(u64::MAX, 5).hard(), MAX_COUNTER);
        assert!(Limits::with_soft(5, 4, 1).is_err());
        assert!(Limits::with_soft(0, 0, 1).is_err());
        assert!(Limits::with_soft(1, 2, 0).is_err());
        assert!(Limits::with_soft(1, MAX_COUNTER + 1, 1).is_err());
        let l = Limits::with_soft(2, 4, 3).unwrap();
        assert_eq!((l.soft(), l.hard(), l.integrity()), (2, 4, 3));
    }

    #[test]
    fn receivers_accept_what_any_sender_may_send() {
        let registry = Registry::power_on();
        let aes = registry.aead(names::AES_256_GCM).unwrap();
        let rx = Limits::for_receiving(
            aes.as_ref(),
            registry.aead_confidentiality_limit(names::AES_256_GCM),
        );
        for tx in [
            from_registry(&registry, aes.as_ref(), 9000),
            from_registry(&registry, aes.as_ref(), 1420),
            from_registry(&registry, aes.as_ref(), 1420).capped(Some(64)),
        ] {
            assert!(tx.hard() <= rx.hard(), "{tx:?} vs {rx:?}");
            assert_eq!(tx.integrity(), rx.integrity());
        }
    }

    #[test]
    fn an_operator_cap_only_lowers() {
        let aes = Limits::builtin(names::AES_256_GCM, 1420).unwrap();
        assert_eq!(aes.capped(None), aes);
        assert_eq!(aes.capped(Some(u64::MAX)), aes);
        let capped = aes.capped(Some(1000));
        assert_eq!((capped.soft(), capped.hard()), (750, 1000));
        assert_eq!(capped.integrity(), aes.integrity());
    }

    #[test]
    fn registry_lookup_for_builtins_and_unknown_plugins() {
        let registry = Registry::power_on();
        let aes = registry.aead(names::AES_256_GCM).unwrap();
        assert_eq!(
            from_registry(&registry, aes.as_ref(), 1420),
            Limits::builtin(names::AES_256_GCM, 1420).unwrap()
        );
        // An AEAD no suite names gets the conservative default.
        #[derive(Debug)]
        struct Unnamed;
        impl AeadAlgorithm for Unnamed {
            fn name(&self) -> &str {
                "Unnamed-AEAD"
            }
            fn key_len(&self) -> usize {
                16
            }
            fn nonce_len(&self) -> usize {
                12
            }
            fn tag_len(&self) -> usize {
                16
            }
            fn new_key(
                &self,
                _: &[u8],
            ) -> Result<Box<dyn pqgate_agility::plugin::AeadKey>, pqgate_agility::plugin::PluginError>
            {
                Err(pqgate_agility::plugin::PluginError::Unsupported("x".into()))
            }
            fn kats(&self) -> &[pqgate_agility::plugin::AeadKat] {
                &[]
            }
        }
        let l = from_registry(&registry, &Unnamed, 1420);
        assert_eq!(l.hard(), DEFAULT_PLUGIN_PACKETS);
        assert_eq!(l.integrity(), DEFAULT_PLUGIN_FORGERIES);
    }

    #[test]
    fn compiled_in_plugins_take_their_declared_limit() {
        let registry = Registry::power_on();
        for decl in pqgate_agility::plugin::compiled_in() {
            for suite in &decl.suites {
                let Some(aead) = registry.aead(&suite.aead) else {
                    continue;
                };
                let l = from_registry(&registry, aead.as_ref(), 1420);
                assert_eq!(l.hard(), suite.max_records_per_key.clamp(1, MAX_COUNTER));
            }
        }
    }
}
