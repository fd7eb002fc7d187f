//! `pqgate wg import`: a parsed wg-quick file as a `[[wireguard]]` TOML block that loads back
//! into the same interface description (see `InterfaceSpec`). Keys are written inline, or as
//! references to key files the caller writes. Text only: the caller reads and writes files.

use std::fmt::Write;
use std::path::PathBuf;

use super::cidr::IpCidr;
use super::quick::QuickConfig;

/// Where each secret goes: `None` inline, `Some(path)` a `*_file` reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPlacement {
    /// The private key's file.
    pub private_key_file: Option<PathBuf>,
    /// Each peer's pre-shared key file, in peer order (missing entries: inline).
    pub preshared_key_files: Vec<Option<PathBuf>>,
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[IpCidr]) -> String {
    let quoted: Vec<String> = items.iter().map(|c| quote(&c.to_string())).collect();
    format!("[{}]", quoted.join(", "))
}

/// Renders interface `name` of `q` as one `[[wireguard]]` table with its peers. Secrets placed
/// inline appear in the output: the caller must write it with restrictive permissions.
pub fn to_toml(name: &str, q: &QuickConfig, keys: &KeyPlacement) -> String {
    let mut t = String::new();
    let i = &q.interface;
    let _ = writeln!(t, "[[wireguard]]\nname = {}", quote(name));
    match &keys.private_key_file {
        Some(p) => {
            let _ = writeln!(t, "private_key_file = {}", quote(&p.to_string_lossy()));
        }
        None => {
            let _ = writeln!(t, "private_key = {}", quote(&i.private_key.expose_base64()));
        }
    }
    if let Some(port) = i.listen_port {
        let _ = writeln!(t, "listen_port = {port}");
    }
    if !i.addresses.is_empty() {
        let _ = writeln!(t, "address = {}", list(&i.addresses));
    }
    if let Some(mtu) = i.mtu {
        let _ = writeln!(t, "mtu = {mtu}");
    }
    if let Some(mark) = i.fwmark {
        let _ = writeln!(t, "fwmark = {mark}");
    }
    for (n, p) in q.peers.iter().enumerate() {
        let _ = writeln!(
            t,
            "\n[[wireguard.peer]]\npublic_key = {}",
            quote(&p.public_key.to_base64())
        );
        let file = keys.preshared_key_files.get(n).cloned().flatten();
        match (&p.preshared_key, file) {
            (Some(_), Some(f)) => {
                let _ = writeln!(t, "preshared_key_file = {}", quote(&f.to_string_lossy()));
            }
            (Some(k), None) if !k.is_zero() => {
                let _ = writeln!(t, "preshared_key = {}", quote(&k.expose_base64()));
            }
            _ => {}
        }
        if !p.allowed_ips.is_empty() {
            let _ = writeln!(t, "allowed_ips = {}", list(&p.allowed_ips));
        }
        if let Some(e) = &p.endpoint {
            let _ = writeln!(t, "endpoint = {}", quote(e));
        }
        if let Some(k) = p.persistent_keepalive {
            let _ = writeln!(t, "persistent_keepalive = {k}");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

    #[test]
    fn renders_every_key_wg_quick_sets() {
        let text = format!(
            "[Interface]\nPrivateKey = {K}\nListenPort = 51820\nAddress = 10.0.0.1/24, fd00::1/64\n\
             MTU = 1380\nFwMark = 0x10\nDNS = 1.1.1.1\n[Peer]\nPublicKey = {K}\nPresharedKey = {K}\n\
             AllowedIPs = 10.0.0.2/32\nEndpoint = [fd00::9]:51821\nPersistentKeepalive = 25\n"
        );
        let q = QuickConfig::parse(&text).unwrap();
        let out = to_toml("wg0", &q, &KeyPlacement::default());
        assert_eq!(
            out,
            format!(
                "[[wireguard]]\nname = \"wg0\"\nprivate_key = \"{K}\"\nlisten_port = 51820\n\
                 address = [\"10.0.0.1/24\", \"fd00::1/64\"]\nmtu = 1380\nfwmark = 16\n\n\
                 [[wireguard.peer]]\npublic_key = \"{K}\"\npreshared_key = \"{K}\"\n\
                 allowed_ips = [\"10.0.0.2/32\"]\nendpoint = \"[fd00::9]:51821\"\n\
                 persistent_keepalive = 25\n"
            )
        );
        let files = KeyPlacement {
            private_key_file: Some("/etc/pqgate/wg \"0\".key".into()),
            preshared_key_files: vec![Some("p.psk".into())],
        };
        let out = to_toml("wg0", &q, &files);
        // Only the public key (the same sample bytes here) is left inline.
        assert_eq!(out.matches(K).count(), 1, "{out}");
        assert!(
            out.contains("private_key_file = \"/etc/pqgate/wg \\\"0\\\".key\""),
            "{out}"
        );
        assert!(out.contains("preshared_key_file = \"p.psk\""), "{out}");
        assert!(!out.contains("preshared_key = "), "{out}");
    }
}
