//! `pqgate wg up` against Debian's stock wireguard-go, in two network namespaces joined by a
//! veth: handshake (each side initiating), ping both ways over IPv4 and IPv6, a 10 MiB TCP
//! transfer checked byte for byte in both directions, with and without a pre-shared key, garbage
//! datagrams survived, and a clean exit on SIGTERM that removes the interface. Runs as root;
//! skips (or fails under REQUIRE_INTEROP_TOOLS) when the tools are missing. Every wait is bounded
//! and Drop tears everything down, even on panic.

mod common;

use common::sys::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pqgate::net::netns;

const PORT_A: u16 = 51820;
const PORT_B: u16 = 51821;
const TRANSFER: usize = 10 << 20;

/// Two namespaces, `a` running pqgate and `b` running wireguard-go; all removed on drop.
struct Lab {
    a: String,
    b: String,
    if_a: String,
    if_b: String,
    dir: tempfile::TempDir,
    pqgate: Option<Child>,
    wggo: Option<Child>,
}

impl Lab {
    fn new(tag: char) -> Self {
        let pid = std::process::id();
        let lab = Lab {
            a: format!("pqgt-{pid}-{tag}-a"),
            b: format!("pqgt-{pid}-{tag}-b"),
            if_a: format!("pa{tag}{pid}"),
            if_b: format!("pb{tag}{pid}"),
            dir: tempfile::tempdir().expect("tempdir"),
            pqgate: None,
            wggo: None,
        };
        let (va, vb) = (format!("va{tag}{pid}"), format!("vb{tag}{pid}"));
        ok(&["ip", "netns", "add", &lab.a]);
        ok(&["ip", "netns", "add", &lab.b]);
        ok(&[
            "ip", "link", "add", &va, "netns", &lab.a, "type", "veth", "peer", "name", &vb,
            "netns", &lab.b,
        ]);
        for (ns, dev, addr) in [(&lab.a, &va, "10.99.0.1/24"), (&lab.b, &vb, "10.99.0.2/24")] {
            ok(&["ip", "-n", ns, "address", "add", addr, "dev", dev]);
            ok(&["ip", "-n", ns, "link", "set", "dev", dev, "up"]);
            ok(&["ip", "-n", ns, "link", "set", "dev", "lo", "up"]);
        }
        lab
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    /// Starts wireguard-go in `b` and configures it.
    fn start_wireguard_go(&mut self, private: &str, peer_public: &str, psk: Option<&str>) {
        let child = self
            .exec(&self.b, &["wireguard-go", "-f", &self.if_b])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning wireguard-go");
        self.wggo = Some(child);
        let sock = PathBuf::from(format!("/var/run/wireguard/{}.sock", self.if_b));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "wireguard-go did not create {sock:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let psk_line = psk
            .map(|k| format!("PresharedKey = {k}\n"))
            .unwrap_or_default();
        let conf = format!(
            "[Interface]\nPrivateKey = {private}\nListenPort = {PORT_B}\n\n[Peer]\n\
             PublicKey = {peer_public}\n{psk_line}AllowedIPs = 10.100.0.1/32, fd00:100::1/128\n\
             Endpoint = 10.99.0.1:{PORT_A}\n"
        );
        let path = self.dir.path().join("b.conf");
        std::fs::write(&path, conf).expect("writing b.conf");
        let path = path.to_string_lossy().into_owned();
        let (b, dev) = (self.b.clone(), self.if_b.clone());
        ok(&["ip", "netns", "exec", &b, "wg", "setconf", &dev, &path]);
        okw(&format!("ip -n {b} address add 10.100.0.2/24 dev {dev}"));
        okw(&format!(
            "ip -n {b} -6 address add fd00:100::2/64 dev {dev} nodad"
        ));
        ok(&["ip", "-n", &b, "link", "set", "dev", &dev, "up"]);
    }

    /// Starts `pqgate wg up [extra]` in `a`.
    fn start_pqgate(
        &mut self,
        private: &str,
        peer_public: &str,
        psk: Option<&str>,
        extra: &[&str],
    ) {
        let psk_line = psk
            .map(|k| format!("PresharedKey = {k}\n"))
            .unwrap_or_default();
        let conf = format!(
            "[Interface]\nPrivateKey = {private}\nListenPort = {PORT_A}\n\
             Address = 10.100.0.1/24, fd00:100::1/64\nDNS = 10.100.0.53\n\n[Peer]\n\
             PublicKey = {peer_public}\n{psk_line}AllowedIPs = 10.100.0.2/32, fd00:100::2/128\n\
             Endpoint = 10.99.0.2:{PORT_B}\nPersistentKeepalive = 25\n"
        );
        let path = self.dir.path().join(format!("{}.conf", self.if_a));
        std::fs::write(&path, conf).expect("writing a.conf");
        let child = self
            .exec(&self.a, &[env!("CARGO_BIN_EXE_pqgate"), "wg", "up"])
            .args(extra)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning pqgate");
        self.pqgate = Some(child);
    }

    /// Pings `to` from `ns` until one reply, for at most `tries` seconds.
    fn ping(&self, ns: &str, to: &str, tries: u32) {
        for _ in 0..tries {
            let out = run(
                5,
                &["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", to],
            );
            if out.status.success() {
                return;
            }
            self.assert_pqgate_alive();
        }
        panic!("{ns}: no ping reply from {to} in {tries} tries");
    }

    fn assert_pqgate_alive(&self) {
        if let Some(c) = &self.pqgate {
            let pid = c.id().to_string();
            assert!(
                std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "pqgate exited early"
            );
        }
    }

    /// Stops pqgate with SIGTERM and returns its stderr; asserts a clean, prompt exit.
    fn stop_pqgate(&mut self) -> String {
        let mut child = self.pqgate.take().expect("pqgate running");
        ok(&["kill", "-TERM", &child.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("pqgate output");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "pqgate: {}\n{stderr}", out.status);
        stderr
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in [self.pqgate.take(), self.wggo.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        // A killed wireguard-go leaves its UAPI socket behind (a host-wide path).
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.if_b));
        for ns in [&self.a, &self.b] {
            let _ = run(10, &["ip", "netns", "del", ns]);
        }
    }
}

/// Deterministic, non-repeating-looking test bytes.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends `TRANSFER` bytes from a thread in `from_ns` to a listener in `to_ns` on `addr` and
/// checks they arrive exactly.
fn tcp_transfer(from_ns: &str, to_ns: &str, addr: SocketAddr) {
    let data = pattern(TRANSFER);
    let to_ns = to_ns.to_owned();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || -> Vec<u8> {
        netns::enter_thread(&to_ns).expect("entering the server namespace");
        let listener = TcpListener::bind(addr).expect("binding the listener");
        ready_tx.send(()).expect("signalling readiness");
        let (mut conn, _) = listener.accept().expect("accepting");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut got = Vec::with_capacity(TRANSFER);
        conn.read_to_end(&mut got).expect("reading the transfer");
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener ready");
    let from_ns = from_ns.to_owned();
    let sent = data.clone();
    let client = thread::spawn(move || {
        netns::enter_thread(&from_ns).expect("entering the client namespace");
        let mut conn =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connecting");
        conn.set_write_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        conn.write_all(&sent).expect("sending the transfer");
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    });
    client.join().expect("client thread");
    let got = server.join().expect("server thread");
    assert_eq!(got.len(), data.len(), "transfer length to {addr}");
    assert!(got == data, "transfer to {addr} corrupted");
}

/// Sends junk (random bytes, truncated and mangled WireGuard messages) at pqgate's port.
fn send_garbage(from_ns: &str) {
    let from_ns = from_ns.to_owned();
    thread::spawn(move || {
        netns::enter_thread(&from_ns).expect("entering namespace");
        let sock = UdpSocket::bind("10.99.0.2:0").expect("binding");
        let junk = pattern(2000);
        let to = format!("10.99.0.1:{PORT_A}");
        for len in [0usize, 1, 4, 31, 32, 33, 92, 147, 148, 149, 1500, 2000] {
            for kind in 1u8..=5 {
                let mut d = junk.get(..len).unwrap_or_default().to_vec();
                if let Some(first) = d.first_mut() {
                    *first = kind;
                }
                let _ = sock.send_to(&d, &to);
            }
        }
    })
    .join()
    .expect("garbage thread");
}

/// The number after `name ` in pqgate's exit summary, 0 when absent.
fn counter(summary: &str, name: &str) -> u64 {
    summary
        .split(&format!("{name} "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `extra` goes to `pqgate wg up`; `data_path` must appear in its "data path:" line.
fn interop(tag: char, with_psk: bool, extra: &[&str], data_path: &str) {
    if !is_root() {
        eprintln!("SKIPPED: wg_interop needs root (ip netns, /dev/net/tun)");
        return;
    }
    if !["wireguard-go", "wg", "ping", "ip", "timeout"]
        .iter()
        .all(|t| have(t))
    {
        return;
    }
    let (priv_a, pub_a) = wg_key_pair();
    let (priv_b, pub_b) = wg_key_pair();
    let psk = with_psk.then(|| ok(&["wg", "genpsk"]).trim().to_owned());
    let mut lab = Lab::new(tag);
    lab.start_wireguard_go(&priv_b, &pub_a, psk.as_deref());
    lab.start_pqgate(&priv_a, &pub_b, psk.as_deref(), extra);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    // Without a PSK pqgate initiates; with one, wireguard-go does.
    match with_psk {
        false => lab.ping(&a, "10.100.0.2", 20),
        true => lab.ping(&b, "10.100.0.1", 20),
    }
    lab.ping(&a, "10.100.0.2", 5);
    lab.ping(&b, "10.100.0.1", 5);
    lab.ping(&a, "fd00:100::2", 10);
    lab.ping(&b, "fd00:100::1", 10);
    let handshakes = ok(&[
        "ip",
        "netns",
        "exec",
        &b,
        "wg",
        "show",
        &lab.if_b,
        "latest-handshakes",
    ]);
    assert!(
        handshakes
            .split_whitespace()
            .nth(1)
            .is_some_and(|t| t != "0"),
        "wireguard-go reports no handshake: {handshakes}"
    );
    tcp_transfer(&b, &a, "10.100.0.1:5201".parse().expect("addr"));
    tcp_transfer(&a, &b, "10.100.0.2:5202".parse().expect("addr"));
    tcp_transfer(&b, &a, "[fd00:100::1]:5203".parse().expect("addr"));
    send_garbage(&b);
    lab.ping(&a, "10.100.0.2", 5);
    // An inner source outside the peer's AllowedIPs: wireguard-go sends it, pqgate must drop it.
    let dev_b = lab.if_b.clone();
    ok(&[
        "ip",
        "-n",
        &b,
        "address",
        "add",
        "10.100.0.9/32",
        "dev",
        &dev_b,
    ]);
    let ping_line = format!("ip netns exec {b} ping -c1 -W1 -I10.100.0.9 10.100.0.1");
    let spoofed = run(5, &ping_line.split_whitespace().collect::<Vec<_>>());
    assert!(
        !spoofed.status.success(),
        "a reply to a source outside AllowedIPs"
    );
    // Roaming: wireguard-go moves to another port; pqgate must follow its authenticated packets.
    ok(&[
        "ip",
        "netns",
        "exec",
        &b,
        "wg",
        "set",
        &dev_b,
        "listen-port",
        "51822",
    ]);
    lab.ping(&b, "10.100.0.1", 5);
    lab.ping(&a, "10.100.0.2", 5);
    let stderr = lab.stop_pqgate();
    eprintln!("pqgate stderr:\n{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("DNS"),
        "{stderr}"
    );
    assert!(counter(&stderr, "garbage") > 0, "{stderr}");
    assert!(counter(&stderr, "bad source") > 0, "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("data path:"))
        .unwrap_or_default();
    assert!(
        line.contains(data_path),
        "expected {data_path:?} in: {line}"
    );
    let gone = run(5, &["ip", "-n", &a, "link", "show", "dev", &lab.if_a]);
    assert!(
        !gone.status.success(),
        "{} still exists after exit",
        lab.if_a
    );
}

/// The offloaded data path (TSO on this kernel, multi-queue when there are CPUs for it).
#[test]
fn pqgate_and_wireguard_go_without_psk() {
    interop('n', false, &[], "TSO on");
}

/// The plain data path: one packet per read/write, no GSO/GRO, one queue.
#[test]
fn pqgate_and_wireguard_go_with_psk() {
    interop(
        'p',
        true,
        &["--no-offload", "--queues", "1"],
        "1 queue(s); offloads: TUN vnet-hdr off, TSO off, USO off; UDP GSO off, GRO off",
    );
}
