//! Reads WireGuard key files (base64, as `wg genkey` writes them; surrounding whitespace
//! ignored) and refuses one that others may read or write: mode & 0o007 must be 0. Group access
//! is allowed (root:pqgate 0640 is the service model). The text is wiped after decoding.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pqgate_core::wg::{KeyError, PresharedKey, PrivateKey};
use zeroize::Zeroizing;

/// Permission bits for "others" (read, write, execute).
const OTHERS: u32 = 0o007;
/// Longest key file read: a key and generous whitespace.
const MAX_KEY_FILE: u64 = 4096;

/// Why a key file was refused. Never contains the file's content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KeyFileError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Others may read or write the file.
    #[error(
        "{path}: the key file is accessible to others (mode {mode:04o}); run chmod o-rwx {path} \
         (group read is fine: root:pqgate 0640)"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a key.
    #[error("{path}: {source}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
}

/// Reads the file's text after checking its permissions (through the opened file, so the
/// checked file is the one read).
fn read_secret(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
    if mode & OTHERS != 0 {
        return Err(KeyFileError::Permissions { path: shown, mode });
    }
    // Room for the whole bounded read up front: no reallocation leaves a copy behind.
    let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_FILE as usize + 1));
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(io)?;
    Ok(text)
}

/// Reads a private key file.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKey, KeyFileError> {
    let text = read_secret(path)?;
    PrivateKey::from_base64(text.trim()).map_err(|source| KeyFileError::Key {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a pre-shared key file.
pub(crate) fn preshared_key(path: &Path) -> Result<PresharedKey, KeyFileError> {
    let text = read_secret(path)?;
    PresharedKey::from_base64(text.trim()).map_err(|source| KeyFileError::Key {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

    fn write(dir: &Path, mode: u32, text: &str) -> std::path::PathBuf {
        let p = dir.join(format!("k{mode:o}"));
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn owner_and_group_modes_load_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o640, 0o400, 0o660] {
            let p = write(dir.path(), mode, &format!("{K}\n"));
            assert_eq!(private_key(&p).unwrap().expose_base64(), K, "{mode:o}");
        }
        for mode in [0o644, 0o602, 0o601, 0o666] {
            let p = write(dir.path(), mode, K);
            let err = preshared_key(&p).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, KeyFileError::Permissions { .. }), "{text}");
            assert!(text.contains(&p.display().to_string()), "{text}");
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
        }
    }

    #[test]
    fn bad_content_is_named_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let secret = &K[..40];
        let p = write(dir.path(), 0o600, secret);
        let text = private_key(&p).unwrap_err().to_string();
        assert!(text.contains("private key must be 44"), "{text}");
        assert!(!text.contains(secret), "{text}");
        let missing = private_key(&dir.path().join("none")).unwrap_err();
        assert!(matches!(missing, KeyFileError::Io { .. }));
    }
}
