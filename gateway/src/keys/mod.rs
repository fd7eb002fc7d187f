//! Key material made by pqgate itself: WireGuard keys, TLS keys and self-signed certificates,
//! and a small file-based CA for gateway mutual TLS. Private keys are only ever written to
//! files created 0600 (atomically, never silently replaced) and are never printed or logged.

pub(crate) mod ca;
pub(crate) mod file;
pub(crate) mod index;
pub(crate) mod self_signed;
pub(crate) mod tls;
pub(crate) mod wg;
pub(crate) mod x509;

/// Why a `pqgate keygen` or `pqgate ca` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KeysError {
    /// Writing a file failed or would overwrite one.
    #[error(transparent)]
    File(#[from] file::FileError),
    /// A WireGuard key could not be made or parsed.
    #[error(transparent)]
    Wg(#[from] wg::WgKeyError),
    /// A TLS key or certificate could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsKeyError),
    /// A CA operation failed.
    #[error(transparent)]
    Ca(#[from] ca::CaError),
    /// A key file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading stdin or writing stdout failed.
    #[error("standard input/output: {source}")]
    Stdio {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A private key would have been printed on a terminal.
    #[error("refusing to print a private key on a terminal: use --out FILE, or redirect stdout")]
    Terminal,
    /// The system clock is before 1970 or unrepresentable.
    #[error("the system clock is not usable for certificate dates")]
    Clock,
}
