//! `pqgate wg up` against Debian's stock wireguard-go, in two network namespaces joined by a
//! veth: handshake (each side initiating), ping both ways over IPv4 and IPv6, a 10 MiB TCP
//! transfer checked byte for byte in both directions, with and without a pre-shared key, garbage
//! datagrams survived, and a clean exit on SIGTERM that removes the interface. Runs as root;
//! skips (or fails under REQUIRE_INTEROP_TOOLS) when the tools are missing. Every wait is bounded
//! and Drop tears everything down, even on panic.

use std::net::SocketAddr;
use std::time::Duration;
use support::lab::Lab;
use support::netns::*;
use support::require_root;
use support::sys::*;

const PORT_A: u16 = 51820;
const PORT_B: u16 = 51821;
const TRANSFER: usize = 10 << 20;
/// Seeds [`pattern`] for the transfers and the garbage.
const SEED: u32 = 0x9e37_79b9;
/// Each read and write of a transfer.
const BOUNDS: Bounds = Bounds::each_io(Duration::from_secs(30));

/// Starts wireguard-go in `b`, pqgate in `a` its peer.
fn start_wireguard_go(lab: &mut Lab, private: &str, peer_public: &str, psk: Option<&str>) {
    let psk_line = psk
        .map(|k| format!("PresharedKey = {k}\n"))
        .unwrap_or_default();
    let conf = format!(
        "[Interface]\nPrivateKey = {private}\nListenPort = {PORT_B}\n\n[Peer]\n\
         PublicKey = {peer_public}\n{psk_line}AllowedIPs = 10.100.0.1/32, fd00:100::1/128\n\
         Endpoint = 10.99.0.1:{PORT_A}\n"
    );
    let (b, dev) = (lab.b.to_string(), lab.if_b.clone());
    lab.start_wireguard_go(&b, &dev, &conf, &["10.100.0.2/24", "fd00:100::2/64"]);
}

/// Starts `pqgate wg up [extra]` in `a`.
fn start_pqgate(
    lab: &mut Lab,
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
    let child = lab
        .wg_up(&lab.a, &lab.if_a, &conf, extra)
        .spawn()
        .expect("spawning pqgate");
    lab.pq_a = Some(child);
}

/// Sends `TRANSFER` bytes from `from_ns` to a listener in `to_ns` on `addr` and checks they
/// arrive exactly.
fn transfer(from_ns: &str, to_ns: &str, addr: &str) {
    let data = pattern(SEED, TRANSFER);
    tcp_transfer(from_ns, to_ns, addr.parse().expect("addr"), &data, BOUNDS);
}

/// Sends junk (random bytes, truncated and mangled WireGuard messages) at pqgate's port.
fn send_garbage(from_ns: &str) {
    let junk = pattern(SEED, 2000);
    let mut datagrams = Vec::new();
    for len in [0usize, 1, 4, 31, 32, 33, 92, 147, 148, 149, 1500, 2000] {
        for kind in 1u8..=5 {
            let mut d = junk.get(..len).unwrap_or_default().to_vec();
            if let Some(first) = d.first_mut() {
                *first = kind;
            }
            datagrams.push(d);
        }
    }
    let to: SocketAddr = format!("10.99.0.1:{PORT_A}").parse().expect("addr");
    send_udp(from_ns, "10.99.0.2", to, datagrams);
}

/// `extra` goes to `pqgate wg up`; `data_path` must appear in its "data path:" line.
fn interop(tag: char, with_psk: bool, extra: &[&str], data_path: &str) {
    let test = format!(
        "pqgate_and_wireguard_go_with{}_psk",
        ["out", ""][usize::from(with_psk)]
    );
    if !require_root(&test, &["wireguard-go", "wg", "ping", "ip", "timeout"]) {
        return;
    }
    let (priv_a, pub_a) = wg_key_pair();
    let (priv_b, pub_b) = wg_key_pair();
    let psk = with_psk.then(|| ok(&["wg", "genpsk"]).trim().to_owned());
    let mut lab = Lab::new("pqgt", &tag.to_string(), "10.99.0");
    start_wireguard_go(&mut lab, &priv_b, &pub_a, psk.as_deref());
    start_pqgate(&mut lab, &priv_a, &pub_b, psk.as_deref(), extra);
    let (a, b) = (lab.a.to_string(), lab.b.to_string());
    // Without a PSK pqgate initiates; with one, wireguard-go does.
    match with_psk {
        false => lab.ping(&a, "10.100.0.2", 20),
        true => lab.ping(&b, "10.100.0.1", 20),
    }
    lab.ping(&a, "10.100.0.2", 5);
    lab.ping(&b, "10.100.0.1", 5);
    lab.ping(&a, "fd00:100::2", 10);
    lab.ping(&b, "fd00:100::1", 10);
    let handshakes = ok_in(&b, &["wg", "show", &lab.if_b, "latest-handshakes"]);
    assert!(
        handshakes
            .split_whitespace()
            .nth(1)
            .is_some_and(|t| t != "0"),
        "wireguard-go reports no handshake: {handshakes}"
    );
    transfer(&b, &a, "10.100.0.1:5201");
    transfer(&a, &b, "10.100.0.2:5202");
    transfer(&b, &a, "[fd00:100::1]:5203");
    send_garbage(&b);
    lab.ping(&a, "10.100.0.2", 5);
    // An inner source outside the peer's AllowedIPs: wireguard-go sends it, pqgate must drop it.
    let dev_b = lab.if_b.clone();
    okw(&format!("ip -n {b} address add 10.100.0.9/32 dev {dev_b}"));
    let spoofed = run_in(5, &b, &["ping", "-c1", "-W1", "-I10.100.0.9", "10.100.0.1"]);
    assert!(
        !spoofed.status.success(),
        "a reply to a source outside AllowedIPs"
    );
    // Roaming: wireguard-go moves to another port; pqgate must follow its authenticated packets.
    ok_in(&b, &["wg", "set", &dev_b, "listen-port", "51822"]);
    lab.ping(&b, "10.100.0.1", 5);
    lab.ping(&a, "10.100.0.2", 5);
    let stderr = lab.stop_a();
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
