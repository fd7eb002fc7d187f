//! PQ PSKs on `[[wireguard]]` interfaces end to end: two `pqgate run` peers (A, B) in network
//! namespaces with `[wireguard.pq]` sharing the tunnel's UDP port rotate a PSK every 2 s while a
//! 20-per-second ping and a TCP transfer run: no ping lost, the transfer byte-exact, and the
//! stock `wg show IFACE preshared-keys` (over pqgate's UAPI socket) shows a new PSK each epoch,
//! the same on both sides. Cutting the QUIC channel with nft in B's namespace (UDP on the tunnel
//! port whose first payload byte has the QUIC fixed bit 0x40) stops data under pq-required once
//! the last PQ PSK expires and data resumes when the rule goes; after a reload that makes the
//! peer pq-preferred (a live peer change), the same cut leaves the pings going, both sides
//! falling back to the pair's static PSK until the channel returns. Under the agile tunnel
//! (pq-required) the cut stops data too: its keys go with the last PSK. A stock
//! wireguard-go peer (C) with a static PSK on A's interface keeps working throughout. A SIGHUP
//! re-reads the channel's certificates and CRLs: a revocation closes the live channel, a renewed
//! certificate brings it back, a corrupt one is refused by key, all without a restart. Root and
//! netns only; every wait is bounded and Drop tears everything down.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use support::netns::{command_in, wireguard_go_peer};
use support::require_root;
use support::sys::*;

use pqgate::net::netns;
use pqgate_core::wg::Key32;

/// The tunnel port of A and B (each in its own namespace) and of the wireguard-go peer.
const PORT: u16 = 51910;
const C_PORT: u16 = 51911;
/// Rotation interval: short, so the test sees several epochs and an expiry quickly.
const INTERVAL_SECS: u64 = 2;
const ADMIN: &str = "127.0.0.1:9851";
const TRANSFER: usize = 2 << 20;
/// Upper bound on every wait for a state (debug build, two shared cores).
const WAIT: Duration = Duration::from_secs(30);

fn tools_ready(test: &str) -> bool {
    require_root(
        test,
        &["wireguard-go", "wg", "ping", "ip", "nft", "timeout"],
    )
}

/// One side: namespace, interface, keys, process.
struct Side {
    ns: String,
    ifname: String,
    private: String,
    public: String,
    child: Option<Child>,
    log: PathBuf,
}

/// The three namespaces and their processes; all removed on drop.
struct Lab {
    a: Side,
    b: Side,
    c: Side,
    psk_c: String,
    dir: tempfile::TempDir,
    extra: Vec<Child>,
    /// A run-time plugin both gateways load (`[[plugin]]`).
    plugin: Option<PathBuf>,
}

fn side(tag: &str, dir: &Path) -> Side {
    let pid = std::process::id();
    let (private, public) = wg_key_pair();
    let s = Side {
        ns: format!("pqwq-{pid}-{tag}"),
        ifname: format!("q{tag}{pid}"),
        private,
        public,
        child: None,
        log: dir.join(format!("{tag}.log")),
    };
    ok(&["ip", "netns", "add", &s.ns]);
    ok(&["ip", "-n", &s.ns, "link", "set", "dev", "lo", "up"]);
    s
}

fn veth(n: u8, one: &Side, two: &Side) {
    let pid = std::process::id();
    let (va, vb) = (format!("vq{n}a{pid}"), format!("vq{n}b{pid}"));
    ok(&[
        "ip", "link", "add", &va, "netns", &one.ns, "type", "veth", "peer", "name", &vb, "netns",
        &two.ns,
    ]);
    for (ns, dev, host) in [(&one.ns, &va, 1), (&two.ns, &vb, 2)] {
        let addr = format!("10.98.{n}.{host}/24");
        ok(&["ip", "-n", ns, "address", "add", &addr, "dev", dev]);
        ok(&["ip", "-n", ns, "link", "set", "dev", dev, "up"]);
    }
}

fn exec(ns: &str, args: &[&str]) -> std::process::Output {
    support::netns::run_in(30, ns, args)
}

fn log_text(s: &Side) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

fn http_get(ns: &str, path: &str) -> Option<String> {
    support::netns::http_get(ns, ADMIN.parse().ok()?, path)
}

/// The `/status` entry of `peer` on `side`'s interface.
fn peer_status(side: &Side, peer: &str) -> Option<serde_json::Value> {
    let text = http_get(&side.ns, "/status")?;
    let body = text.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let ifaces = v["interfaces"].as_array()?;
    let iface = ifaces
        .iter()
        .find(|i| i["interface"] == side.ifname.as_str())?;
    let peers = iface["peers"].as_array()?;
    peers.iter().find(|p| p["public_key"] == peer).cloned()
}

impl Lab {
    fn new() -> Self {
        Self::tagged("")
    }

    /// Namespaces and interfaces named with `tag`, so labs of tests running at once never
    /// collide (the UAPI socket path is host-wide).
    fn tagged(tag: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (
            side(&format!("{tag}a"), dir.path()),
            side(&format!("{tag}b"), dir.path()),
            side(&format!("{tag}c"), dir.path()),
        );
        let psk_c = ok(&["wg", "genpsk"]).trim().to_owned();
        let lab = Lab {
            a,
            b,
            c,
            psk_c,
            dir,
            extra: Vec::new(),
            plugin: None,
        };
        veth(1, &lab.a, &lab.b);
        veth(2, &lab.a, &lab.c);
        lab
    }

    /// The config of A (`to_c`: with the wireguard-go peer) or B, its pq peer in `mode`.
    fn config(&self, me: &Side, other: &Side, n: u8, mode: &str, to_c: bool) -> PathBuf {
        self.config_agile(me, other, n, mode, to_c, None)
    }

    /// [`Lab::config`], the pq peer's data under the agile tunnel with `agile` when set.
    fn config_agile(
        &self,
        me: &Side,
        other: &Side,
        n: u8,
        mode: &str,
        to_c: bool,
        agile: Option<&str>,
    ) -> PathBuf {
        let pki = self.dir.path();
        let (mine, theirs) = if n == 1 { ("a", "b") } else { ("b", "a") };
        let other_ip = if n == 1 { "10.98.1.2" } else { "10.98.1.1" };
        let mut t = self
            .plugin
            .as_ref()
            .map(|p| format!("[[plugin]]\npath = \"{}\"\n\n", p.display()))
            .unwrap_or_default();
        t += &format!(
            "[[wireguard]]\nname = \"{}\"\nprivate_key = \"{}\"\nlisten_port = {PORT}\n\
             address = [\"10.101.0.{n}/24\"]\n\n[wireguard.pq]\nca = \"{ca}\"\n\
             cert = \"{mine}-cert.pem\"\nkey = \"{mine}-key.pem\"\n\
             rotation_interval_secs = {INTERVAL_SECS}\n\n[[wireguard.peer]]\n\
             public_key = \"{}\"\nallowed_ips = [\"10.101.0.{}/32\"]\n\
             endpoint = \"{other_ip}:{PORT}\"\n\n[wireguard.peer.pq]\nname = \"{theirs}.pq.test\"\n\
             mode = \"{mode}\"\n",
            me.ifname,
            me.private,
            other.public,
            3 - n,
            ca = pki.join("pq-ca.pem").display(),
        );
        if let Some(aead) = agile {
            t.push_str(&format!("agile = \"{aead}\"\n"));
        }
        if to_c {
            t.push_str(&format!(
                "\n[[wireguard.peer]]\npublic_key = \"{}\"\npreshared_key = \"{}\"\n\
                 allowed_ips = [\"10.101.0.3/32\"]\nendpoint = \"10.98.2.2:{C_PORT}\"\n",
                self.c.public, self.psk_c
            ));
        }
        let path = pki.join(format!("{mine}.toml"));
        std::fs::write(&path, t).expect("config");
        path
    }

    /// A lab whose A and B load the SM4-GCM run-time plugin, with certificates, and their
    /// pq-required configs with `agile = "SM4-GCM"` (A's with the wireguard-go peer when `with_c`).
    fn sm4_agile(tag: &str, with_c: bool) -> (Self, PathBuf, PathBuf) {
        let mut lab = Lab::tagged(tag);
        lab.plugin = Some(support::sm4_plugin());
        let pki = support::Pki::new(lab.dir.path(), "pq");
        for n in ["a", "b"] {
            let names = [format!("{n}.pq.test")];
            pki.issue(n, &[&names[0]], &rcgen::PKCS_ECDSA_P256_SHA256);
        }
        let aead = Some("SM4-GCM");
        let a = lab.config_agile(&lab.a, &lab.b, 1, "pq-required", with_c, aead);
        let b = lab.config_agile(&lab.b, &lab.a, 2, "pq-required", false, aead);
        (lab, a, b)
    }

    /// Starts A and B on their configs and waits until both are healthy.
    fn start_both(&mut self, a: &Path, b: &Path) {
        self.start(1, a);
        self.start(2, b);
        self.wait_healthy(&self.a);
        self.wait_healthy(&self.b);
    }

    fn start(&mut self, which: u8, config: &Path) {
        let s = if which == 1 { &mut self.a } else { &mut self.b };
        let log = std::fs::File::create(&s.log).expect("log");
        let child = command_in(&s.ns, &[support::pqgate_bin(), "run", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning pqgate");
        s.child = Some(child);
    }

    fn wait_healthy(&self, s: &Side) {
        let deadline = Instant::now() + WAIT;
        while http_get(&s.ns, "/healthz").is_none_or(|r| !r.starts_with("HTTP/1.1 200")) {
            assert_alive(s);
            assert!(Instant::now() < deadline, "not ready:\n{}", log_text(s));
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_c(&mut self) {
        let c = &self.c;
        let conf = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {C_PORT}\n\n[Peer]\nPublicKey = {}\n\
             PresharedKey = {}\nAllowedIPs = 10.101.0.1/32\nEndpoint = 10.98.2.1:{PORT}\n",
            c.private, self.a.public, self.psk_c
        );
        let child = wireguard_go_peer(&c.ns, &c.ifname, self.dir.path(), &conf, &["10.101.0.3/24"]);
        self.c.child = Some(child);
    }

    fn reload(&self, s: &Side) {
        let count = |t: &str| t.matches("configuration reloaded").count();
        let before = count(&log_text(s));
        let pid = s.child.as_ref().expect("running").id().to_string();
        ok(&["kill", "-HUP", &pid]);
        let deadline = Instant::now() + WAIT;
        while count(&log_text(s)) == before {
            assert_alive(s);
            assert!(Instant::now() < deadline, "no reload:\n{}", log_text(s));
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until A's and B's status of each other satisfies `pred`.
    fn wait_status(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let sa = peer_status(&self.a, &self.b.public);
            let sb = peer_status(&self.b, &self.a.public);
            if sa.as_ref().is_some_and(&pred) && sb.as_ref().is_some_and(&pred) {
                return;
            }
            assert_alive(&self.a);
            assert_alive(&self.b);
            if Instant::now() >= deadline {
                // For the failure message: drops and PQ counters on both sides.
                for s in [&self.a, &self.b] {
                    let m = http_get(&s.ns, "/metrics").unwrap_or_default();
                    let pick = |l: &&str| l.contains("wg_drops") || l.contains("pqpsk");
                    let lines: Vec<&str> = m.lines().filter(pick).collect();
                    eprintln!("{} metrics: {lines:#?}", s.ifname);
                }
            }
            assert!(
                Instant::now() < deadline,
                "never {what}: A {sa:?}\nB {sb:?}\nA log:\n{}\nB log:\n{}",
                log_text(&self.a),
                log_text(&self.b)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn ping_once(&self, from: &Side, to: &str) -> bool {
        exec(&from.ns, &["ping", "-c", "1", "-W", "1", to])
            .status
            .success()
    }

    fn ping_within(&self, from: &Side, to: &str, tries: u32) {
        for _ in 0..tries {
            if self.ping_once(from, to) {
                return;
            }
        }
        panic!(
            "no reply from {to}:\nA:\n{}\nB:\n{}",
            log_text(&self.a),
            log_text(&self.b)
        );
    }

    /// Cuts (or restores) the QUIC channel in B's namespace: UDP to or from the tunnel port whose
    /// first payload byte has the QUIC fixed bit.
    fn cut_channel(&self, cut: bool) {
        let table = format!("pqwq{}", std::process::id());
        if !cut {
            ok(&[
                "ip", "netns", "exec", &self.b.ns, "nft", "delete", "table", "inet", &table,
            ]);
            return;
        }
        let rules = format!(
            "table inet {table} {{\n chain in {{ type filter hook input priority -10; \
             udp dport {PORT} @th,64,8 & 0x40 == 0x40 drop; }}\n chain out {{ type filter hook \
             output priority -10; udp sport {PORT} @th,64,8 & 0x40 == 0x40 drop; }}\n}}\n"
        );
        let path = self.dir.path().join("cut.nft");
        std::fs::write(&path, rules).expect("nft file");
        let path = path.to_string_lossy().into_owned();
        ok(&["ip", "netns", "exec", &self.b.ns, "nft", "-f", &path]);
    }
}

fn assert_alive(s: &Side) {
    if let Some(c) = &s.child {
        assert!(
            Path::new(&format!("/proc/{}", c.id())).exists(),
            "{} exited early:\n{}",
            s.ifname,
            log_text(s)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let sides = [&mut self.a, &mut self.b, &mut self.c];
        let children = sides.into_iter().filter_map(|s| s.child.take());
        for mut child in children.chain(self.extra.drain(..)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for s in [&self.a, &self.b, &self.c] {
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", s.ifname));
            let _ = run(10, &["ip", "netns", "del", &s.ns]);
        }
    }
}

/// `pqgate status [--json]` run in `side`'s namespace (its admin endpoint is the default).
fn status_cli(side: &Side, json: bool) -> String {
    let mut args = vec![support::pqgate_bin(), "status"];
    if json {
        args.push("--json");
    }
    let out = exec(&side.ns, &args);
    assert!(out.status.success(), "pqgate status: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `wg show IFACE preshared-keys`: the PSK of `peer`.
fn psk_of(ifname: &str, peer: &str) -> Option<String> {
    let out = run(5, &["wg", "show", ifname, "preshared-keys"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('\t')?;
        (k == peer).then(|| v.trim().to_owned())
    })
}

/// Gives the pq peer of the config at `path` a static PSK (in its `[[wireguard.peer]]` table,
/// just before its `[wireguard.peer.pq]` table).
fn with_static_psk(path: &Path, psk: &str) {
    let text = std::fs::read_to_string(path).expect("config");
    let anchor = "[wireguard.peer.pq]";
    assert_eq!(text.matches(anchor).count(), 1, "one pq peer: {text}");
    let text = text.replacen(anchor, &format!("preshared_key = \"{psk}\"\n{anchor}"), 1);
    std::fs::write(path, text).expect("config");
}

/// Waits (bounded) until A's PSK for B and B's for A, from `wg show`, satisfy `pred`; returns
/// them.
fn wait_psks(lab: &Lab, what: &str, pred: impl Fn(&str, &str) -> bool) -> (String, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let a = psk_of(&lab.a.ifname, &lab.b.public).unwrap_or_default();
        let b = psk_of(&lab.b.ifname, &lab.a.public).unwrap_or_default();
        if pred(&a, &b) {
            return (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: A holds {a:?}, B holds {b:?}\nA log:\n{}\nB log:\n{}",
            log_text(&lab.a),
            log_text(&lab.b)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// (transmitted, received) from ping's summary.
fn ping_counts(text: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}

fn pattern(len: usize) -> Vec<u8> {
    support::netns::pattern(0x9e37_79b9, len)
}

/// `count` pings from `from` to `to` at 20/s, running; its quiet summary is in the output.
fn ping_flood(from: &Side, to: &str, count: u32) -> Child {
    let count = count.to_string();
    support::netns::command_in(&from.ns, &["ping", "-q", "-i", "0.05", "-c", &count, to])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping flood")
}

/// Sends [`TRANSFER`] bytes from `from_ns` to `addr` in `to_ns`, paced to last a few epochs;
/// returns what arrived.
fn transfer(from_ns: &str, to_ns: &str, addr: SocketAddr) -> thread::JoinHandle<Vec<u8>> {
    let to_ns = to_ns.to_owned();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || -> Vec<u8> {
        netns::enter_thread(&to_ns).expect("server namespace");
        let listener = TcpListener::bind(addr).expect("binding");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accepting");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut got = Vec::with_capacity(TRANSFER);
        conn.read_to_end(&mut got).expect("reading");
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener ready");
    let from_ns = from_ns.to_owned();
    thread::spawn(move || {
        netns::enter_thread(&from_ns).expect("client namespace");
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        conn.set_write_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        // 64 chunks 100 ms apart: the transfer spans about three rotations.
        for chunk in pattern(TRANSFER).chunks(TRANSFER / 64) {
            conn.write_all(chunk).expect("sending");
            thread::sleep(Duration::from_millis(100));
        }
    });
    server
}

#[test]
fn pq_psks_rotate_hitless_and_fail_closed() {
    if !tools_ready("pq_psks_rotate_hitless_and_fail_closed") {
        return;
    }
    let mut lab = Lab::new();
    let pki = support::Pki::new(lab.dir.path(), "pq");
    for n in ["a", "b"] {
        let names = [format!("{n}.pq.test")];
        pki.issue(n, &[&names[0]], &rcgen::PKCS_ECDSA_P256_SHA256);
    }
    let (a_conf, b_conf) = (
        lab.config(&lab.a, &lab.b, 1, "pq-required", true),
        lab.config(&lab.b, &lab.a, 2, "pq-required", false),
    );
    lab.start(1, &a_conf);
    lab.start(2, &b_conf);
    lab.wait_healthy(&lab.a);
    lab.wait_healthy(&lab.b);
    lab.start_c();
    // (c) The stock peer with its static PSK answers, and keeps answering below.
    lab.ping_within(&lab.c, "10.101.0.1", 10);
    let c_ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.c.ns,
            "ping",
            "-i",
            "0.1",
            "10.101.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping from C");
    let c_ping_pid = c_ping.id();
    lab.extra.push(c_ping);

    // (a) Rotations under load.
    lab.wait_status("a PQ PSK", |p| {
        p["data_allowed"] == true && p["epoch"].is_u64()
    });
    lab.ping_within(&lab.a, "10.101.0.2", 10);
    let flood = ping_flood(&lab.a, "10.101.0.2", 160);
    let received = transfer(
        &lab.a.ns,
        &lab.b.ns,
        "10.101.0.2:5201".parse().expect("addr"),
    );
    let mut seen: Vec<(Option<String>, Option<String>)> = Vec::new();
    let sample_until = Instant::now() + Duration::from_secs(INTERVAL_SECS * 4);
    while Instant::now() < sample_until {
        seen.push((
            psk_of(&lab.a.ifname, &lab.b.public),
            psk_of(&lab.b.ifname, &lab.a.public),
        ));
        thread::sleep(Duration::from_millis(200));
    }
    let out = flood.wait_with_output().expect("ping flood result");
    let text = String::from_utf8_lossy(&out.stdout);
    let (sent, got) = ping_counts(&text);
    assert!(sent >= 160 && got == sent, "pings lost at rotation: {text}");
    let data = received.join().expect("transfer");
    assert!(
        data == pattern(TRANSFER),
        "transfer differs ({} bytes)",
        data.len()
    );
    let on_a: Vec<&String> = seen.iter().filter_map(|(a, _)| a.as_ref()).collect();
    let on_b: Vec<&String> = seen.iter().filter_map(|(_, b)| b.as_ref()).collect();
    let mut distinct = on_a.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
        "PSK did not change each epoch: {seen:?}"
    );
    for k in &distinct {
        assert!(on_b.contains(k), "B never held A's PSK {k}: {seen:?}");
        assert_ne!(k.as_str(), "(none)", "no PSK installed: {seen:?}");
    }
    eprintln!(
        "rotation under load: {got}/{sent} pings, {} bytes exact, {} distinct PSKs in {} samples",
        data.len(),
        distinct.len(),
        seen.len()
    );

    // `pqgate status` (text and JSON) and the per-peer metrics carry the interface.
    let text = status_cli(&lab.a, false);
    assert!(
        text.contains(&format!("interface {} (profile pq-hybrid", lab.a.ifname))
            && text.contains(&format!("peer {} (b.pq.test) pq-required", lab.b.public))
            && text.contains("data allowed"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&status_cli(&lab.a, true)).expect("JSON");
    let peer = &v["interfaces"][0]["peers"][0];
    assert!(
        peer["epoch"].is_u64() && peer["rotations"].as_u64() >= Some(3),
        "{v}"
    );
    assert_eq!(peer["kems"], serde_json::json!(["X25519MLKEM768"]), "{v}");
    let allowed = |want: &str| {
        let m = http_get(&lab.a.ns, "/metrics").unwrap_or_default();
        m.lines().any(|l| {
            l.starts_with("pqgate_pqpsk_data_allowed{")
                && l.contains(&format!("interface=\"{}\"", lab.a.ifname))
                && l.contains(&lab.b.public)
                && l.ends_with(want)
        })
    };
    assert!(allowed(" 1"), "no data_allowed 1 metric for the peer");

    // (b) pq-required: cut the channel; data stops once the last PQ PSK expires, then resumes.
    lab.cut_channel(true);
    lab.wait_status("expired (pq-required)", |p| p["data_allowed"] == false);
    let text = status_cli(&lab.a, false);
    assert!(text.contains("data BLOCKED"), "{text}");
    assert!(
        !lab.ping_once(&lab.a, "10.101.0.2") && !lab.ping_once(&lab.a, "10.101.0.2"),
        "data still flows after the last PQ PSK expired"
    );
    lab.cut_channel(false);
    lab.wait_status("a PQ PSK again", |p| p["data_allowed"] == true);
    lab.ping_within(&lab.a, "10.101.0.2", 10);

    // pq-preferred by reload (a live peer change on both sides), with a static PSK for the
    // pair: the same cut leaves data going, on the static PSK from the next handshake on.
    let static_psk = ok(&["wg", "genpsk"]).trim().to_owned();
    let a_conf = lab.config(&lab.a, &lab.b, 1, "pq-preferred", true);
    let b_conf = lab.config(&lab.b, &lab.a, 2, "pq-preferred", false);
    with_static_psk(&a_conf, &static_psk);
    with_static_psk(&b_conf, &static_psk);
    lab.reload(&lab.a);
    lab.reload(&lab.b);
    lab.wait_status("pq-preferred with a PQ PSK", |p| {
        p["mode"] == "pq-preferred" && p["epoch"].is_u64() && p["channel_up"] == true
    });
    let is_pq = |a: &str, b: &str| a == b && a != static_psk && a != "(none)" && !a.is_empty();
    wait_psks(&lab, "the same PQ PSK (pq-preferred)", is_pq);
    lab.ping_within(&lab.a, "10.101.0.2", 10);
    lab.cut_channel(true);
    lab.wait_status("expired (pq-preferred)", |p| p["expired"] == true);
    wait_psks(&lab, "the static PSK after the fall-back", |a, b| {
        a == static_psk && b == static_psk
    });
    let out = exec(
        &lab.a.ns,
        &["ping", "-q", "-i", "0.1", "-c", "20", "10.101.0.2"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (sent, got) = ping_counts(&text);
    assert!(sent == 20 && got == sent, "pq-preferred stopped: {text}");
    for s in [&lab.a, &lab.b] {
        let log = log_text(s);
        assert!(log.contains("falls back"), "no fall-back warning:\n{log}");
    }
    lab.cut_channel(false);
    lab.wait_status("a PQ PSK after the fall-back", |p| {
        p["expired"] == false && p["channel_up"] == true
    });
    wait_psks(&lab, "a PQ PSK again (pq-preferred)", is_pq);
    lab.ping_within(&lab.a, "10.101.0.2", 10);

    // (c) The wireguard-go peer never lost a reply (the one in flight at SIGINT aside).
    ok(&["kill", "-INT", &c_ping_pid.to_string()]);
    let c_ping = lab.extra.pop().expect("C's ping");
    let out = c_ping.wait_with_output().expect("C's ping result");
    let text = String::from_utf8_lossy(&out.stdout);
    let (sent, got) = ping_counts(&text);
    assert!(
        sent > 50 && got + 1 >= sent,
        "the static-PSK peer lost pings: {text}"
    );
    eprintln!("static-PSK wireguard-go peer: {got}/{sent} pings");
    let status = http_get(&lab.a.ns, "/status").unwrap_or_default();
    assert!(
        !status.contains(&lab.c.public),
        "a plain peer is in the PQ status: {status}"
    );
}

/// pq-required with the agile tunnel fails closed: when the channel is cut and the last epoch
/// expires, the peer's agile keys go too (not only its WireGuard sessions), so no data flows
/// until the channel is back and a new epoch installs new keys.
#[test]
fn agile_tunnel_fails_closed_when_the_channel_is_cut() {
    if !tools_ready("agile_tunnel_fails_closed_when_the_channel_is_cut") {
        return;
    }
    let (mut lab, a_conf, b_conf) = Lab::sm4_agile("h", false);
    lab.start_both(&a_conf, &b_conf);
    lab.wait_status("a PQ PSK", |p| {
        p["data_allowed"] == true && p["epoch"].is_u64()
    });
    lab.ping_within(&lab.a, "10.101.0.2", 10);
    let installs = |s: &Side| log_text(s).matches("agile tunnel keys installed").count();
    assert!(
        installs(&lab.a) >= 1 && installs(&lab.b) >= 1,
        "no agile keys before the cut:\nA:\n{}\nB:\n{}",
        log_text(&lab.a),
        log_text(&lab.b)
    );

    lab.cut_channel(true);
    lab.wait_status("expired (pq-required, agile)", |p| {
        p["data_allowed"] == false
    });
    // No epoch can be installed while the channel is cut.
    let before = [installs(&lab.a), installs(&lab.b)];
    assert!(
        !lab.ping_once(&lab.a, "10.101.0.2") && !lab.ping_once(&lab.a, "10.101.0.2"),
        "agile data still flows after the last epoch expired"
    );

    lab.cut_channel(false);
    lab.wait_status("a PQ PSK again (agile)", |p| p["data_allowed"] == true);
    lab.ping_within(&lab.a, "10.101.0.2", 10);
    let after = [installs(&lab.a), installs(&lab.b)];
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "no new agile keys after the channel came back: {before:?} -> {after:?}"
    );
}

/// Packets per agile key in the agile test: keys update inside each epoch every 48 packets.
const KEY_PACKETS: u64 = 64;

/// The agile tunnel: A and B carry their data under SM4-GCM (the run-time national-cipher
/// plugin) keyed per epoch from the channel (type-0x11 messages instead of WireGuard data)
/// while the epochs rotate every 2 s and, with `agile_key_packets = 64`, the keys update inside
/// each epoch every 48 packets: no ping lost, a TCP transfer byte-exact, key updates and agile
/// packets counted per peer, one-way traffic from the channel's responder carried across epochs
/// while everything the initiator sends is dropped, and the stock wireguard-go peer C on A's
/// interface keeps working on plain WireGuard.
#[test]
fn agile_tunnel_carries_traffic_across_epochs() {
    if !tools_ready("agile_tunnel_carries_traffic_across_epochs") {
        return;
    }
    let (mut lab, a_conf, b_conf) = Lab::sm4_agile("g", true);
    for conf in [&a_conf, &b_conf] {
        let text = std::fs::read_to_string(conf).expect("config");
        let line = "agile = \"SM4-GCM\"\n";
        let capped = text.replace(line, &format!("{line}agile_key_packets = {KEY_PACKETS}\n"));
        assert_ne!(capped, text, "no agile line in {}", conf.display());
        std::fs::write(conf, capped).expect("config");
    }
    lab.start_both(&a_conf, &b_conf);
    lab.start_c();
    lab.ping_within(&lab.c, "10.101.0.1", 10);
    lab.wait_status("a PQ PSK", |p| {
        p["data_allowed"] == true && p["epoch"].is_u64()
    });
    lab.ping_within(&lab.a, "10.101.0.2", 10);
    let flood = ping_flood(&lab.a, "10.101.0.2", 120);
    let received = transfer(
        &lab.a.ns,
        &lab.b.ns,
        "10.101.0.2:5202".parse().expect("addr"),
    );
    let out = flood.wait_with_output().expect("ping flood result");
    let text = String::from_utf8_lossy(&out.stdout);
    let (sent, got) = ping_counts(&text);
    assert!(
        sent >= 120 && got == sent,
        "pings lost on the agile tunnel: {text}"
    );
    let data = received.join().expect("transfer");
    assert!(
        data == pattern(TRANSFER),
        "transfer differs ({} bytes)",
        data.len()
    );
    lab.ping_within(&lab.c, "10.101.0.1", 5);
    // Per peer: agile packets both ways, and keys updated inside the epochs (each side counts
    // its sealer's and its opener's updates; the transfer alone is ~1,450 packets A -> B).
    for (me, peer) in [(&lab.a, &lab.b), (&lab.b, &lab.a)] {
        let m = http_get(&me.ns, "/metrics").unwrap_or_default();
        let of = |name: &str| peer_metric(&m, name, &peer.public);
        let (tx, rx) = (
            of("pqgate_wg_peer_agile_tx_packets_total"),
            of("pqgate_wg_peer_agile_rx_packets_total"),
        );
        let updates = of("pqgate_wg_peer_agile_key_updates_total");
        assert!(
            tx >= 120.0 && rx >= 120.0 && updates >= 20.0,
            "{}: agile tx {tx} rx {rx} key updates {updates}",
            me.ifname
        );
        eprintln!(
            "{}: agile tx {tx} rx {rx}, {updates} key updates",
            me.ifname
        );
    }
    // `pqgate status` shows the agile tunnel per peer.
    let v: serde_json::Value = serde_json::from_str(&status_cli(&lab.a, true)).expect("JSON");
    let agile = &v["interfaces"][0]["peers"][0]["agile"];
    assert!(
        agile["aead"] == "SM4-GCM"
            && agile["send_epoch"].is_u64()
            && agile["key_updates"].as_u64() >= Some(20),
        "{v}"
    );
    assert!(status_cli(&lab.a, false).contains("agile SM4-GCM: sends epoch"));
    one_way_from_the_responder(&lab);
    // Stop A: its exit line counts what the agile tunnel carried.
    if let Some(mut child) = lab.a.child.take() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let log_a = log_text(&lab.a);
    // "... agile rx N tx M" in the exit line.
    let numbers: Vec<u64> = log_a
        .split("agile rx ")
        .nth(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .filter(|t| !t.is_empty())
                .take(2)
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let agile = |what: &str| numbers.get(usize::from(what == "tx")).copied().unwrap_or(0);
    assert!(
        agile("rx") >= 120 && agile("tx") >= 120,
        "the pings and the transfer did not go through the agile tunnel:\n{log_a}"
    );
    for side in [&lab.a, &lab.b] {
        let log = log_text(side);
        let epochs = log.matches("agile tunnel keys installed").count();
        assert!(epochs >= 3, "{epochs} agile epochs on {}:\n{log}", side.ns);
        assert!(!log.contains("agile tunnel keys refused"), "{log}");
    }
}

/// A sample of `name` for `peer` (base64) in Prometheus text, 0 when absent.
fn peer_metric(metrics: &str, name: &str, peer: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(peer))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// One-way traffic across epochs: every agile datagram the channel's initiator sends is dropped
/// (so the responder never sees a packet of a new epoch) while the responder pings it for more
/// than three epochs; the responder must switch its send key on its own deadline, or the
/// initiator would stop opening its packets after the grace period. Counted at the initiator.
fn one_way_from_the_responder(lab: &Lab) {
    let key = |s: &Side| s.public.parse::<Key32>().expect("key");
    // The channel's initiator has the lower public key (docs/design/agile-tunnel.md section 3).
    let (init, resp, init_ip) = if key(&lab.a).as_bytes() < key(&lab.b).as_bytes() {
        (&lab.a, &lab.b, "10.101.0.1")
    } else {
        (&lab.b, &lab.a, "10.101.0.2")
    };
    let table = format!("pqow{}", std::process::id());
    let rules = format!(
        "table inet {table} {{\n chain out {{ type filter hook output priority -10; \
         udp dport {PORT} @th,64,8 == 0x11 drop; }}\n chain in {{ type filter hook input \
         priority 0; iifname \"{}\" icmp type echo-request counter; }}\n}}\n",
        init.ifname
    );
    let path = lab.dir.path().join("oneway.nft");
    std::fs::write(&path, rules).expect("nft file");
    let path = path.to_string_lossy().into_owned();
    ok(&["ip", "netns", "exec", &init.ns, "nft", "-f", &path]);
    let sent = 8 * 20;
    let count = sent.to_string();
    let out = exec(
        &resp.ns,
        &["ping", "-q", "-i", "0.05", "-W", "1", "-c", &count, init_ip],
    );
    let listing = exec(&init.ns, &["nft", "list", "table", "inet", &table]);
    ok(&[
        "ip", "netns", "exec", &init.ns, "nft", "delete", "table", "inet", &table,
    ]);
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let got: u64 = listing
        .split("packets ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let (tx, _) = ping_counts(&String::from_utf8_lossy(&out.stdout));
    let drops = |s: &Side| {
        let m = http_get(&s.ns, "/metrics").unwrap_or_default();
        let lines: Vec<String> = m
            .lines()
            .filter(|l| l.starts_with("pqgate_wg_drops_total") && !l.ends_with(" 0"))
            .map(str::to_owned)
            .collect();
        lines.join("\n")
    };
    assert!(
        tx == sent && got == sent,
        "one-way: {got} of {tx} echo requests from the responder arrived:\n{listing}\n\
         initiator drops:\n{}\nresponder drops:\n{}\nresponder log:\n{}\ninitiator log:\n{}",
        drops(init),
        drops(resp),
        log_text(resp),
        log_text(init)
    );
    eprintln!("one-way from the responder across epochs: {got}/{sent}");
}

/// `pqgate ca ARGS`: its stdout, trimmed (the test fails on an error).
fn pqgate_ca(args: &[&str]) -> String {
    let out = Command::new(support::pqgate_bin())
        .arg("ca")
        .args(args)
        .output()
        .expect("pqgate ca");
    assert!(out.status.success(), "pqgate ca {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The `/status` interface entry of `side`.
fn iface_status(side: &Side) -> Option<serde_json::Value> {
    let text = http_get(&side.ns, "/status")?;
    let v: serde_json::Value = serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()?;
    let ifaces = v["interfaces"].as_array()?;
    let found = ifaces
        .iter()
        .find(|i| i["interface"] == side.ifname.as_str());
    found.cloned()
}

/// `cert_revoked` on `side`: its pq peer's failures plus its interface's refused connections
/// (which one grows depends on who connects: the lower key).
fn revoked_count(side: &Side) -> u64 {
    let Some(i) = iface_status(side) else {
        return 0;
    };
    let refused = i["refused"]["cert_revoked"].as_u64().unwrap_or(0);
    let peer = i["peers"][0]["failures"]["cert_revoked"]
        .as_u64()
        .unwrap_or(0);
    refused + peer
}

/// Waits (bounded) until `pred` holds for `side`'s status of its pq peer `peer`.
fn wait_one(s: &Side, peer: &Side, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !peer_status(s, &peer.public).as_ref().is_some_and(&pred) {
        assert_alive(s);
        assert!(
            Instant::now() < deadline,
            "never {what}: {:?}\nlog:\n{}",
            iface_status(s),
            log_text(s)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Certificate renewal and revocation by SIGHUP, no restart: a corrupt certificate file is
/// refused by its config key (`wireguard[0].pq.cert`) and the channel keeps rotating; a CRL
/// (made by `pqgate ca`) that revokes B's certificate, re-read by A's reload, closes the live
/// channel and A refuses B's reconnects (counted); B's renewed certificate (same name, same
/// files, new serial) brings the channel back after B's reload, with new epochs on both sides
/// and the same two processes.
#[test]
fn sighup_renews_certificates_and_applies_revocation_to_live_channels() {
    if !tools_ready("sighup_renews_certificates_and_applies_revocation_to_live_channels") {
        return;
    }
    let mut lab = Lab::tagged("r");
    let dir = lab.dir.path().to_owned();
    let ca_dir = dir.join("ca");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let ca_dir_s = s(&ca_dir);
    pqgate_ca(&["init", "--dir", &ca_dir_s, "--alg", "ecdsa-p256"]);
    std::fs::copy(ca_dir.join("ca.pem"), dir.join("pq-ca.pem")).expect("CA copy");
    let issue = |who: &str, force: bool| {
        let name = format!("{who}.pq.test");
        let (key, cert) = (
            s(&dir.join(format!("{who}-key.pem"))),
            s(&dir.join(format!("{who}-cert.pem"))),
        );
        let mut args = vec!["issue", "--dir", &ca_dir_s, "--name", &name, "--both"];
        args.extend(["--out-key", &key, "--out-cert", &cert]);
        if force {
            args.push("--force");
        }
        pqgate_ca(&args)
    };
    let crl = dir.join("pq.crl");
    let make_crl = || pqgate_ca(&["crl", "--dir", &ca_dir_s, "--out", &s(&crl)]);
    issue("a", false);
    let serial_b = issue("b", false);
    make_crl();
    let (a_conf, b_conf) = (
        lab.config(&lab.a, &lab.b, 1, "pq-required", false),
        lab.config(&lab.b, &lab.a, 2, "pq-required", false),
    );
    for conf in [&a_conf, &b_conf] {
        let text = std::fs::read_to_string(conf).expect("config");
        let with_crl = text.replacen("cert = ", &format!("crl = [\"{}\"]\ncert = ", s(&crl)), 1);
        std::fs::write(conf, with_crl).expect("config");
    }
    lab.start_both(&a_conf, &b_conf);
    lab.wait_status("a PQ PSK", |p| {
        p["channel_up"] == true && p["epoch"].is_u64()
    });
    let rotations = |x: &Side, y: &Side| {
        peer_status(x, &y.public)
            .and_then(|p| p["rotations"].as_u64())
            .unwrap_or(0)
    };
    let more = |lab: &Lab| {
        let n = rotations(&lab.a, &lab.b).max(rotations(&lab.b, &lab.a));
        move |p: &serde_json::Value| p["channel_up"] == true && p["rotations"].as_u64() > Some(n)
    };

    // A corrupt certificate: the reload reports it by key and the channel keeps rotating.
    let cert_a = dir.join("a-cert.pem");
    let good = std::fs::read(&cert_a).expect("A's certificate");
    std::fs::write(&cert_a, "-----BEGIN CERTIFICATE-----\ngarbage\n").expect("corrupting");
    lab.reload(&lab.a);
    let log = log_text(&lab.a);
    assert!(
        log.contains("wireguard[0].pq.cert: ")
            && log.contains("the running PQ channel TLS stays")
            && !log.contains("PQ channel TLS reloaded"),
        "{log}"
    );
    lab.wait_status("rotations after the refused reload", more(&lab));
    std::fs::write(&cert_a, good).expect("restoring");

    // Revoke B in the CRL A reads; reload A only: the live channel closes, B is refused, and
    // B loses data access at once (not when its last PSK would expire, 1.25-2.25 intervals
    // later).
    lab.ping_within(&lab.a, "10.101.0.2", 5);
    pqgate_ca(&["revoke", "--dir", &ca_dir_s, "--serial", &serial_b]);
    make_crl();
    let revoked_before = revoked_count(&lab.a);
    lab.reload(&lab.a);
    let a_b = peer_status(&lab.a, &lab.b.public).expect("A's status");
    assert_eq!(
        (&a_b["expired"], &a_b["data_allowed"]),
        (&serde_json::json!(true), &serde_json::json!(false)),
        "{a_b}"
    );
    assert!(
        !lab.ping_once(&lab.a, "10.101.0.2"),
        "B reachable after its revocation"
    );
    let log = log_text(&lab.a);
    assert!(
        log.contains("PQ channel TLS reloaded")
            && log.contains("PQ PSK channel closed: the peer's certificate is no longer trusted"),
        "{log}"
    );
    wait_one(&lab.a, &lab.b, "the channel down on A", |p| {
        p["channel_up"] == false
    });
    let deadline = Instant::now() + WAIT;
    // The close and at least one refused reconnect.
    while revoked_count(&lab.a) < revoked_before + 2 {
        assert!(
            Instant::now() < deadline,
            "no refusal: {:?}",
            iface_status(&lab.a)
        );
        thread::sleep(Duration::from_millis(100));
    }
    let rotations_down = rotations(&lab.a, &lab.b);
    thread::sleep(Duration::from_secs(INTERVAL_SECS * 2));
    let a_b = peer_status(&lab.a, &lab.b.public).expect("A's status");
    assert_eq!(a_b["channel_up"], false, "{a_b}");
    assert_eq!(a_b["rotations"].as_u64(), Some(rotations_down), "{a_b}");

    // Renew B's certificate (same name and files, new serial) and reload B: the channel is back.
    let serial_b2 = issue("b", true);
    assert_ne!(serial_b2, serial_b);
    lab.reload(&lab.b);
    let log = log_text(&lab.b);
    assert!(
        log.contains("PQ channel TLS reloaded") && log.contains(&format!("serial {serial_b2}")),
        "{log}"
    );
    lab.wait_status("the channel and new epochs after the renewal", more(&lab));
    wait_one(&lab.a, &lab.b, "data allowed again on A", |p| {
        p["data_allowed"] == true
    });
    lab.ping_within(&lab.a, "10.101.0.2", 10);
    // Same processes (never exited), and each interface's node started once (no restart).
    for side in [&mut lab.a, &mut lab.b] {
        let child = side.child.as_mut().expect("running");
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "{} exited",
            side.ifname
        );
        let starts = log_text(side).matches("PQ PSK channel up").count();
        assert_eq!(starts, 1, "{}:\n{}", side.ifname, log_text(side));
    }
    eprintln!(
        "revocation: {} cert_revoked on A; renewal: serial {serial_b} -> {serial_b2}",
        revoked_count(&lab.a)
    );
    for side in [&lab.a, &lab.b] {
        let keep = |l: &&str| l.contains("TLS") || l.contains("no longer trusted");
        for line in log_text(side).lines().filter(keep) {
            eprintln!("{}: {line}", side.ifname);
        }
    }
}
