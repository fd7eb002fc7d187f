//! Reads the configuration: the embedded default or a TOML file, then `PQGATE_` environment
//! overrides (`PQGATE_ADMIN__LISTEN=127.0.0.1:9900`), then the core's semantic checks. Every
//! problem found is reported, each with its key path and the file or variable it came from.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use pqgate_core::config::{Config, SECTIONS};
use pqgate_core::validate::validate;
use serde::de::DeserializeOwned;

/// The annotated default configuration, compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/pqgate.toml");

/// Prefix of environment overrides; `__` separates key path segments.
pub const ENV_PREFIX: &str = "PQGATE_";

/// Where the configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The embedded default.
    Embedded,
    /// A file.
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded => f.write_str("<embedded default config>"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One problem, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file or environment variable the value came from.
    pub origin: String,
    /// Key path, e.g. `listener[0].cert`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), join(.0))]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

fn join(issues: &[ConfigIssue]) -> String {
    issues.iter().map(|i| format!("  {i}\n")).collect()
}

/// A parsed, validated configuration and what is needed to locate later problems in it.
pub struct Loaded {
    /// The configuration, relative paths resolved against the file's directory.
    pub config: Config,
    /// Where it came from.
    pub source: Source,
    figment: Figment,
}

impl Loaded {
    /// Locates a problem found after loading (e.g. a certificate that does not load).
    pub fn issue(&self, key: &str, message: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            origin: origin(&self.figment, &self.source, key),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Loads the file at `path` (or the embedded default) with environment overrides.
pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    let (text, source) = match path {
        None => (EMBEDDED_DEFAULT.to_owned(), Source::Embedded),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => (text, Source::File(p.to_owned())),
            Err(e) => {
                return Err(ConfigErrors(vec![ConfigIssue {
                    origin: p.display().to_string(),
                    key: "(file)".into(),
                    message: format!("cannot read config file: {e}"),
                }]));
            }
        },
    };
    let figment = Figment::new()
        .merge(Toml::string(&text))
        .merge(Env::prefixed(ENV_PREFIX).split("__"));
    let mut issues = Vec::new();
    let mut config = extract(&figment, &source, &mut issues);
    if let Source::File(p) = &source {
        let base = p.parent().filter(|d| !d.as_os_str().is_empty());
        config.resolve_paths(base.unwrap_or(Path::new(".")));
    }
    if issues.is_empty() {
        issues.extend(validate(&config).into_iter().map(|i| ConfigIssue {
            origin: origin(&figment, &source, &i.key),
            key: i.key,
            message: i.message,
        }));
    }
    if issues.is_empty() {
        Ok(Loaded {
            config,
            source,
            figment,
        })
    } else {
        Err(ConfigErrors(issues))
    }
}

/// Extracts section by section and element by element, so one bad value does not hide others.
fn extract(figment: &Figment, source: &Source, issues: &mut Vec<ConfigIssue>) -> Config {
    let top: Dict = match figment.extract() {
        Ok(d) => d,
        Err(e) => {
            push_figment_errors(e, "", figment, source, issues);
            return Config::default();
        }
    };
    for key in top.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        issues.push(ConfigIssue {
            origin: origin(figment, source, key),
            key: key.clone(),
            message: format!("unknown section (expected one of: {})", SECTIONS.join(", ")),
        });
    }
    let mut config = Config::default();
    section(figment, source, &top, "log", &mut config.log, issues);
    section(figment, source, &top, "admin", &mut config.admin, issues);
    section(
        figment,
        source,
        &top,
        "service",
        &mut config.service,
        issues,
    );
    section(
        figment,
        source,
        &top,
        "plugins",
        &mut config.plugins,
        issues,
    );
    config.plugin_files = array(figment, source, &top, "plugin", issues);
    config.profiles = array(figment, source, &top, "profile", issues);
    config.listeners = array(figment, source, &top, "listener", issues);
    config.connectors = array(figment, source, &top, "connector", issues);
    config.wireguard = array(figment, source, &top, "wireguard", issues);
    section(
        figment,
        source,
        &top,
        "firewall",
        &mut config.firewall,
        issues,
    );
    config
}

fn section<T: DeserializeOwned>(
    figment: &Figment,
    source: &Source,
    top: &Dict,
    name: &str,
    out: &mut T,
    issues: &mut Vec<ConfigIssue>,
) {
    let Some(value) = top.get(name) else {
        return;
    };
    match Value::deserialize::<T>(value) {
        Ok(v) => *out = v,
        Err(e) => push_figment_errors(e, name, figment, source, issues),
    }
}

fn array<T: DeserializeOwned>(
    figment: &Figment,
    source: &Source,
    top: &Dict,
    name: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Vec<T> {
    let Some(value) = top.get(name) else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        issues.push(ConfigIssue {
            origin: origin(figment, source, name),
            key: name.to_owned(),
            message: format!("must be an array of tables ([[{name}]])"),
        });
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match Value::deserialize::<T>(item) {
            Ok(v) => out.push(v),
            Err(e) => {
                push_figment_errors(e, &format!("{name}[{i}]"), figment, source, issues);
            }
        }
    }
    out
}

fn push_figment_errors(
    err: figment::Error,
    prefix: &str,
    figment: &Figment,
    source: &Source,
    issues: &mut Vec<ConfigIssue>,
) {
    for e in err {
        let mut key = prefix.to_owned();
        for seg in &e.path {
            if seg.parse::<usize>().is_ok() {
                key.push_str(&format!("[{seg}]"));
            } else {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(seg);
            }
        }
        if key.is_empty() {
            key = "(file)".into();
        }
        issues.push(ConfigIssue {
            origin: origin(figment, source, &key),
            key,
            message: e.kind.to_string(),
        });
    }
}

/// The file or environment variable that supplied `key`.
fn origin(figment: &Figment, source: &Source, key: &str) -> String {
    let dotted: String = key.split('[').next().unwrap_or(key).to_owned();
    match figment.find_metadata(&dotted) {
        Some(m) if m.name.contains("environment") => env_var_name(&dotted),
        _ => source.to_string(),
    }
}

fn env_var_name(key: &str) -> String {
    format!(
        "environment variable {ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("pqgate.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn embedded_default_is_valid() {
        let loaded = load(None).unwrap();
        assert_eq!(loaded.config.listeners.len(), 1);
        assert!(loaded.config.listeners[0].self_signed);
    }

    #[test]
    fn reports_every_error_with_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"
[admin]
listen = "not an address"
colour = "blue"

[[listener]]
name = "a"
listen = "127.0.0.1:8443"
backend = "builtin:info"
self_signed = true
policy = "hybrid-maybe"

[[listener]]
name = "b"
listen = "127.0.0.1:8444"
backend = "127.0.0.1:80"
self_signed = true
tls_13 = true
"#,
        );
        let errs = load(Some(&p)).err().unwrap().0;
        let keys: Vec<_> = errs.iter().map(|i| i.key.as_str()).collect();
        assert!(
            keys.contains(&"admin.listen") || keys.contains(&"admin.colour"),
            "{keys:?}"
        );
        assert!(keys.contains(&"listener[0].policy"), "{keys:?}");
        assert!(
            keys.iter().any(|k| k.starts_with("listener[1]")),
            "{keys:?}"
        );
        assert!(
            errs.iter().all(|i| i.origin == p.display().to_string()),
            "{errs:?}"
        );
        let text = ConfigErrors(errs).to_string();
        assert!(text.contains("hybrid-maybe"), "{text}");
        assert!(text.contains("tls_13"), "{text}");
    }

    #[test]
    fn toml_syntax_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[admin\nlisten = 1\n");
        let errs = load(Some(&p)).err().unwrap().0;
        assert_eq!(errs[0].origin, p.display().to_string());
    }

    #[test]
    fn missing_file_is_reported() {
        let errs = load(Some(Path::new("/nonexistent/pqgate.toml")))
            .err()
            .unwrap()
            .0;
        assert!(errs[0].message.contains("cannot read"), "{errs:?}");
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\nbackend = \"h:1\"\n\
             cert = \"c.pem\"\nkey = \"k.pem\"\n",
        );
        let loaded = load(Some(&p)).unwrap();
        assert_eq!(
            loaded.config.listeners[0].cert.as_deref(),
            Some(dir.path().join("c.pem").as_path())
        );
    }
}
