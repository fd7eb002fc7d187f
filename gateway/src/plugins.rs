//! Loads the configured run-time plugins at start. When `[plugins] require_signature` is set,
//! or a `[[plugin]]` names a signature, the library's detached signature must verify under a
//! trusted key before the library is opened at all.

use std::path::{Path, PathBuf};

use pqgate_agility::plugin::{PluginDecl, PluginError, loader, signature};
use pqgate_core::config::{Config, PluginConfig};
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;

/// One result per `[[plugin]]`, with the library path it is about.
pub fn load_all(config: &Config) -> Vec<(String, Result<PluginDecl, PluginError>)> {
    let trusted = trusted_keys(&config.plugins.trusted_keys);
    config
        .plugin_files
        .iter()
        .map(|p| {
            let shown = p.path.display().to_string();
            let result = verify(p, config.plugins.require_signature, &trusted)
                .and_then(|()| loader::load(&p.path));
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

fn verify(
    p: &PluginConfig,
    required: bool,
    trusted: &[Result<Vec<u8>, String>],
) -> Result<(), PluginError> {
    if !required && p.signature.is_none() {
        return Ok(());
    }
    let fail = |what: String| PluginError::Signature {
        path: p.path.display().to_string(),
        what,
    };
    let sig_path = signature_path(p);
    let sig = read(&sig_path).map_err(|e| fail(format!("unsigned: {e}")))?;
    let library = read(&p.path).map_err(&fail)?;
    if let Some(Err(e)) = trusted.iter().find(|k| k.is_err()) {
        return Err(fail(e.clone()));
    }
    let verified = trusted
        .iter()
        .flatten()
        .any(|key| signature::verify_detached(&library, &sig, key));
    if verified {
        Ok(())
    } else {
        Err(fail(format!(
            "signature {} does not verify under any trusted key",
            sig_path.display()
        )))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
