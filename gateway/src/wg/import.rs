//! `pqgate wg import FILE.conf [-o OUT.toml] [--key-dir DIR]`: a wg-quick file as a
//! `[[wireguard]]` block (warnings for ignored keys, as `wg up` prints them). Keys go inline, or
//! with `--key-dir` into new 0600 files (`IFACE.key`, `IFACE-peerN.psk`) that the TOML names. The
//! output file is written 0600 (it may hold keys).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pqgate_core::wg::import::{KeyPlacement, to_toml};

use zeroize::Zeroizing;

use super::WgError;
use super::up::read_quick;

/// Mode of every file written: owner only.
const SECRET_MODE: u32 = 0o600;
/// Mode of a key directory created here.
const KEY_DIR_MODE: u32 = 0o700;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ImportError {
    /// The wg-quick file could not be read or parsed.
    #[error(transparent)]
    Quick(#[from] WgError),
    /// A file could not be written (a key file that exists already is never overwritten).
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `text` to a new file of mode 0600, refusing to replace an existing one.
fn write_new(path: &Path, text: &str) -> Result<(), ImportError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_MODE)
        .open(path)
        .map_err(write_err(path))?;
    f.write_all(text.as_bytes()).map_err(write_err(path))
}

/// Converts `file`; writes the TOML to `out` (mode 0600, replaced if present) or returns it.
pub(crate) fn import(
    file: &Path,
    out: Option<&Path>,
    key_dir: Option<&Path>,
) -> Result<Option<String>, ImportError> {
    let (name, quick) = read_quick(&file.to_string_lossy())?;
    let mut keys = KeyPlacement::default();
    if let Some(dir) = key_dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(KEY_DIR_MODE)
            .create(dir)
            .map_err(write_err(dir))?;
        let dir = std::fs::canonicalize(dir).map_err(write_err(dir))?;
        let path = dir.join(format!("{name}.key"));
        let key = Zeroizing::new(format!("{}\n", quick.interface.private_key.expose_base64()));
        write_new(&path, &key)?;
        keys.private_key_file = Some(path);
        for (n, p) in quick.peers.iter().enumerate() {
            let file: Option<PathBuf> = match &p.preshared_key {
                Some(k) if !k.is_zero() => {
                    let path = dir.join(format!("{name}-peer{n}.psk"));
                    let key = Zeroizing::new(format!("{}\n", k.expose_base64()));
                    write_new(&path, &key)?;
                    Some(path)
                }
                _ => None,
            };
            keys.preshared_key_files.push(file);
        }
    }
    let text = format!(
        "# Imported from {} by pqgate wg import.\n{}",
        file.display(),
        to_toml(&name, &quick, &keys)
    );
    let Some(out) = out else {
        return Ok(Some(text));
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(SECRET_MODE)
        .open(out)
        .map_err(write_err(out))?;
    f.set_permissions(std::fs::Permissions::from_mode(SECRET_MODE))
        .map_err(write_err(out))?;
    f.write_all(text.as_bytes()).map_err(write_err(out))?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::wg::tunnels;
    use pqgate_core::wg::{InterfaceSpec, QuickConfig};

    const A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const B: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

    fn quick_file(dir: &Path) -> PathBuf {
        let text = format!(
            "[Interface]\nPrivateKey = {A}\nListenPort = 51820\nAddress = 10.0.0.1/24, \
             fd00::1/64\nMTU = 1380\nFwMark = 0x20\nDNS = 1.1.1.1\n\n[Peer]\nPublicKey = {B}\n\
             PresharedKey = {A}\nAllowedIPs = 10.0.0.2/32, 10.9.0.7/16\nEndpoint = [::1]:51821\n\
             PersistentKeepalive = 25\n\n[Peer]\nPublicKey = {A}\nAllowedIPs = 10.0.0.3/32\n"
        );
        let p = dir.join("wgi0.conf");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn loaded_spec(toml: &Path) -> InterfaceSpec {
        let loaded = config::load(Some(toml)).unwrap();
        let mut specs = tunnels::specs(&loaded).unwrap();
        assert_eq!(specs.len(), 1);
        specs.remove(0)
    }

    #[test]
    fn round_trip_is_faithful_inline_and_with_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let conf = quick_file(dir.path());
        let text = std::fs::read_to_string(&conf).unwrap();
        let want = InterfaceSpec::from_quick("wgi0", &QuickConfig::parse(&text).unwrap());

        let inline = dir.path().join("inline.toml");
        assert_eq!(import(&conf, Some(&inline), None).unwrap(), None);
        let mode = std::fs::metadata(&inline).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let got = loaded_spec(&inline);
        assert!(want.diff(&got).is_empty(), "{:?}", want.diff(&got));
        assert_eq!(got.fwmark, Some(0x20));

        let keys = dir.path().join("keys");
        let files = dir.path().join("files.toml");
        import(&conf, Some(&files), Some(&keys)).unwrap();
        let toml = std::fs::read_to_string(&files).unwrap();
        assert!(!toml.contains(&format!("private_key = \"{A}\"")), "{toml}");
        assert!(toml.contains("private_key_file"), "{toml}");
        assert!(toml.contains("preshared_key_file"), "{toml}");
        let got = loaded_spec(&files);
        assert!(want.diff(&got).is_empty(), "{:?}", want.diff(&got));
        // Key files are never overwritten.
        let again = import(&conf, None, Some(&keys)).unwrap_err();
        assert!(again.to_string().contains("wgi0.key"), "{again}");
    }
}
