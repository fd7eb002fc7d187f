//! Parses a wg-quick(8) file's text into a [`QuickConfig`] with the semantics of wg-quick(8) and
//! wg(8): case-insensitive section names and keys, `#` comments, comma-separated lists that
//! accumulate over repeated lines, `off` for keepalive and fwmark, and the last value winning for
//! any other repeated key (with a warning). wg-quick's host-setup keys (DNS, Table, hooks,
//! SaveConfig) come back as warnings; anything else unknown is an error. Every error is collected,
//! each with its 1-based line number and key. The caller reads the file.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::cidr::{CidrError, IpCidr};
use super::key::{Key32, KeyError, KeyRole, PresharedKey, PrivateKey};
use crate::config::{HostPort, HostPortError};

/// Longest interface name Linux accepts (IFNAMSIZ, 16, less the terminating NUL).
const IFNAME_MAX: usize = 15;
/// Smallest MTU Linux accepts on a link that carries IPv4 (RFC 791: every host takes 68 bytes).
const MTU_MIN: u16 = 68;
/// The suffix wg-quick requires of a config file's name.
const CONF_SUFFIX: &str = ".conf";

/// A wg-quick file: the interface, its peers in file order, and what pqgate ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickConfig {
    /// `[Interface]`.
    pub interface: QuickInterface,
    /// Every `[Peer]`, in file order.
    pub peers: Vec<QuickPeer>,
    /// Keys accepted but not acted on, and repeated keys, for the operator to read.
    pub warnings: Vec<QuickWarning>,
}

/// `[Interface]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickInterface {
    /// `PrivateKey` (required).
    pub private_key: PrivateKey,
    /// `ListenPort`; `None` when absent or 0 (the daemon picks a port).
    pub listen_port: Option<u16>,
    /// Every `Address`, in file order, host bits as written.
    pub addresses: Vec<IpCidr>,
    /// `MTU`; `None` when absent (the daemon picks one).
    pub mtu: Option<u16>,
    /// `FwMark`; `None` when absent, `off` or 0.
    pub fwmark: Option<u32>,
}

/// One `[Peer]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickPeer {
    /// Line of the `[Peer]` header, for messages about this peer.
    pub line: usize,
    /// `PublicKey` (required, unique in the file).
    pub public_key: Key32,
    /// `PresharedKey`.
    pub preshared_key: Option<PresharedKey>,
    /// Every `AllowedIPs` entry, in file order, as written (see [`IpCidr::network`]).
    pub allowed_ips: Vec<IpCidr>,
    /// `Endpoint` as written: `host:port`, IPv6 literals in brackets; names are not resolved.
    pub endpoint: Option<String>,
    /// `PersistentKeepalive` in seconds; `None` when absent, `off` or 0.
    pub persistent_keepalive: Option<u16>,
}

/// Something accepted that the operator should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickWarning {
    /// 1-based line number.
    pub line: usize,
    /// The key, in wg-quick's spelling.
    pub key: String,
    /// What pqgate does about it.
    pub message: String,
}

impl fmt::Display for QuickWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

/// What is wrong on a line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuickErrorKind {
    /// Neither `Key = Value`, a `[Section]` header, a comment nor a blank line.
    #[error("expected `Key = Value` or a [Section] header")]
    Syntax,
    /// A section other than `[Interface]` or `[Peer]`; its keys are skipped.
    #[error("unknown section (wg-quick has [Interface] and [Peer])")]
    UnknownSection,
    /// A second `[Interface]`; its keys are skipped.
    #[error("a second [Interface] section (the first is on line {first_line})")]
    DuplicateInterface {
        /// Line of the first `[Interface]`.
        first_line: usize,
    },
    /// A key before the first section header.
    #[error("key before any [Interface] or [Peer] section")]
    OutsideSection,
    /// A key neither wg-quick nor wg knows.
    #[error("unknown key in [{section}]")]
    UnknownKey {
        /// `Interface` or `Peer`.
        section: &'static str,
    },
    /// A known key in the other section.
    #[error("belongs in [{belongs}], not [{section}]")]
    WrongSection {
        /// Where it is.
        section: &'static str,
        /// Where it belongs.
        belongs: &'static str,
    },
    /// No value after `=`.
    #[error("empty value")]
    Empty,
    /// Two commas in a row, or a comma at either end.
    #[error("empty item in a comma-separated list")]
    EmptyItem,
    /// A number out of range or not a number.
    #[error("{value:?} is not {expected}")]
    Number {
        /// The value as written.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A key that does not decode (the error never contains the value).
    #[error("{0}")]
    Key(#[from] KeyError),
    /// An address or allowed IP that does not parse.
    #[error("{0}")]
    Cidr(#[from] CidrError),
    /// An endpoint that is not `host:port`.
    #[error("{0}")]
    Endpoint(#[from] HostPortError),
    /// A required key is absent from the section that starts on the error's line.
    #[error("missing; every [{section}] needs one")]
    Missing {
        /// `Interface` or `Peer`.
        section: &'static str,
    },
    /// The file has no `[Interface]` section.
    #[error("no [Interface] section")]
    NoInterface,
    /// Two peers with one public key.
    #[error("the peer on line {first_line} has the same public key")]
    DuplicatePeer {
        /// Line of the first peer's `[Peer]` header.
        first_line: usize,
    },
}

/// One problem, located.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {key}: {kind}")]
pub struct QuickError {
    /// 1-based line number.
    pub line: usize,
    /// The key (wg-quick's spelling when known, else as written) or section header.
    pub key: String,
    /// What is wrong.
    pub kind: QuickErrorKind,
}

/// Every problem found in a wg-quick file, in line order.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{} error(s) in the wg-quick file:\n{}", .0.len(), join(.0))]
pub struct QuickErrors(pub Vec<QuickError>);

fn join(errors: &[QuickError]) -> String {
    errors.iter().map(|e| format!("  {e}\n")).collect()
}

/// Why a path does not name a wg-quick interface.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?}: the file name must be an interface name (1-{IFNAME_MAX} of a-z A-Z 0-9 _ = + . -) \
     followed by {CONF_SUFFIX}"
)]
pub struct InterfaceNameError(pub String);

impl QuickConfig {
    /// Parses a wg-quick file's text, collecting every error.
    pub fn parse(text: &str) -> Result<Self, QuickErrors> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut parser = Parser::default();
        for (i, line) in text.lines().enumerate() {
            parser.line(i + 1, line);
        }
        parser.finish()
    }

    /// The interface name wg-quick derives from a config path: the file name less `.conf`, which
    /// must match `^[a-zA-Z0-9_=+.-]{1,15}$` (and not be `.` or `..`, which Linux refuses).
    pub fn interface_name_from_path(path: &str) -> Result<String, InterfaceNameError> {
        let file = path.rsplit('/').next().unwrap_or(path);
        file.strip_suffix(CONF_SUFFIX)
            .filter(|stem| is_interface_name(stem))
            .map(str::to_owned)
            .ok_or_else(|| InterfaceNameError(path.to_owned()))
    }
}

impl FromStr for QuickConfig {
    type Err = QuickErrors;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether `name` is an interface name wg-quick and Linux both accept.
pub fn is_interface_name(name: &str) -> bool {
    let ok_chars = name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"_=+.-".contains(&c));
    (1..=IFNAME_MAX).contains(&name.len()) && ok_chars && name != "." && name != ".."
}

/// The section a line is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Section {
    /// Before the first header.
    #[default]
    None,
    Interface,
    Peer,
    /// A bad, unknown or repeated header, already reported: its keys are skipped.
    Skipped,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Self::Interface => "Interface",
            Self::Peer => "Peer",
            Self::None | Self::Skipped => "",
        }
    }
}

/// Every key wg-quick(8) or wg(8) reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Field {
    PrivateKey,
    ListenPort,
    FwMark,
    Address,
    Mtu,
    Dns,
    Table,
    PreUp,
    PostUp,
    PreDown,
    PostDown,
    SaveConfig,
    PublicKey,
    PresharedKey,
    AllowedIps,
    Endpoint,
    PersistentKeepalive,
}

/// Each key with its spelling in the man pages and its section.
const KEYS: &[(Field, &str, Section)] = &[
    (Field::PrivateKey, "PrivateKey", Section::Interface),
    (Field::ListenPort, "ListenPort", Section::Interface),
    (Field::FwMark, "FwMark", Section::Interface),
    (Field::Address, "Address", Section::Interface),
    (Field::Mtu, "MTU", Section::Interface),
    (Field::Dns, "DNS", Section::Interface),
    (Field::Table, "Table", Section::Interface),
    (Field::PreUp, "PreUp", Section::Interface),
    (Field::PostUp, "PostUp", Section::Interface),
    (Field::PreDown, "PreDown", Section::Interface),
    (Field::PostDown, "PostDown", Section::Interface),
    (Field::SaveConfig, "SaveConfig", Section::Interface),
    (Field::PublicKey, "PublicKey", Section::Peer),
    (Field::PresharedKey, "PresharedKey", Section::Peer),
    (Field::AllowedIps, "AllowedIPs", Section::Peer),
    (Field::Endpoint, "Endpoint", Section::Peer),
    (
        Field::PersistentKeepalive,
        "PersistentKeepalive",
        Section::Peer,
    ),
];

/// Why pqgate accepts but does not act on wg-quick's host-setup keys.
fn ignored_reason(key: Field) -> Option<&'static str> {
    match key {
        Field::Dns => Some("resolvers are left to the host (resolvconf is not called)"),
        Field::Table => Some("routes for AllowedIPs always go in the main table"),
        Field::PreUp | Field::PostUp | Field::PreDown | Field::PostDown => {
            Some("hook commands are never run")
        }
        Field::SaveConfig => Some("the file is never written back"),
        _ => None,
    }
}

/// Keys whose repeated lines add to a list instead of replacing the value.
fn accumulates(key: Field) -> bool {
    matches!(key, Field::Address | Field::AllowedIps)
}

/// `[Interface]` as read so far.
struct InterfaceDraft {
    line: usize,
    /// Line of the last `PrivateKey`, valid or not (a bad one is not also "missing").
    key_line: Option<usize>,
    private_key: Option<PrivateKey>,
    listen_port: Option<u16>,
    addresses: Vec<IpCidr>,
    mtu: Option<u16>,
    fwmark: Option<u32>,
}

/// A `[Peer]` as read so far.
struct PeerDraft {
    line: usize,
    /// Line of the last `PublicKey`, valid or not.
    key_line: Option<usize>,
    public_key: Option<Key32>,
    preshared_key: Option<PresharedKey>,
    allowed_ips: Vec<IpCidr>,
    endpoint: Option<String>,
    persistent_keepalive: Option<u16>,
}

#[derive(Default)]
struct Parser {
    section: Section,
    /// Keys seen in the current section, with their line.
    seen: HashMap<Field, usize>,
    interface: Option<InterfaceDraft>,
    peers: Vec<PeerDraft>,
    errors: Vec<QuickError>,
    warnings: Vec<QuickWarning>,
}

impl Parser {
    fn error(&mut self, line: usize, key: &str, kind: QuickErrorKind) {
        let key = key.to_owned();
        self.errors.push(QuickError { line, key, kind });
    }

    fn warn(&mut self, line: usize, key: &str, message: String) {
        let key = key.to_owned();
        self.warnings.push(QuickWarning { line, key, message });
    }

    fn line(&mut self, line: usize, raw: &str) {
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            return;
        }
        if content.starts_with('[') {
            return self.header(line, content);
        }
        match content.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                self.entry(line, key.trim(), value.trim());
            }
            _ => self.error(line, content, QuickErrorKind::Syntax),
        }
    }

    fn header(&mut self, line: usize, header: &str) {
        self.seen.clear();
        self.section = Section::Skipped;
        let name = header.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        match name.map(str::trim) {
            Some(n) if n.eq_ignore_ascii_case("Interface") => self.start_interface(line, header),
            Some(n) if n.eq_ignore_ascii_case("Peer") => {
                self.section = Section::Peer;
                self.peers.push(PeerDraft::new(line));
            }
            Some(_) => self.error(line, header, QuickErrorKind::UnknownSection),
            None => self.error(line, header, QuickErrorKind::Syntax),
        }
    }

    fn start_interface(&mut self, line: usize, header: &str) {
        if let Some(first) = &self.interface {
            let first_line = first.line;
            return self.error(
                line,
                header,
                QuickErrorKind::DuplicateInterface { first_line },
            );
        }
        self.section = Section::Interface;
        self.interface = Some(InterfaceDraft::new(line));
    }

    fn entry(&mut self, line: usize, written: &str, value: &str) {
        let section = self.section;
        let known = KEYS
            .iter()
            .find(|(_, n, _)| n.eq_ignore_ascii_case(written));
        let kind = match (section, known) {
            (Section::Skipped, _) => return,
            (Section::None, _) => QuickErrorKind::OutsideSection,
            (_, None) => QuickErrorKind::UnknownKey {
                section: section.name(),
            },
            (_, Some(&(_, _, home))) if home != section => QuickErrorKind::WrongSection {
                section: section.name(),
                belongs: home.name(),
            },
            (_, Some(&(key, name, _))) => return self.known_entry(line, key, name, value),
        };
        let name = known.map_or(written, |&(_, n, _)| n);
        self.error(line, name, kind);
    }

    /// A known key in its own section.
    fn known_entry(&mut self, line: usize, key: Field, name: &str, value: &str) {
        if let Some(reason) = ignored_reason(key) {
            return self.warn(line, name, format!("ignored by pqgate: {reason}"));
        }
        if let Some(first) = self.seen.insert(key, line).filter(|_| !accumulates(key)) {
            let message = format!("repeated (also on line {first}); this last value wins");
            self.warn(line, name, message);
        }
        self.note_key_line(line, key);
        if value.is_empty() && !accumulates(key) {
            return self.error(line, name, QuickErrorKind::Empty);
        }
        let result = match self.section {
            Section::Interface => self.set_interface(key, value),
            _ => self.set_peer(key, value),
        };
        if let Err(kind) = result {
            self.error(line, name, kind);
        }
    }

    /// Records where the section's required key is, valid or not, so that a bad one is not also
    /// reported missing.
    fn note_key_line(&mut self, line: usize, key: Field) {
        match (key, self.interface.as_mut(), self.peers.last_mut()) {
            (Field::PrivateKey, Some(iface), _) => iface.key_line = Some(line),
            (Field::PublicKey, _, Some(peer)) => peer.key_line = Some(line),
            _ => {}
        }
    }

    fn set_interface(&mut self, key: Field, value: &str) -> Result<(), QuickErrorKind> {
        let Some(iface) = self.interface.as_mut() else {
            return Ok(());
        };
        match key {
            Field::PrivateKey => iface.private_key = Some(PrivateKey::from_base64(value)?),
            Field::ListenPort => iface.listen_port = off_or_number(value, false, PORT)?,
            Field::FwMark => iface.fwmark = parse_fwmark(value)?,
            Field::Address => iface.addresses.extend(parse_cidrs(value)?),
            Field::Mtu => iface.mtu = Some(parse_mtu(value)?),
            _ => {}
        }
        Ok(())
    }

    fn set_peer(&mut self, key: Field, value: &str) -> Result<(), QuickErrorKind> {
        let Some(peer) = self.peers.last_mut() else {
            return Ok(());
        };
        match key {
            Field::PublicKey => peer.public_key = Some(Key32::from_base64(KeyRole::Public, value)?),
            Field::PresharedKey => peer.preshared_key = Some(PresharedKey::from_base64(value)?),
            Field::AllowedIps => peer.allowed_ips.extend(parse_cidrs(value)?),
            Field::Endpoint => {
                value.parse::<HostPort>()?;
                peer.endpoint = Some(value.to_owned());
            }
            Field::PersistentKeepalive => {
                peer.persistent_keepalive = off_or_number(value, true, KEEPALIVE)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Result<QuickConfig, QuickErrors> {
        let interface = self.finish_interface();
        let peers = self.finish_peers();
        self.warn_shared_allowed_ips(&peers);
        self.warnings.sort_by_key(|w| w.line);
        match interface {
            Some(interface) if self.errors.is_empty() => Ok(QuickConfig {
                interface,
                peers,
                warnings: self.warnings,
            }),
            _ => {
                self.errors.sort_by_key(|e| e.line);
                Err(QuickErrors(self.errors))
            }
        }
    }

    fn finish_interface(&mut self) -> Option<QuickInterface> {
        let Some(draft) = self.interface.take() else {
            self.error(1, "[Interface]", QuickErrorKind::NoInterface);
            return None;
        };
        let Some(private_key) = draft.private_key else {
            if draft.key_line.is_none() {
                let kind = QuickErrorKind::Missing {
                    section: "Interface",
                };
                self.error(draft.line, "PrivateKey", kind);
            }
            return None;
        };
        Some(QuickInterface {
            private_key,
            listen_port: draft.listen_port,
            addresses: draft.addresses,
            mtu: draft.mtu,
            fwmark: draft.fwmark,
        })
    }

    fn finish_peers(&mut self) -> Vec<QuickPeer> {
        let mut by_key: HashMap<Key32, usize> = HashMap::new();
        let mut peers = Vec::with_capacity(self.peers.len());
        for draft in std::mem::take(&mut self.peers) {
            let (Some(public_key), Some(key_line)) = (draft.public_key, draft.key_line) else {
                if draft.key_line.is_none() {
                    let kind = QuickErrorKind::Missing { section: "Peer" };
                    self.error(draft.line, "PublicKey", kind);
                }
                continue;
            };
            if let Some(&first_line) = by_key.get(&public_key) {
                let kind = QuickErrorKind::DuplicatePeer { first_line };
                self.error(key_line, "PublicKey", kind);
                continue;
            }
            by_key.insert(public_key, draft.line);
            peers.push(draft.build(public_key));
        }
        peers
    }

    /// WireGuard routes a prefix to one peer: the last one that lists it.
    fn warn_shared_allowed_ips(&mut self, peers: &[QuickPeer]) {
        let mut owner: HashMap<IpCidr, usize> = HashMap::new();
        for peer in peers {
            for net in peer.allowed_ips.iter().map(IpCidr::network) {
                match owner.insert(net, peer.line) {
                    Some(first) if first != peer.line => {
                        let message = format!(
                            "{net} is also allowed for the peer on line {first}; WireGuard routes \
                             it to this later peer only"
                        );
                        self.warn(peer.line, "AllowedIPs", message);
                    }
                    _ => {}
                }
            }
        }
    }
}

impl InterfaceDraft {
    fn new(line: usize) -> Self {
        Self {
            line,
            key_line: None,
            private_key: None,
            listen_port: None,
            addresses: Vec::new(),
            mtu: None,
            fwmark: None,
        }
    }
}

impl PeerDraft {
    fn new(line: usize) -> Self {
        Self {
            line,
            key_line: None,
            public_key: None,
            preshared_key: None,
            allowed_ips: Vec::new(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }

    fn build(self, public_key: Key32) -> QuickPeer {
        QuickPeer {
            line: self.line,
            public_key,
            preshared_key: self.preshared_key,
            allowed_ips: self.allowed_ips,
            endpoint: self.endpoint,
            persistent_keepalive: self.persistent_keepalive,
        }
    }
}

const PORT: &str = "a port number (0-65535)";
const KEEPALIVE: &str = "off or an interval in seconds (0-65535)";
const MTU: &str = "an MTU (68-65535)";
const FWMARK: &str = "off, a number (0-4294967295) or 0x and hex digits";

fn number_error(value: &str, expected: &'static str) -> QuickErrorKind {
    QuickErrorKind::Number {
        value: value.to_owned(),
        expected,
    }
}

/// A decimal number of type `T`: digits only, no sign.
fn decimal<T: FromStr>(value: &str, expected: &'static str) -> Result<T, QuickErrorKind> {
    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_digit()) {
        return Err(number_error(value, expected));
    }
    value.parse().map_err(|_| number_error(value, expected))
}

/// A 16-bit number, 0 meaning unset; `off` also means unset where `allow_off`.
fn off_or_number(
    value: &str,
    allow_off: bool,
    expected: &'static str,
) -> Result<Option<u16>, QuickErrorKind> {
    if allow_off && value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    Ok(Some(decimal::<u16>(value, expected)?).filter(|&n| n != 0))
}

fn parse_mtu(value: &str) -> Result<u16, QuickErrorKind> {
    let mtu = decimal::<u16>(value, MTU)?;
    if mtu < MTU_MIN {
        return Err(number_error(value, MTU));
    }
    Ok(mtu)
}

/// wg(8)'s fwmark: `off`, decimal, or `0x` hex; 0 means unset.
fn parse_fwmark(value: &str) -> Result<Option<u32>, QuickErrorKind> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let mark = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).map_err(|_| number_error(value, FWMARK))?
        }
        Some(_) => return Err(number_error(value, FWMARK)),
        None => decimal::<u32>(value, FWMARK)?,
    };
    Ok(Some(mark).filter(|&m| m != 0))
}

/// A comma-separated list of addresses with optional prefixes; empty text is an empty list.
fn parse_cidrs(value: &str) -> Result<Vec<IpCidr>, QuickErrorKind> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(str::trim)
        .map(|item| match item {
            "" => Err(QuickErrorKind::EmptyItem),
            _ => Ok(item.parse::<IpCidr>()?),
        })
        .collect()
}

#[cfg(test)]
mod tests;
