//! Loads the configured run-time plugins at start. When `[plugins] require_signature` is set,
//! or a `[[plugin]]` names a signature, the library's detached signature must verify under a
//! trusted key before the library is opened at all, and what is opened is a private copy of the
//! verified bytes, so a file swapped after the check cannot be loaded in its place.

use std::path::{Path, PathBuf};

use pqgate_agility::plugin::{Origin, PluginDecl, PluginError, loader, signature};
use pqgate_core::config::{Config, PluginConfig};
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;

/// One result per `[[plugin]]`, with the library path it is about.
pub(crate) fn load_all(config: &Config) -> Vec<(String, Result<PluginDecl, PluginError>)> {
    let trusted = trusted_keys(&config.plugins.trusted_keys);
    config
        .plugin_files
        .iter()
        .map(|p| {
            let shown = p.path.display().to_string();
            let result =
                verify(p, config.plugins.require_signature, &trusted).and_then(|verified| {
                    match verified {
                        Some(bytes) => load_verified_copy(p, &bytes),
                        None => loader::load(&p.path),
                    }
                });
            (shown, result)
        })
        .collect()
}

/// The trusted keys that could be read; unreadable ones are reported when used.
fn trusted_keys(paths: &[PathBuf]) -> Vec<Result<Vec<u8>, String>> {
    paths
        .iter()
        .map(|p| {
            SubjectPublicKeyInfoDer::from_pem_file(p)
                .map(|k| k.as_ref().to_vec())
                .map_err(|e| format!("trusted key {}: {e}", p.display()))
        })
        .collect()
}

fn signature_path(p: &PluginConfig) -> PathBuf {
    p.signature.clone().unwrap_or_else(|| {
        let mut name = p.path.clone().into_os_string();
        name.push(".sig");
        PathBuf::from(name)
    })
}

/// The library's bytes when its signature verified; `None` when no signature is asked for.
fn verify(
    p: &PluginConfig,
    required: bool,
    trusted: &[Result<Vec<u8>, String>],
) -> Result<Option<Vec<u8>>, PluginError> {
    if !required && p.signature.is_none() {
        return Ok(None);
    }
    let fail = |what: String| PluginError::Signature {
        path: p.path.display().to_string(),
        what,
    };
    let sig_path = signature_path(p);
    let sig = read(&sig_path).map_err(|e| fail(format!("unsigned: {e}")))?;
    let library = read(&p.path).map_err(&fail)?;
    let verified = trusted
        .iter()
        .flatten()
        .any(|key| signature::verify_detached(&library, &sig, key));
    if verified {
        return Ok(Some(library));
    }
    let unreadable: Vec<&str> = trusted
        .iter()
        .filter_map(|k| k.as_ref().err())
        .map(String::as_str)
        .collect();
    let mut what = format!(
        "signature {} does not verify under any trusted key",
        sig_path.display()
    );
    if !unreadable.is_empty() {
        what.push_str(&format!(" (unusable: {})", unreadable.join("; ")));
    }
    Err(fail(what))
}

/// Opens a private copy of the verified bytes (a 0700 directory of this process, removed once
/// the library is mapped).
fn load_verified_copy(p: &PluginConfig, bytes: &[u8]) -> Result<PluginDecl, PluginError> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |what: String| PluginError::Load {
        path: p.path.display().to_string(),
        reason: what,
    };
    let dir = std::env::temp_dir().join(format!("pqgate-plugins-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| fail(format!("private copy directory {}: {e}", dir.display())))?;
    let name = p
        .path
        .file_name()
        .map_or_else(|| "plugin.so".into(), |n| n.to_owned());
    let copy = dir.join(name);
    crate::keys::file::write_atomic(&copy, bytes, crate::keys::file::PRIVATE, true)
        .map_err(|e| fail(e.to_string()))?;
    let loaded = loader::load(&copy);
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_dir(&dir);
    let mut decl = loaded?;
    decl.origin = Origin::SharedLibrary(p.path.clone());
    Ok(decl)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
