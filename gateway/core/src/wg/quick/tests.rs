//! Tests of the wg-quick parser.

use super::*;

// SHA-256 outputs: key-shaped test data, not keys used anywhere.
const PRIV: &str = "Wi+azP161xlR1hh6PSlont2ZkxenJ0/0ieUaMvhgRng=";
const PUB_A: &str = "ROdBkGP+dcNqHc0rMVAX4U95L0/ECXB/w7EP6m7m0Ic=";
const PUB_B: &str = "UdW2/qR8LPUVectsz2V1dQRqokXo6m+vNLn+qbbwr9M=";
const PUB_C: &str = "w26VuRpD680lxXEBa4LW33RpXhLx8fjCeNf0z40IaOk=";
const PSK: &str = "3GEUhBrig7JWSehJ95PFgVtJmwJhRaVdpqE9Mzu139I=";

/// A server's file: dual stack, three peers, PSK, keepalive off, hooks and comments.
fn server_conf() -> String {
    format!(
        "# /etc/wireguard/wg0.conf\n\
         [Interface]\n\
         Address = 10.8.0.1/24, fd42:42:42::1/64   # dual stack\n\
         ListenPort = 51820\n\
         PrivateKey = {PRIV}\n\
         MTU = 1420\n\
         FwMark = 0xca6c\n\
         SaveConfig = false\n\
         PostUp = iptables -A FORWARD -i %i -j ACCEPT; \
         iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE\n\
         PostDown = iptables -D FORWARD -i %i -j ACCEPT\n\
         \n\
         # laptop\n\
         [Peer]\n\
         PublicKey = {PUB_A}\n\
         PresharedKey = {PSK}\n\
         AllowedIPs = 10.8.0.2/32, fd42:42:42::2/128\n\
         \n\
         [Peer]  # branch office\n\
         PublicKey = {PUB_B}\n\
         AllowedIPs = 10.8.0.3/32\n\
         AllowedIPs = 192.168.50.0/24,fd42:50::/48\n\
         Endpoint = branch.example.net:51820\n\
         PersistentKeepalive = off\n\
         \n\
         [Peer]\n\
         PublicKey = {PUB_C}\n\
         AllowedIPs = 10.8.0.4/32\n\
         Endpoint = [2001:db8::4]:51821\n\
         PersistentKeepalive = 25\n"
    )
}

fn cidrs(list: &[&str]) -> Vec<IpCidr> {
    list.iter().map(|c| c.parse().unwrap()).collect()
}

fn parse(text: &str) -> QuickConfig {
    QuickConfig::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The errors of a text that must not parse, as (line, key, kind).
fn errors(text: &str) -> Vec<(usize, String, QuickErrorKind)> {
    let e = QuickConfig::parse(text).expect_err("must not parse");
    e.0.into_iter().map(|e| (e.line, e.key, e.kind)).collect()
}

/// One peer-less interface followed by `extra`.
fn with_interface(extra: &str) -> String {
    format!("[Interface]\nPrivateKey = {PRIV}\n{extra}")
}

fn err(line: usize, key: &str, kind: QuickErrorKind) -> (usize, String, QuickErrorKind) {
    (line, key.to_owned(), kind)
}

fn number(value: &str, expected: &'static str) -> QuickErrorKind {
    number_error(value, expected)
}

#[test]
fn server_file() {
    let c = parse(&server_conf());
    let i = &c.interface;
    assert_eq!(i.private_key, PrivateKey::from_base64(PRIV).unwrap());
    assert_eq!(i.listen_port, Some(51820));
    assert_eq!(i.addresses, cidrs(&["10.8.0.1/24", "fd42:42:42::1/64"]));
    assert_eq!((i.mtu, i.fwmark), (Some(1420), Some(0xca6c)));
    assert_eq!(c.peers.len(), 3);
    let [a, b, p3] = &c.peers[..] else {
        unreachable!()
    };
    assert_eq!((a.line, a.public_key.to_base64().as_str()), (13, PUB_A));
    assert_eq!(a.preshared_key.as_ref().unwrap().expose_base64(), PSK);
    assert_eq!(a.allowed_ips, cidrs(&["10.8.0.2/32", "fd42:42:42::2/128"]));
    assert_eq!(
        (a.endpoint.as_deref(), a.persistent_keepalive),
        (None, None)
    );
    assert_eq!(b.line, 18);
    assert!(b.preshared_key.is_none());
    let nets = ["10.8.0.3/32", "192.168.50.0/24", "fd42:50::/48"];
    assert_eq!(b.allowed_ips, cidrs(&nets));
    assert_eq!(b.endpoint.as_deref(), Some("branch.example.net:51820"));
    assert_eq!(b.persistent_keepalive, None);
    assert_eq!(p3.endpoint.as_deref(), Some("[2001:db8::4]:51821"));
    assert_eq!(p3.persistent_keepalive, Some(25));
    let warned: Vec<_> = c
        .warnings
        .iter()
        .map(|w| (w.line, w.key.as_str()))
        .collect();
    assert_eq!(warned, [(8, "SaveConfig"), (9, "PostUp"), (10, "PostDown")]);
    assert!(
        c.warnings
            .iter()
            .all(|w| w.message.starts_with("ignored by pqgate: "))
    );
}

#[test]
fn client_file_with_crlf_bom_and_odd_case() {
    let text = format!(
        "\u{feff}[interface]\r\n\
         privatekey={PRIV}\r\n\
         ADDRESS = 10.8.0.2/32\r\n\
         address = fd42:42:42::2/128\r\n\
         Dns = 10.8.0.1, fd42:42:42::1\r\n\
         table = off\r\n\
         \r\n\
         [ PEER ]\r\n\
         publickey = {PUB_A}\r\n\
         presharedKEY = {PSK}\r\n\
         allowedips = 0.0.0.0/0, ::/0\r\n\
         endpoint = 203.0.113.1:51820\r\n\
         persistentkeepalive = OFF\r"
    );
    let c = parse(&text);
    assert_eq!(c.interface.addresses, cidrs(&["10.8.0.2", "fd42:42:42::2"]));
    assert_eq!(c.interface.listen_port, None);
    let p = &c.peers[0];
    assert_eq!(p.allowed_ips, cidrs(&["0.0.0.0/0", "::/0"]));
    assert_eq!(p.endpoint.as_deref(), Some("203.0.113.1:51820"));
    assert_eq!(p.persistent_keepalive, None);
    let keys: Vec<_> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["DNS", "Table"], "canonical spelling in warnings");
}

#[test]
fn every_ignored_key_warns_with_its_reason() {
    let hooks = "PreUp = a\nPostUp = b\nPostUp = c\nPreDown = d\nPostDown = e\n";
    let c = parse(&with_interface(&format!(
        "DNS = 1.1.1.1\nTable = 1234\n{hooks}SaveConfig = true\n"
    )));
    assert_eq!(
        c.warnings.len(),
        8,
        "repeated hooks are each ignored, not 'repeated'"
    );
    let w = &c.warnings[0];
    assert_eq!((w.line, w.key.as_str()), (3, "DNS"));
    assert_eq!(
        w.to_string(),
        "line 3: DNS: ignored by pqgate: resolvers are left to the host \
         (resolvconf is not called)"
    );
    assert!(
        c.warnings[2]
            .message
            .contains("hook commands are never run")
    );
    // An ignored key with an empty value is still only ignored.
    assert_eq!(parse(&with_interface("DNS =\n")).warnings.len(), 1);
}

#[test]
fn lists_accumulate_and_may_be_empty() {
    let c = parse(&with_interface(&format!(
        "Address = 10.0.0.1/24 ,fd00::1/64\nAddress = 10.0.1.1/24\n\
         [Peer]\nPublicKey = {PUB_A}\nAllowedIPs =\nAllowedIPs = 10.0.0.0/8\n\
         AllowedIPs = 10.0.0.0/8\n"
    )));
    let want = cidrs(&["10.0.0.1/24", "fd00::1/64", "10.0.1.1/24"]);
    assert_eq!(c.interface.addresses, want);
    assert_eq!(c.peers[0].allowed_ips, cidrs(&["10.0.0.0/8", "10.0.0.0/8"]));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let bare = parse(&with_interface(&format!("[Peer]\nPublicKey = {PUB_A}\n")));
    assert!(bare.peers[0].allowed_ips.is_empty());
    assert!(bare.interface.addresses.is_empty());
}

#[test]
fn off_and_zero_mean_unset() {
    let c = parse(&with_interface(&format!(
        "ListenPort = 0\nFwMark = off\n[Peer]\nPublicKey = {PUB_A}\nPersistentKeepalive = 0\n\
         [Peer]\nPublicKey = {PUB_B}\nPersistentKeepalive = 65535\n"
    )));
    assert_eq!((c.interface.listen_port, c.interface.fwmark), (None, None));
    assert_eq!(c.peers[0].persistent_keepalive, None);
    assert_eq!(c.peers[1].persistent_keepalive, Some(65535));
    for (text, want) in [
        ("0", None),
        ("0x0", None),
        ("51820", Some(51820)),
        ("0XFF", Some(255)),
    ] {
        assert_eq!(parse_fwmark(text), Ok(want), "{text}");
    }
    assert_eq!(parse_fwmark("4294967295"), Ok(Some(u32::MAX)));
    assert_eq!(parse_fwmark("0xffffffff"), Ok(Some(u32::MAX)));
}

#[test]
fn repeated_scalars_warn_and_the_last_wins() {
    let c = parse(&with_interface(
        "ListenPort = 1000\nListenPort = 2000\nMTU = 1280\nmtu = 1400\n",
    ));
    assert_eq!(
        (c.interface.listen_port, c.interface.mtu),
        (Some(2000), Some(1400))
    );
    let w: Vec<_> = c
        .warnings
        .iter()
        .map(|w| (w.line, w.key.as_str()))
        .collect();
    assert_eq!(w, [(4, "ListenPort"), (6, "MTU")]);
    assert!(c.warnings[0].message.contains("also on line 3"));
    // The count restarts with each section: one key per peer is not a repeat.
    let two = format!("[Peer]\nPublicKey = {PUB_A}\n[Peer]\nPublicKey = {PUB_B}\n");
    assert!(parse(&with_interface(&two)).warnings.is_empty());
}

#[test]
fn shared_allowed_ips_warn() {
    let c = parse(&with_interface(&format!(
        "[Peer]\nPublicKey = {PUB_A}\nAllowedIPs = 10.0.0.0/24, 10.1.0.0/16\n\
         [Peer]\nPublicKey = {PUB_B}\nAllowedIPs = 10.0.0.9/24\n"
    )));
    assert_eq!(c.warnings.len(), 1);
    let w = &c.warnings[0];
    assert_eq!((w.line, w.key.as_str()), (6, "AllowedIPs"));
    assert!(
        w.message
            .starts_with("10.0.0.0/24 is also allowed for the peer on line 3"),
        "{w}"
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let c = parse(&server_conf());
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(&PRIV[..16]) && !shown.contains(&PSK[..16]),
        "{shown}"
    );
    assert!(shown.contains(PUB_A), "public keys are shown");
    let bad = QuickConfig::parse(&format!("[Interface]\nPrivateKey = {}!\n", &PRIV[..43]));
    let shown = format!("{0} {0:?}", bad.unwrap_err());
    assert!(!shown.contains(&PRIV[..16]), "{shown}");
}

#[test]
fn structure_errors() {
    let text = format!(
        "ListenPort = 1\n[Interface]\nPrivateKey = {PRIV}\njust words\n= 5\n[Interface\n\
         Junk = 1\n[Wireguard]\nMore = 2\n[Interface]\nAddress = nonsense\n"
    );
    assert_eq!(
        errors(&text),
        [
            err(1, "ListenPort", QuickErrorKind::OutsideSection),
            err(4, "just words", QuickErrorKind::Syntax),
            err(5, "= 5", QuickErrorKind::Syntax),
            err(6, "[Interface", QuickErrorKind::Syntax),
            err(8, "[Wireguard]", QuickErrorKind::UnknownSection),
            err(
                10,
                "[Interface]",
                QuickErrorKind::DuplicateInterface { first_line: 2 }
            ),
        ],
        "keys in a rejected section are skipped, not reported again"
    );
}

#[test]
fn key_errors() {
    let text = with_interface(&format!(
        "Foo = 1\nEndpoint = 192.0.2.1:1\n[Peer]\nPublicKey = {PUB_A}\nAddress = 10.0.0.1\n\
         ListenPort = 3\nBar = 2\n"
    ));
    let peer = |belongs| QuickErrorKind::WrongSection {
        section: "Peer",
        belongs,
    };
    assert_eq!(
        errors(&text),
        [
            err(
                3,
                "Foo",
                QuickErrorKind::UnknownKey {
                    section: "Interface"
                }
            ),
            err(
                4,
                "Endpoint",
                QuickErrorKind::WrongSection {
                    section: "Interface",
                    belongs: "Peer"
                }
            ),
            err(7, "Address", peer("Interface")),
            err(8, "ListenPort", peer("Interface")),
            err(9, "Bar", QuickErrorKind::UnknownKey { section: "Peer" }),
        ]
    );
}

#[test]
fn value_errors() {
    let text = with_interface(&format!(
        "ListenPort = 65536\nListenPort = -1\nMTU = 67\nMTU =\nFwMark = 0x\n\
         FwMark = 0x1ffffffff\n\
         FwMark = on\nAddress = 10.0.0.1/33\nAddress = 10.0.0.1,,10.0.0.2\n\
         [Peer]\nPublicKey = {PUB_A}\nPersistentKeepalive = 65536\nPersistentKeepalive = 25s\n\
         AllowedIPs = 10.0.0.0/8,\nAllowedIPs = 10.0.0.0/8 10.1.0.0/16\nEndpoint = 192.0.2.1\n\
         Endpoint = fd00::1:51820\nEndpoint = [fd00::1]:0\n"
    ));
    let got = errors(&text);
    let want = [
        err(3, "ListenPort", number("65536", PORT)),
        err(4, "ListenPort", number("-1", PORT)),
        err(5, "MTU", number("67", MTU)),
        err(6, "MTU", QuickErrorKind::Empty),
        err(7, "FwMark", number("0x", FWMARK)),
        err(8, "FwMark", number("0x1ffffffff", FWMARK)),
        err(9, "FwMark", number("on", FWMARK)),
    ];
    assert_eq!(got[..7], want);
    let rest: Vec<_> = got[7..].iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert_eq!(
        rest,
        [
            (10, "Address"),
            (11, "Address"),
            (14, "PersistentKeepalive"),
            (15, "PersistentKeepalive"),
            (16, "AllowedIPs"),
            (17, "AllowedIPs"),
            (18, "Endpoint"),
            (19, "Endpoint"),
            (20, "Endpoint"),
        ]
    );
    assert!(matches!(
        got[7].2,
        QuickErrorKind::Cidr(CidrError::PrefixRange { .. })
    ));
    assert_eq!(got[8].2, QuickErrorKind::EmptyItem);
    assert_eq!(got[11].2, QuickErrorKind::EmptyItem);
    assert!(matches!(
        got[12].2,
        QuickErrorKind::Cidr(CidrError::PrefixSyntax(_))
    ));
    assert!(
        got[13..]
            .iter()
            .all(|e| matches!(e.2, QuickErrorKind::Endpoint(_)))
    );
}

#[test]
fn bad_keys_are_reported_once() {
    let text = format!(
        "[Interface]\nPrivateKey = {}\n[Peer]\nPublicKey =\nPresharedKey = {PUB_A} \
         extra\n[Peer]\nPublicKey = {PUB_B}\n",
        &PRIV[..43]
    );
    let got = errors(&text);
    assert_eq!(got.len(), 3, "{got:?}");
    let (line, key, kind) = &got[0];
    assert_eq!((*line, key.as_str()), (2, "PrivateKey"));
    assert_eq!(
        *kind,
        QuickErrorKind::Key(KeyError::Length {
            role: KeyRole::Private,
            len: 43
        })
    );
    assert_eq!(got[1], err(4, "PublicKey", QuickErrorKind::Empty));
    assert!(matches!(
        got[2],
        (
            5,
            _,
            QuickErrorKind::Key(KeyError::Length {
                role: KeyRole::Preshared,
                ..
            })
        )
    ));
}

#[test]
fn missing_and_duplicate_keys() {
    assert_eq!(
        errors(&format!("# nothing\n[Peer]\nPublicKey = {PUB_A}\n")),
        [err(1, "[Interface]", QuickErrorKind::NoInterface)]
    );
    assert_eq!(
        errors(""),
        [err(1, "[Interface]", QuickErrorKind::NoInterface)]
    );
    let text = format!(
        "\n[Interface]\nListenPort = 1\n[Peer]\nAllowedIPs = 10.0.0.1\n[Peer]\n\
         PublicKey = {PUB_A}\n[Peer]\nEndpoint = h:1\nPublicKey = {PUB_A}\n"
    );
    assert_eq!(
        errors(&text),
        [
            err(
                2,
                "PrivateKey",
                QuickErrorKind::Missing {
                    section: "Interface"
                }
            ),
            err(4, "PublicKey", QuickErrorKind::Missing { section: "Peer" }),
            err(
                10,
                "PublicKey",
                QuickErrorKind::DuplicatePeer { first_line: 6 }
            ),
        ]
    );
}

#[test]
fn error_display() {
    let e = QuickConfig::parse(&with_interface("MTU = 9\n[Peer]\n")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "2 error(s) in the wg-quick file:\n  line 3: MTU: \"9\" is not an MTU (68-65535)\n  \
         line 4: PublicKey: missing; every [Peer] needs one\n"
    );
    let e = QuickConfig::parse("[Interface]\nPrivateKey = x\n").unwrap_err();
    assert_eq!(
        e.0[0].to_string(),
        "line 2: PrivateKey: private key must be 44 base64 characters (32 bytes), \
         got 1"
    );
}

#[test]
fn comments_and_from_str() {
    let text = format!(
        "#[Peer]\n   # indented comment\n[Interface] # trailing\nPrivateKey = {PRIV} # key\n\
         ListenPort = 5#1\n"
    );
    let c: QuickConfig = text.parse().unwrap();
    assert_eq!(c.interface.listen_port, Some(5));
    assert!(c.peers.is_empty());
}

#[test]
fn interface_names() {
    let name = QuickConfig::interface_name_from_path;
    assert_eq!(name("/etc/wireguard/wg0.conf").unwrap(), "wg0");
    assert_eq!(name("wg0.conf").unwrap(), "wg0");
    assert_eq!(name("./office-A_1.conf").unwrap(), "office-A_1");
    assert_eq!(name("a=b+c.d.conf").unwrap(), "a=b+c.d");
    assert_eq!(name("x.conf.conf").unwrap(), "x.conf");
    assert_eq!(
        name("/tmp/123456789012345.conf").unwrap(),
        "123456789012345"
    );
    for bad in [
        "/tmp/1234567890123456.conf",
        ".conf",
        "/etc/wireguard/",
        "wg0",
        "wg0.CONF",
        "wg 0.conf",
        "wg:0.conf",
        "wg0.conf/",
        "..conf",
        "...conf",
        "wgé.conf",
        "",
    ] {
        let e = name(bad).unwrap_err();
        assert_eq!(e, InterfaceNameError(bad.to_owned()));
    }
    assert!(name("...conf").unwrap_err().to_string().contains("1-15"));
    assert!(is_interface_name("wg0") && !is_interface_name("") && !is_interface_name("."));
}
