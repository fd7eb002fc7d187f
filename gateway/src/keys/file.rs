//! Writes key material atomically: a temporary file created with its final mode at open
//! (`O_CREAT|O_EXCL`), filled and fsynced, then hard-linked into place (never replacing an
//! existing file) or, with `force`, renamed over it. A reader never sees a partial file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mode of private keys: owner read/write only.
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of certificates, CRLs and the CA index: public data.
pub(crate) const PUBLIC: u32 = 0o644;

/// Why a file could not be written; the path is the destination.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FileError {
    /// The destination exists and overwriting was not asked for.
    #[error("{} exists: refusing to overwrite it (use --force to replace it)", path.display())]
    Exists {
        /// The destination.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The destination (or the directory).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Removes the temporary file unless it was moved into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Fails with [`FileError::Exists`] when `path` exists and `force` is off (a cheap early check
/// before expensive key generation; [`write_atomic`] checks again, atomically).
pub(crate) fn check_absent(path: &Path, force: bool) -> Result<(), FileError> {
    match !force && fs::symlink_metadata(path).is_ok() {
        true => Err(FileError::Exists {
            path: path.to_owned(),
        }),
        false => Ok(()),
    }
}

/// Writes `contents` to `path` with `mode`, atomically; refuses an existing `path` unless
/// `force`. The temporary file lives beside `path` (same file system) and is removed on error.
pub(crate) fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    force: bool,
) -> Result<(), FileError> {
    let io = |action, source| FileError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    check_absent(path, force)?;
    let name = path
        .file_name()
        .ok_or_else(|| io("naming", std::io::ErrorKind::InvalidInput.into()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io("creating a temporary file for", e))?;
    let mut guard = TempGuard(Some(tmp.clone()));
    file.write_all(contents).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    drop(file);
    if force {
        fs::rename(&tmp, path).map_err(|e| io("renaming into", e))?;
        guard.0 = None;
    } else {
        // link(2) fails with EEXIST instead of replacing: no window for a racing writer.
        fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => FileError::Exists {
                path: path.to_owned(),
            },
            _ => io("linking into", e),
        })?;
    }
    sync_dir(path)
}

/// Fsyncs the directory holding `path`, so the new name survives a crash.
fn sync_dir(path: &Path) -> Result<(), FileError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io = |source| FileError::Io {
        action: "syncing the directory of",
        path: path.to_owned(),
        source,
    };
    fs::File::open(dir).map_err(io)?.sync_all().map_err(io)
}

/// Creates `dir` (and parents) if missing, with `mode` for the directories it creates.
pub(crate) fn create_dir(dir: &Path, mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|source| FileError::Io {
            action: "creating directory",
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_file_has_mode_0600_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_atomic(&path, b"one", PRIVATE, false).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = write_atomic(&path, b"two", PRIVATE, false).unwrap_err();
        assert!(matches!(err, FileError::Exists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_atomic(&path, b"three", PRIVATE, true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_dangling_symlink_counts_as_existing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        assert!(write_atomic(&path, b"x", PRIVATE, false).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }
}
