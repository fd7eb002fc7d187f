//! Semantic checks on a parsed [`Config`]: every problem is collected, each naming its key path,
//! so an operator fixes a file in one pass. No file is opened here; loading certificates is the
//! daemon's job.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use crate::config::{Config, ConnectorConfig, Limits, ListenerConfig, RouteConfig, Transport};
use crate::route::is_valid_server_name;

/// One problem with a config value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path, e.g. `listener[0].tls12`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Longest name accepted for listeners and connectors (they become metric labels).
const MAX_NAME_LEN: usize = 64;

/// Checks the whole config and returns every issue found (empty: valid).
pub fn validate(config: &Config) -> Vec<Issue> {
    let mut v = Validator::default();
    v.check_service(config);
    let mut addrs: HashMap<SocketAddr, String> = HashMap::new();
    if config.admin.enabled {
        v.check_addr("admin.listen", config.admin.listen, &mut addrs);
    }
    v.check_plugins(config);
    let profiles = v.check_profiles(config);
    let mut names: HashMap<&str, String> = HashMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let at = format!("listener[{i}]");
        v.check_name(&at, &l.name, &mut names);
        v.check_addr(&format!("{at}.listen"), l.listen, &mut addrs);
        v.check_profile_ref(&at, &l.profile, &profiles);
        v.check_listener(&at, l);
    }
    for (i, c) in config.connectors.iter().enumerate() {
        let at = format!("connector[{i}]");
        v.check_name(&at, &c.name, &mut names);
        v.check_addr(&format!("{at}.listen"), c.listen, &mut addrs);
        v.check_profile_ref(&at, &c.profile, &profiles);
        v.check_connector(&at, c);
    }
    v.issues
        .extend(crate::wg::validate::check(&config.wireguard));
    let firewall = crate::firewall::config::check(&config.firewall);
    v.issues.extend(firewall);
    v.issues
}

#[derive(Default)]
struct Validator {
    issues: Vec<Issue>,
}

impl Validator {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            key: key.into(),
            message: message.into(),
        });
    }

    fn check_plugins(&mut self, config: &Config) {
        if config.plugins.require_signature && config.plugins.trusted_keys.is_empty() {
            self.push(
                "plugins.trusted_keys",
                "require_signature = true needs at least one trusted key",
            );
        }
    }

    /// Checks `[[profile]]` entries; returns every usable profile name.
    fn check_profiles<'a>(&mut self, config: &'a Config) -> Vec<&'a str> {
        let mut names: Vec<&str> = pqgate_agility::BUILTIN_PROFILES.to_vec();
        for (i, p) in config.profiles.iter().enumerate() {
            let at = format!("profile[{i}]");
            if names.contains(&p.name.as_str()) {
                self.push(
                    format!("{at}.name"),
                    format!("{:?} is a built-in or already defined profile", p.name),
                );
                continue;
            }
            if p.name.is_empty() {
                self.push(format!("{at}.name"), "must not be empty");
            }
            if p.groups.is_empty() {
                self.push(format!("{at}.groups"), "must name at least one group");
            }
            if p.suites.is_empty() {
                self.push(
                    format!("{at}.suites"),
                    "must name at least one cipher suite",
                );
            }
            names.push(&p.name);
        }
        names
    }

    fn check_profile_ref(&mut self, at: &str, profile: &str, known: &[&str]) {
        if !known.contains(&profile) {
            self.push(
                format!("{at}.profile"),
                format!("unknown profile {profile:?} (known: {})", known.join(", ")),
            );
        }
    }

    fn check_service(&mut self, config: &Config) {
        for why in crate::log_filter::problems(&config.log.level) {
            self.push("log.level", why);
        }
        if config.service.drain_timeout_secs > 3600 {
            self.push("service.drain_timeout_secs", "must be at most 3600");
        }
        if config.service.worker_threads > 1024 {
            self.push("service.worker_threads", "must be at most 1024");
        }
    }

    fn check_name<'a>(&mut self, at: &str, name: &'a str, seen: &mut HashMap<&'a str, String>) {
        let ok_chars = name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
            self.push(
                format!("{at}.name"),
                format!("{name:?} must be 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 - _"),
            );
        }
        if let Some(first) = seen.insert(name, at.to_owned()) {
            self.push(
                format!("{at}.name"),
                format!("{name:?} is already used by {first}"),
            );
        }
    }

    fn check_addr(&mut self, key: &str, addr: SocketAddr, seen: &mut HashMap<SocketAddr, String>) {
        if addr.port() == 0 {
            self.push(key, "port 0 is not allowed: name the port to listen on");
        }
        // Same port on the same address, or on a wildcard address of the same family.
        let clash = seen.iter().find(|(other, _)| {
            other.port() == addr.port()
                && other.is_ipv4() == addr.is_ipv4()
                && (other.ip() == addr.ip()
                    || other.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        });
        if let Some((other, first)) = clash {
            self.push(key, format!("{addr} overlaps {other} of {first}"));
        }
        seen.insert(addr, key.to_owned());
    }

    fn check_limits(&mut self, at: &str, limits: &Limits) {
        let fields = [
            ("max_connections", u64::from(limits.max_connections)),
            ("handshake_timeout_secs", limits.handshake_timeout_secs),
            ("idle_timeout_secs", limits.idle_timeout_secs),
            ("connect_timeout_secs", limits.connect_timeout_secs),
        ];
        for (field, value) in fields {
            if value == 0 {
                self.push(format!("{at}.limits.{field}"), "must be greater than 0");
            }
        }
    }

    fn check_alpn(&mut self, at: &str, alpn: &[String]) {
        for (i, proto) in alpn.iter().enumerate() {
            if proto.is_empty() || proto.len() > 255 {
                self.push(format!("{at}.alpn[{i}]"), "must be 1-255 bytes");
            }
        }
    }

    fn check_tls12(&mut self, at: &str, tls12: bool, policy: crate::config::KxPolicy) {
        if tls12 && !policy.allows_tls12() {
            self.push(
                format!("{at}.tls12"),
                format!(
                    "TLS 1.2 cannot be enabled with policy \"{policy}\" (TLS 1.2 has no \
                     post-quantum key exchange); use policy = \"hybrid-preferred\""
                ),
            );
        }
    }

    fn check_listener(&mut self, at: &str, l: &ListenerConfig) {
        self.check_tls12(at, l.tls12, l.policy);
        self.check_alpn(at, &l.alpn);
        self.check_limits(at, &l.limits);
        match (&l.cert, &l.key, l.self_signed) {
            (Some(_), Some(_), false) | (None, None, true) => {}
            (_, _, true) => self.push(
                format!("{at}.self_signed"),
                "self_signed = true and cert/key are exclusive: choose one",
            ),
            (Some(_), None, false) => self.push(format!("{at}.key"), "cert is set but key is not"),
            (None, Some(_), false) => self.push(format!("{at}.cert"), "key is set but cert is not"),
            (None, None, false) => self.push(
                format!("{at}.cert"),
                "a certificate is needed: set cert and key, or self_signed = true",
            ),
        }
        let mut seen = HashMap::new();
        for (i, r) in l.routes.iter().enumerate() {
            self.check_route(&format!("{at}.route[{i}]"), r, &mut seen);
        }
        if l.transport == Transport::Quic {
            self.check_quic_listener(at, l);
        }
    }

    /// What a QUIC listener cannot do: it carries only pqgate connectors' streams (fixed ALPN,
    /// TLS 1.3, one certificate, a TCP backend), so SNI routes, the info page, PROXY headers,
    /// TLS 1.2 and custom ALPN are refused rather than silently ignored.
    fn check_quic_listener(&mut self, at: &str, l: &ListenerConfig) {
        let quic = "with transport = \"quic\"";
        if !l.routes.is_empty() {
            self.push(
                format!("{at}.route"),
                format!("SNI routes are not supported {quic}"),
            );
        }
        if l.backend == crate::config::Backend::BuiltinInfo {
            self.push(
                format!("{at}.backend"),
                format!("{quic} the backend must be a TCP host:port"),
            );
        }
        if l.proxy_protocol {
            self.push(
                format!("{at}.proxy_protocol"),
                format!("PROXY v2 headers are not supported {quic}"),
            );
        }
        self.check_quic_common(at, l.tls12, &l.alpn);
    }

    fn check_quic_common(&mut self, at: &str, tls12: bool, alpn: &[String]) {
        if tls12 {
            self.push(format!("{at}.tls12"), "QUIC is TLS 1.3 only: remove tls12");
        }
        if !alpn.is_empty() {
            self.push(
                format!("{at}.alpn"),
                "with transport = \"quic\" the ALPN is fixed (pqgate-tcp/1): remove alpn",
            );
        }
    }

    fn check_route(&mut self, at: &str, r: &RouteConfig, seen: &mut HashMap<String, ()>) {
        if !is_valid_server_name(&r.sni) {
            self.push(
                format!("{at}.sni"),
                format!("{:?} is not a DNS name (or *.name)", r.sni),
            );
        }
        if seen.insert(r.sni.to_ascii_lowercase(), ()).is_some() {
            self.push(
                format!("{at}.sni"),
                format!("{:?} appears in two routes", r.sni),
            );
        }
        match (&r.cert, &r.key) {
            (Some(_), None) => self.push(format!("{at}.key"), "cert is set but key is not"),
            (None, Some(_)) => self.push(format!("{at}.cert"), "key is set but cert is not"),
            _ => {}
        }
        if r.cert.is_none() && r.backend.is_none() {
            self.push(at, "a route must set a backend, a cert/key pair, or both");
        }
    }

    fn check_connector(&mut self, at: &str, c: &ConnectorConfig) {
        self.check_tls12(at, c.tls12, c.policy);
        self.check_alpn(at, &c.alpn);
        self.check_limits(at, &c.limits);
        if c.ca.is_none() && c.pin_sha256.is_empty() {
            self.push(
                format!("{at}.ca"),
                "the remote must be verified: set ca, pin_sha256, or both",
            );
        }
        for (i, pin) in c.pin_sha256.iter().enumerate() {
            if crate::hex::decode(pin).is_none_or(|b| b.len() != 32) {
                self.push(
                    format!("{at}.pin_sha256[{i}]"),
                    "must be a SHA-256 digest in hex (64 hex digits)",
                );
            }
        }
        match (&c.client_cert, &c.client_key) {
            (Some(_), None) => self.push(
                format!("{at}.client_key"),
                "client_cert is set but client_key is not",
            ),
            (None, Some(_)) => self.push(
                format!("{at}.client_cert"),
                "client_key is set but client_cert is not",
            ),
            _ => {}
        }
        if c.transport == Transport::Quic {
            self.check_quic_common(at, c.tls12, &c.alpn);
        }
        let name = c.server_name.as_deref().unwrap_or(&c.remote.host);
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        if !is_ip && (!is_valid_server_name(name) || name.starts_with('*')) {
            self.push(
                format!("{at}.server_name"),
                format!("{name:?} is neither a DNS name nor an IP address"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KxPolicy;

    fn listener(name: &str, port: u16) -> ListenerConfig {
        ListenerConfig::for_test(name, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn keys(cfg: &Config) -> Vec<String> {
        validate(cfg).into_iter().map(|i| i.key).collect()
    }

    #[test]
    fn default_and_simple_configs_are_valid() {
        let mut cfg = Config::default();
        assert!(validate(&cfg).is_empty());
        cfg.listeners.push(listener("a", 8443));
        assert!(validate(&cfg).is_empty(), "{:?}", validate(&cfg));
    }

    #[test]
    fn collects_every_issue_with_its_key() {
        let mut cfg = Config::default();
        let mut l = listener("a b", 9851);
        l.tls12 = true;
        l.limits.max_connections = 0;
        l.routes.push(RouteConfig {
            sni: "bad name".into(),
            backend: None,
            cert: None,
            key: None,
        });
        cfg.listeners.push(l);
        cfg.listeners.push(listener("a b", 8443));
        assert_eq!(
            keys(&cfg),
            [
                "listener[0].name",
                "listener[0].listen",
                "listener[0].tls12",
                "listener[0].limits.max_connections",
                "listener[0].route[0].sni",
                "listener[0].route[0]",
                "listener[1].name",
                "listener[1].name",
            ]
        );
    }

    #[test]
    fn certificate_source_must_be_exactly_one() {
        let mut cfg = Config::default();
        let mut l = listener("a", 1000);
        l.self_signed = false;
        l.cert = Some("c.pem".into());
        cfg.listeners.push(l.clone());
        l.self_signed = true;
        l.key = Some("k.pem".into());
        l.name = "b".into();
        l.listen.set_port(1001);
        cfg.listeners.push(l);
        assert_eq!(keys(&cfg), ["listener[0].key", "listener[1].self_signed"]);
    }

    #[test]
    fn wildcard_addresses_overlap_specific_ones() {
        let mut cfg = Config::default();
        let mut wild = listener("wild", 443);
        wild.listen = "0.0.0.0:443".parse().unwrap();
        cfg.listeners.push(wild);
        cfg.listeners.push(listener("local", 443));
        cfg.listeners.push(listener("other", 444));
        assert_eq!(keys(&cfg), ["listener[1].listen"]);
        cfg.admin.listen.set_port(0);
        assert!(keys(&cfg).contains(&"admin.listen".to_owned()));
    }

    #[test]
    fn connector_needs_verification_and_valid_pins() {
        let mut cfg = Config::default();
        cfg.connectors.push(ConnectorConfig {
            name: "c".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            remote: "gw.example:8443".parse().unwrap(),
            server_name: None,
            policy: KxPolicy::HybridPreferred,
            profile: crate::config::default_profile(),
            tls12: true,
            ca: None,
            pin_sha256: vec!["abcd".into()],
            client_cert: Some("c.pem".into()),
            client_key: None,
            alpn: vec![],
            limits: Limits::default(),
            transport: Transport::Tls,
        });
        assert_eq!(
            keys(&cfg),
            ["connector[0].pin_sha256[0]", "connector[0].client_key"]
        );
        cfg.connectors[0].pin_sha256.clear();
        assert!(keys(&cfg).contains(&"connector[0].ca".to_owned()));
        cfg.connectors[0].pin_sha256.clear();
        cfg.connectors[0].transport = Transport::Quic;
        cfg.connectors[0].alpn = vec!["h2".into()];
        let quic = keys(&cfg);
        assert!(quic.contains(&"connector[0].tls12".to_owned()), "{quic:?}");
        assert!(quic.contains(&"connector[0].alpn".to_owned()), "{quic:?}");
    }

    #[test]
    fn quic_listener_refuses_what_it_cannot_carry() {
        let mut cfg = Config::default();
        let mut l = listener("q", 9443);
        l.transport = Transport::Quic;
        cfg.listeners.push(l.clone());
        l.backend = "127.0.0.1:80".parse().unwrap();
        l.listen = SocketAddr::from(([127, 0, 0, 1], 9444));
        l.name = "ok".into();
        cfg.listeners.push(l.clone());
        l.listen = SocketAddr::from(([127, 0, 0, 1], 9445));
        l.name = "bad".into();
        l.proxy_protocol = true;
        l.alpn = vec!["h2".into()];
        l.routes = vec![RouteConfig {
            sni: "a.example".into(),
            backend: None,
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
        }];
        cfg.listeners.push(l);
        assert_eq!(
            keys(&cfg),
            [
                "listener[0].backend",
                "listener[2].route",
                "listener[2].proxy_protocol",
                "listener[2].alpn"
            ]
        );
    }
}
