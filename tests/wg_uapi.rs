//! The UAPI socket of `pqgate wg up`, driven by the stock `wg` tool: `wg show dump` (handshake
//! time, transfer), `wg set` adding a second peer live without resetting the first peer's
//! session, changing a PSK on both sides followed by a fresh handshake, removing a peer, and
//! refusing what this slice cannot change. pqgate runs in namespace `a`; wireguard-go runs in
//! `b` and `c`, each joined to `a` by a veth. Runs as root; skips (or fails under
//! REQUIRE_INTEROP_TOOLS) when tools are missing. Every wait is bounded; Drop tears down.

use std::thread;
use std::time::Duration;
use support::lab::Lab;
use support::netns::*;
use support::require_root;
use support::sys::*;

const PORT_A: u16 = 51830;
const PORT_B: u16 = 51831;
const PORT_C: u16 = 51832;

/// wireguard-go in `ns` on `dev` with tunnel address `addr`/24, listening on `port`; its peer
/// is set later.
fn start_wireguard_go(lab: &mut Lab, ns: &str, dev: &str, private: &str, spec: (&str, u16)) {
    let (addr, port) = spec;
    let conf = format!("[Interface]\nPrivateKey = {private}\nListenPort = {port}\n");
    lab.start_wireguard_go(ns, dev, &conf, &[&format!("{addr}/24")]);
}

fn start_pqgate(lab: &mut Lab, private: &str, pub_b: &str) {
    let conf = format!(
        "[Interface]\nPrivateKey = {private}\nListenPort = {PORT_A}\n\
         Address = 10.100.0.1/24\n\n[Peer]\nPublicKey = {pub_b}\n\
         AllowedIPs = 10.100.0.2/32\nEndpoint = 10.97.0.2:{PORT_B}\n"
    );
    let mut child = wg_up(&lab.a, lab.dir.path(), &lab.if_a, &conf, &[])
        .spawn()
        .expect("spawning pqgate");
    wait_for_socket(&lab.if_a, &mut child, Duration::from_secs(10));
    lab.pq_a = Some(child);
}

/// pqgate's peers from `wg show IFACE dump`: (public key, line fields).
fn dump(lab: &Lab) -> Vec<Vec<String>> {
    let text = lab.wg_ok(&lab.a, &["show", &lab.if_a, "dump"]);
    text.lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn peer_line(lab: &Lab, public: &str) -> Option<Vec<String>> {
    dump(lab)
        .into_iter()
        .find(|f| f.first().map(String::as_str) == Some(public))
}

fn stop_pqgate(lab: &mut Lab) -> String {
    stop_cleanly(lab.pq_a.take().expect("pqgate running"), "pqgate")
}

fn field(line: &[String], i: usize) -> u64 {
    line.get(i).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn wg_show_and_wg_set_against_pqgate() {
    if !require_root(
        "wg_show_and_wg_set_against_pqgate",
        &["wireguard-go", "wg", "ping", "ip", "timeout"],
    ) {
        return;
    }
    let (priv_a, pub_a) = wg_key_pair();
    let (priv_b, pub_b) = wg_key_pair();
    let (priv_c, pub_c) = wg_key_pair();
    let mut lab = Lab::with_c("pqgu", "", "10.97.0", "10.98.0");
    let (a, b, c) = (lab.a.to_string(), lab.b.to_string(), lab.c().to_string());
    let (if_a, if_b, if_c) = (lab.if_a.clone(), lab.if_b.clone(), lab.if_c.clone());
    start_wireguard_go(&mut lab, &b, &if_b, &priv_b, ("10.100.0.2", PORT_B));
    let ep_a_b = format!("10.97.0.1:{PORT_A}");
    lab.set_peer(
        &b,
        &if_b,
        &pub_a,
        &["allowed-ips", "10.100.0.1/32", "endpoint", &ep_a_b],
    );
    // A stale socket (nothing listening) at pqgate's path is replaced.
    let stale = uapi_socket(&if_a);
    std::fs::create_dir_all("/var/run/wireguard").expect("socket dir");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("stale socket"));
    start_pqgate(&mut lab, &priv_a, &pub_b);

    // wg show: the peer, with a handshake and traffic after a ping.
    lab.ping(&a, "10.100.0.2", 20);
    let line = peer_line(&lab, &pub_b).expect("peer B listed");
    // dump peer fields: public, psk, endpoint, allowed, handshake, rx, tx, keepalive
    assert_eq!(line[1], "(none)", "{line:?}");
    assert_eq!(line[2], format!("10.97.0.2:{PORT_B}"), "{line:?}");
    assert_eq!(line[3], "10.100.0.2/32", "{line:?}");
    let hs_b = field(&line, 4);
    assert!(hs_b > 0, "no handshake time: {line:?}");
    assert!(
        field(&line, 5) > 0 && field(&line, 6) > 0,
        "no transfer: {line:?}"
    );
    let shown = lab.wg_ok(&a, &["show", &if_a]);
    assert!(
        shown.contains("latest handshake") && shown.contains("transfer"),
        "{shown}"
    );

    // wg set: a second peer, live; the first keeps its session.
    thread::sleep(Duration::from_millis(1100));
    start_wireguard_go(&mut lab, &c, &if_c, &priv_c, ("10.100.0.3", PORT_C));
    let ep_a_c = format!("10.98.0.1:{PORT_A}");
    lab.set_peer(
        &c,
        &if_c,
        &pub_a,
        &["allowed-ips", "10.100.0.1/32", "endpoint", &ep_a_c],
    );
    let ep_c = format!("10.98.0.2:{PORT_C}");
    lab.set_peer(
        &a,
        &if_a,
        &pub_c,
        &["allowed-ips", "10.100.0.3/32", "endpoint", &ep_c],
    );
    lab.ping(&a, "10.100.0.3", 10);
    lab.ping(&c, "10.100.0.1", 5);
    lab.ping(&a, "10.100.0.2", 3);
    let line = peer_line(&lab, &pub_b).expect("peer B listed");
    assert_eq!(
        field(&line, 4),
        hs_b,
        "peer B's session was reset: {line:?}"
    );
    let line_c = peer_line(&lab, &pub_c).expect("peer C listed");
    assert!(field(&line_c, 4) > 0, "{line_c:?}");
    let routes = okw(&format!("ip -n {a} route show dev {if_a}"));
    assert!(routes.contains("10.100.0.3"), "{routes}");

    // PSK change on both sides: traffic continues, then a fresh handshake with the new PSK.
    let psk = ok(&["wg", "genpsk"]).trim().to_owned();
    let psk_file = lab.dir.path().join("psk");
    std::fs::write(&psk_file, &psk).expect("writing psk");
    let psk_file = psk_file.to_string_lossy().into_owned();
    lab.set_peer(&a, &if_a, &pub_b, &["preshared-key", &psk_file]);
    lab.set_peer(&b, &if_b, &pub_a, &["preshared-key", &psk_file]);
    lab.ping(&a, "10.100.0.2", 3);
    let line = peer_line(&lab, &pub_b).expect("peer B listed");
    assert_eq!(line[1], psk, "{line:?}");
    assert_eq!(
        field(&line, 4),
        hs_b,
        "the PSK change reset the session: {line:?}"
    );
    // Drop wireguard-go's session (remove and re-add the peer): the next ping needs a new
    // handshake, which only works if both sides use the new PSK.
    thread::sleep(Duration::from_millis(1100));
    lab.set_peer(&b, &if_b, &pub_a, &["remove"]);
    lab.set_peer(
        &b,
        &if_b,
        &pub_a,
        &[
            "preshared-key",
            &psk_file,
            "allowed-ips",
            "10.100.0.1/32",
            "endpoint",
            &ep_a_b,
        ],
    );
    lab.ping(&b, "10.100.0.1", 10);
    let line = peer_line(&lab, &pub_b).expect("peer B listed");
    assert!(
        field(&line, 4) > hs_b,
        "no new handshake with the new PSK: {line:?}"
    );

    // A PSK on pqgate's side only: C's next handshake must fail.
    let psk_c = lab.dir.path().join("psk-c");
    std::fs::write(&psk_c, ok(&["wg", "genpsk"]).trim()).expect("writing psk");
    let psk_c = psk_c.to_string_lossy().into_owned();
    lab.set_peer(&a, &if_a, &pub_c, &["preshared-key", &psk_c]);
    lab.set_peer(&c, &if_c, &pub_a, &["remove"]);
    lab.set_peer(
        &c,
        &if_c,
        &pub_a,
        &["allowed-ips", "10.100.0.1/32", "endpoint", &ep_a_c],
    );
    assert!(
        !(0..3).any(|_| ping_once(&c, "10.100.0.1")),
        "a handshake with mismatched PSKs succeeded"
    );

    // Remove peer C: gone from the dump and from the routes, no more traffic.
    lab.set_peer(&a, &if_a, &pub_c, &["remove"]);
    assert!(peer_line(&lab, &pub_c).is_none(), "{:?}", dump(&lab));
    assert!(!ping_once(&a, "10.100.0.3"), "peer C still reachable");
    let routes = okw(&format!("ip -n {a} route show dev {if_a}"));
    assert!(!routes.contains("10.100.0.3"), "{routes}");
    lab.ping(&a, "10.100.0.2", 3);

    // Refused: another listen port (the sockets are bound once); the error reaches wg.
    let refused = lab.wg(&a, &["set", &if_a, "listen-port", "40000"]);
    assert!(!refused.status.success(), "listen-port change accepted");

    // fwmark: set on every tunnel socket (the kernel's socket table shows it), read back by
    // wg, cleared with 0; traffic goes on.
    let marks = || {
        let out = run_in(10, &a, &["ss", "-uane"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let port = format!(":{PORT_A} ");
        let ours: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&port))
            .map(str::to_owned)
            .collect();
        assert!(!ours.is_empty(), "no tunnel socket in ss:\n{text}");
        ours.iter().filter(|l| l.contains("fwmark:0x20")).count() * 100 / ours.len()
    };
    lab.wg_ok(&a, &["set", &if_a, "fwmark", "0x20"]);
    assert_eq!(lab.wg_ok(&a, &["show", &if_a, "fwmark"]).trim(), "0x20");
    assert_eq!(marks(), 100, "not every tunnel socket carries the mark");
    lab.ping(&a, "10.100.0.2", 5);
    lab.wg_ok(&a, &["set", &if_a, "fwmark", "0"]);
    assert_eq!(lab.wg_ok(&a, &["show", &if_a, "fwmark"]).trim(), "off");
    assert_eq!(marks(), 0, "a socket kept the mark");

    // A new private key ends the sessions; back to the old one, traffic resumes after a new
    // handshake.
    let hs_before = field(&peer_line(&lab, &pub_b).expect("peer B listed"), 4);
    thread::sleep(Duration::from_millis(1100));
    let (priv_x, pub_x) = wg_key_pair();
    let key_file = lab.dir.path().join("x.key");
    std::fs::write(&key_file, &priv_x).expect("writing key");
    let key_file = key_file.to_string_lossy().into_owned();
    lab.wg_ok(&a, &["set", &if_a, "private-key", &key_file]);
    assert_eq!(lab.wg_ok(&a, &["show", &if_a, "public-key"]).trim(), pub_x);
    std::fs::write(&key_file, &priv_a).expect("writing key");
    lab.wg_ok(&a, &["set", &if_a, "private-key", &key_file]);
    assert_eq!(lab.wg_ok(&a, &["show", &if_a, "public-key"]).trim(), pub_a);
    lab.ping(&a, "10.100.0.2", 10);
    let line = peer_line(&lab, &pub_b).expect("peer B listed");
    assert!(
        field(&line, 4) > hs_before,
        "no new handshake after the key change: {line:?}"
    );

    let sock = uapi_socket(&if_a);
    let stderr = stop_pqgate(&mut lab);
    eprintln!("pqgate stderr:\n{stderr}");
    assert!(!sock.exists(), "{sock:?} left behind");
}
