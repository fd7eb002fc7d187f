//! The state directory and the self-signed certificate kept in it: generated once (ECDSA P-256,
//! for localhost, 127.0.0.1 and ::1), private key written 0600, reused on every later start.

use std::path::{Path, PathBuf};

use super::file::{FileError, PRIVATE, create_dir, write_atomic};

/// Why the state directory or the generated certificate is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StateError {
    /// The directory, key or certificate could not be written.
    #[error(transparent)]
    File(#[from] FileError),
    /// rcgen could not make the key or certificate.
    #[error("generating the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Paths of the generated certificate and key.
pub(crate) struct SelfSigned {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// The state directory: configured, else systemd's `$STATE_DIRECTORY`, else `/var/lib/pqgate`
/// for root, else `$HOME/.local/state/pqgate`.
pub(crate) fn state_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_owned();
    }
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return PathBuf::from(first);
    }
    if crate::net::process::is_root() {
        return PathBuf::from("/var/lib/pqgate");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/pqgate")
}

/// Where the self-signed pair lives in `dir`.
pub(crate) fn self_signed_paths(dir: &Path) -> SelfSigned {
    SelfSigned {
        cert: dir.join("self-signed/cert.pem"),
        key: dir.join("self-signed/key.pem"),
    }
}

/// Returns the self-signed pair in `dir`, generating it if either file is missing.
pub(crate) fn ensure_self_signed(dir: &Path) -> Result<SelfSigned, StateError> {
    let paths = self_signed_paths(dir);
    if paths.cert.exists() && paths.key.exists() {
        return Ok(paths);
    }
    let sub = dir.join("self-signed");
    create_dir(&sub, 0o755)?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pqgate self-signed");
    let cert = params.self_signed(&key)?;
    // Either file may be left from an interrupted start: replace both.
    write_atomic(&paths.key, key.serialize_pem().as_bytes(), PRIVATE, true)?;
    write_atomic(&paths.cert, cert.pem().as_bytes(), PRIVATE, true)?;
    tracing::info!(cert = %paths.cert.display(), "generated a self-signed ECDSA P-256 certificate");
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_self_signed(dir.path()).unwrap();
        let pem = fs::read(&first.cert).unwrap();
        let mode = fs::metadata(&first.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = ensure_self_signed(dir.path()).unwrap();
        assert_eq!(fs::read(&second.cert).unwrap(), pem);
    }
}
