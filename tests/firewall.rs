//! The nftables firewall, end to end in network namespaces (nft rules are per namespace, so the
//! host's firewall is never touched): `pqgate run` in namespace G with the firewall enabled, a
//! client in namespace C over a veth pair with two source addresses, one of them a management
//! address. Checks that the listener answers, the admin port answers only the management
//! address, a served-but-unlisted TCP and UDP port stay silent until a SIGHUP reload opens them,
//! a ruleset nft refuses (a table another process owns) leaves the ruleset byte-identical and
//! logs nft's message, the table goes on SIGTERM, stays with `persist` and goes when a reload
//! disables the firewall, a start nft refuses fails with nft's message, a WireGuard interface's
//! port is open and its handshake initiations pass the per-source meter (a wireguard-go peer
//! pings over the tunnel), and the `nft` text and JSON that `pqgate firewall show` prints are
//! accepted by nft.
//!
//! Needs root, `ip` and `nft` (and wireguard-go, wg, ping for the tunnel test): skips without
//! them, fails under REQUIRE_INTEROP_TOOLS. Every wait is bounded; Drop guards stop the
//! processes and delete the namespaces, even on panic.

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use support::daemon::NsDaemon;
use support::netns::{kill_all, spawn_in, uapi_socket, wireguard_go_peer};
use support::require_root;
use support::sys::*;

use pqgate::net::netns;

const GW_IP: &str = "10.77.0.1";
const CLIENT_IP: &str = "10.77.0.2";
const MGMT_IP: &str = "10.77.0.3";
const LISTENER_PORT: u16 = 8443;
const ADMIN_PORT: u16 = 9851;
/// Served by the test inside G but not in the config until the reload opens it.
const OTHER_TCP: u16 = 7001;
const OTHER_UDP: u16 = 7002;
/// How long a probe waits before calling a port silent (dropped, not refused).
const SILENCE: Duration = Duration::from_millis(1500);
/// How long a rate-limit probe waits: shorter than the 1 s SYN retransmission.
const RATE_PROBE: Duration = Duration::from_millis(300);
/// Upper bound for pqgate to start, reload or stop.
const LIMIT: Duration = Duration::from_secs(30);

/// Root, `ip` and `nft`, and `extra` tools (see [`require_root`]).
fn can_run(test: &str, extra: &[&str]) -> bool {
    let tools = [["ip", "nft", "timeout"].as_slice(), extra].concat();
    require_root(test, &tools)
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in(ns, f).join().expect("namespace thread panicked")
}

/// Namespaces G (gateway) and C (client) joined by a veth pair; removed on drop.
struct Net {
    gw: String,
    cl: String,
    dir: tempfile::TempDir,
    /// `nft -i` processes owning a table, with the stdin that keeps them running.
    holders: Vec<(Child, ChildStdin)>,
}

impl Net {
    fn new(tag: char) -> Self {
        let pid = std::process::id();
        let net = Net {
            gw: format!("pqfw-{pid}-{tag}-g"),
            cl: format!("pqfw-{pid}-{tag}-c"),
            dir: tempfile::tempdir().expect("tempdir"),
            holders: Vec::new(),
        };
        let (veth_g, veth_c) = (format!("fg{tag}{pid}"), format!("fc{tag}{pid}"));
        ok(&["ip", "netns", "add", &net.gw]);
        ok(&["ip", "netns", "add", &net.cl]);
        okw(&format!(
            "ip link add {veth_g} netns {} type veth peer name {veth_c} netns {}",
            net.gw, net.cl
        ));
        okw(&format!(
            "ip -n {} address add {GW_IP}/24 dev {veth_g}",
            net.gw
        ));
        okw(&format!(
            "ip -n {} address add {CLIENT_IP}/24 dev {veth_c}",
            net.cl
        ));
        okw(&format!(
            "ip -n {} address add {MGMT_IP}/24 dev {veth_c}",
            net.cl
        ));
        for (ns, dev) in [(&net.gw, &veth_g), (&net.cl, &veth_c)] {
            okw(&format!("ip -n {ns} link set dev {dev} up"));
            okw(&format!("ip -n {ns} link set dev lo up"));
        }
        net
    }

    /// `nft ARGS` in G; stdout.
    fn nft(&self, args: &str) -> String {
        okw(&format!("ip netns exec {} nft {args}", self.gw))
    }

    fn tables(&self) -> String {
        self.nft("list tables")
    }

    /// Creates `table inet NAME { flags owner; }` in G, owned by an `nft -i` process that keeps
    /// it (and every other process out of it) until the process exits.
    fn hold_table(&mut self, name: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.gw, "nft", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning nft -i");
        let mut stdin = child.stdin.take().expect("nft stdin");
        writeln!(stdin, "add table inet {name} {{ flags owner; }}").expect("writing to nft -i");
        // Keep stdin open: nft -i exits (and the table goes) at end of input.
        self.holders.push((child, stdin));
        let want = format!("table inet {name}");
        let deadline = Instant::now() + LIMIT;
        while !self.tables().contains(&want) {
            assert!(Instant::now() < deadline, "nft -i did not create {want}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn write_config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("writing the config");
        path
    }

    /// Starts `pqgate run -c CONFIG` in G, stderr to `log` in the temp dir.
    fn spawn(&self, config: &Path, log: &str) -> NsDaemon {
        NsDaemon::spawn(&self.gw, config, self.dir.path().join(log), &[])
    }

    /// [`Net::spawn`], then waits until the admin endpoint is healthy.
    fn start(&self, config: &Path) -> NsDaemon {
        let d = self.spawn(config, "pqgate.log");
        d.wait_healthy(SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT)), LIMIT);
        d
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (mut child, stdin) in self.holders.drain(..) {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.gw, &self.cl] {
            let _ = run(10, &["ip", "netns", "del", ns]);
        }
    }
}

/// What a TCP connection attempt met.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// A listener accepted.
    Answered,
    /// A reset: nothing listens and nothing filtered.
    Refused,
    /// No answer within [`SILENCE`]: dropped.
    Silent,
}

/// Connects from `src` in C to `dst`; with `request`, sends it and returns the reply.
fn tcp(net: &Net, src: &str, dst_port: u16, request: Option<&str>) -> (Probe, String) {
    tcp_within(net, src, dst_port, request, SILENCE)
}

/// [`tcp`], calling the port silent after `silence`.
fn tcp_within(
    net: &Net,
    src: &str,
    dst_port: u16,
    request: Option<&str>,
    silence: Duration,
) -> (Probe, String) {
    let src: IpAddr = src.parse().expect("source address");
    let dst = SocketAddr::new(GW_IP.parse().expect("gateway address"), dst_port);
    let request = request.map(str::to_owned);
    in_ns(&net.cl, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.bind(SocketAddr::new(src, 0)).expect("bind");
            let mut stream = match tokio::time::timeout(silence, socket.connect(dst)).await {
                Err(_) => return (Probe::Silent, String::new()),
                Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
                    return (Probe::Refused, String::new());
                }
                Ok(Err(e)) => panic!("connecting {src} -> {dst}: {e}"),
                Ok(Ok(s)) => s,
            };
            let mut reply = Vec::new();
            if let Some(req) = request {
                stream.write_all(req.as_bytes()).await.expect("request");
                let read = stream.read_to_end(&mut reply);
                tokio::time::timeout(LIMIT, read)
                    .await
                    .expect("reply in time")
                    .expect("reading the reply");
            }
            (
                Probe::Answered,
                String::from_utf8_lossy(&reply).into_owned(),
            )
        })
    })
}

fn http(net: &Net, src: &str, path: &str) -> (Probe, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp(net, src, ADMIN_PORT, Some(&req))
}

/// Sends a datagram from C to `port`, twice at most; whether the echo came back.
fn udp_echoed(net: &Net, port: u16) -> bool {
    in_ns(&net.cl, move || {
        let s = UdpSocket::bind((CLIENT_IP, 0)).expect("udp bind");
        s.set_read_timeout(Some(SILENCE)).expect("timeout");
        let mut buf = [0u8; 64];
        (0..2).any(|_| {
            s.send_to(b"ping", (GW_IP, port)).expect("udp send");
            matches!(s.recv_from(&mut buf), Ok((4, _)))
        })
    })
}

/// A TCP listener that says "hi" and a UDP echo server in G, on ports pqgate does not know;
/// stopped on drop.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    fn start(ns: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns_t, stop_t) = (ns.to_owned(), stop.clone());
        let tcp = thread::spawn(move || {
            netns::enter_thread(&ns_t).expect("entering G");
            let l = TcpListener::bind(("0.0.0.0", OTHER_TCP)).expect("tcp bind");
            l.set_nonblocking(true).expect("nonblocking");
            while !stop_t.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"hi");
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        let (ns_u, stop_u) = (ns.to_owned(), stop.clone());
        let udp = thread::spawn(move || {
            netns::enter_thread(&ns_u).expect("entering G");
            let s = UdpSocket::bind(("0.0.0.0", OTHER_UDP)).expect("udp bind");
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            while !stop_u.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        Servers {
            stop,
            threads: vec![tcp, udp],
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn config(dir: &Path, firewall: &str) -> String {
    format!(
        "[log]\nlevel = \"info\"\n\n[admin]\nlisten = \"0.0.0.0:{ADMIN_PORT}\"\n\n\
         [service]\nstate_dir = \"{}\"\ndrain_timeout_secs = 1\n\n\
         [[listener]]\nname = \"web\"\nlisten = \"0.0.0.0:{LISTENER_PORT}\"\n\
         backend = \"builtin:info\"\nself_signed = true\n\n\
         [firewall]\nenabled = true\nmanagement = [\"{MGMT_IP}/32\"]\n{firewall}",
        dir.display()
    )
}

#[test]
fn firewall_opens_only_what_is_served_reloads_and_keeps_the_old_ruleset_on_failure() {
    if !can_run(
        "firewall_opens_only_what_is_served_reloads_and_keeps_the_old_ruleset_on_failure",
        &[],
    ) {
        return;
    }
    let mut net = Net::new('a');
    let _servers = Servers::start(&net.gw);
    let dir = net.dir.path().to_owned();
    let path = net.write_config("gw", &config(&dir, ""));
    let mut gw = net.start(&path);

    let listed = net.nft("list table inet pqgate");
    assert!(listed.contains("comment \"listener web\""), "{listed}");
    assert!(
        gw.log_text().contains("firewall applied"),
        "{}",
        gw.log_text()
    );

    assert_eq!(tcp(&net, CLIENT_IP, LISTENER_PORT, None).0, Probe::Answered);
    let (probe, health) = http(&net, MGMT_IP, "/healthz");
    assert_eq!(probe, Probe::Answered);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert_eq!(
        http(&net, CLIENT_IP, "/healthz").0,
        Probe::Silent,
        "admin from a non-management address"
    );
    assert_eq!(tcp(&net, CLIENT_IP, OTHER_TCP, None).0, Probe::Silent);
    assert!(!udp_echoed(&net, OTHER_UDP), "UDP port not in the config");
    let metrics = http(&net, MGMT_IP, "/metrics").1;
    assert!(metrics.contains("pqgate_firewall_applied 1"), "{metrics}");

    // Reload: the new ruleset opens the extra ports.
    let opened = format!("extra_tcp = [{OTHER_TCP}]\nextra_udp = [{OTHER_UDP}]\n");
    std::fs::write(&path, config(&dir, &opened)).expect("rewriting the config");
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1, LIMIT);
    let (probe, hi) = tcp(&net, CLIENT_IP, OTHER_TCP, Some(""));
    assert_eq!((probe, hi.as_str()), (Probe::Answered, "hi"));
    assert!(udp_echoed(&net, OTHER_UDP), "extra_udp after reload");

    // A ruleset nft refuses (a table another process owns): nothing changes, nft's words logged.
    net.hold_table("held");
    let before = net.nft("list ruleset");
    std::fs::write(&path, config(&dir, "table = \"held\"\n")).expect("rewriting the config");
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1, LIMIT);
    assert_eq!(net.nft("list ruleset"), before, "the ruleset changed");
    let log = gw.log_text();
    let rejected = log
        .lines()
        .find(|l| l.contains("reload rejected"))
        .unwrap_or_default();
    assert!(rejected.contains("firewall: nft -j -f - failed"), "{log}");
    assert!(
        log.contains("Could not process rule: Operation not permitted"),
        "{log}"
    );
    assert_eq!(tcp(&net, CLIENT_IP, OTHER_TCP, None).0, Probe::Answered);

    assert!(gw.stop(LIMIT).success(), "pqgate exit status");
    let tables = net.tables();
    assert!(!tables.contains("table inet pqgate"), "{tables}");
    assert!(tables.contains("table inet held"), "{tables}");
}

#[test]
fn persist_keeps_the_table_disabling_removes_it_and_a_refused_start_reports_nft() {
    if !can_run(
        "persist_keeps_the_table_disabling_removes_it_and_a_refused_start_reports_nft",
        &[],
    ) {
        return;
    }
    let mut net = Net::new('b');
    let dir = net.dir.path().to_owned();
    let keep = "table = \"keep\"\npersist = true\nnew_connections_per_second = 1\n";
    let path = net.write_config("keep", &config(&dir, keep));
    let mut gw = net.start(&path);
    // One new connection per second and source (burst 1): of five opened back to back, the
    // first passes and later ones are dropped (a dropped SYN is retried only after 1 s).
    let probes: Vec<Probe> = (0..5)
        .map(|_| tcp_within(&net, CLIENT_IP, LISTENER_PORT, None, RATE_PROBE).0)
        .collect();
    assert_eq!(probes[0], Probe::Answered, "{probes:?}");
    assert!(probes.contains(&Probe::Silent), "{probes:?}");
    assert!(gw.stop(LIMIT).success(), "pqgate exit status");
    assert!(net.tables().contains("table inet keep"), "persist = true");

    // The next start replaces the kept table; a reload that disables the firewall removes it.
    let mut gw = net.start(&path);
    let off = config(&dir, keep).replace("enabled = true", "enabled = false");
    std::fs::write(&path, off).expect("rewriting the config");
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1, LIMIT);
    assert!(!net.tables().contains("table inet keep"), "enabled = false");
    assert!(gw.log_text().contains("firewall disabled: table removed"));
    assert!(gw.stop(LIMIT).success(), "pqgate exit status");

    net.hold_table("held");
    let path = net.write_config("held", &config(&dir, "table = \"held\"\n"));
    let mut gw = net.spawn(&path, "refused.log");
    assert!(
        !gw.wait_exit(LIMIT).expect("pqgate did not exit").success(),
        "start with a refused ruleset must fail"
    );
    let log = gw.log_text();
    assert!(log.contains("firewall"), "{log}");
    assert!(log.contains("Operation not permitted"), "{log}");
}

#[test]
fn show_prints_text_and_json_that_nft_accepts() {
    if !can_run("show_prints_text_and_json_that_nft_accepts", &[]) {
        return;
    }
    let net = Net::new('c');
    let dir = net.dir.path().to_owned();
    let every_class = "allow_ping = false\nnew_connections_per_second = 50\n\
        handshakes_per_second = 10\nmasquerade = [\"eth0\"]\nextra_tcp = [22, 2222]\n\
        management = [\"10.77.0.0/24\", \"fd00::/8\", \"192.0.2.7\"]\n\n\
        [[firewall.forward]]\nfrom = \"wg0\"\nto = \"eth1\"\n";
    let text = config(&dir, "").replace(&format!("management = [\"{MGMT_IP}/32\"]\n"), "");
    let path = net.write_config("show", &format!("{text}{every_class}"));
    let pqgate = support::pqgate_bin();
    let path_s = path.to_str().expect("utf-8 path");
    let shown = ok(&[pqgate, "firewall", "show", "-c", path_s]);
    for want in [
        "meter new_tcp4",
        "masquerade",
        "forward wg0 -> eth1",
        "tcp dport 9851",
    ] {
        assert!(shown.contains(want), "{want:?} not in\n{shown}");
    }
    let json = ok(&[pqgate, "firewall", "show", "--json", "-c", path_s]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert!(value["nftables"].is_array(), "{json}");
    for (file, body, flag) in [("t.nft", &shown, ""), ("t.json", &json, "-j ")] {
        let f = dir.join(file);
        std::fs::write(&f, body).expect("writing");
        net.nft(&format!("-c {flag}-f {}", f.display()));
    }
    let checked = okw(&format!(
        "ip netns exec {} {pqgate} firewall check -c {path_s}",
        net.gw
    ));
    assert!(
        checked.starts_with("ok: nft accepts table inet pqgate"),
        "{checked}"
    );
    assert!(
        !net.tables().contains("pqgate"),
        "show and check apply nothing"
    );
}

/// Removes a file on drop.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const WG_GW_PORT: u16 = 51870;
const WG_PEER_PORT: u16 = 51871;

/// wireguard-go in C, the gateway its peer; killed (its UAPI socket removed) on drop.
fn start_wireguard_go(net: &Net, ifname: &str, private: &str, gw_public: &str) -> WgPeer {
    let conf = format!(
        "[Interface]\nPrivateKey = {private}\nListenPort = {WG_PEER_PORT}\n\n[Peer]\n\
         PublicKey = {gw_public}\nAllowedIPs = 10.101.7.1/32\nEndpoint = {GW_IP}:{WG_GW_PORT}\n"
    );
    let child = wireguard_go_peer(&net.cl, ifname, net.dir.path(), &conf, &["10.101.7.2/24"]);
    WgPeer {
        child,
        _socket: SocketFile(uapi_socket(ifname)),
    }
}

/// A wireguard-go process, killed on drop before its socket file goes.
struct WgPeer {
    child: Child,
    _socket: SocketFile,
}

impl Drop for WgPeer {
    fn drop(&mut self) {
        kill_all([&mut self.child]);
    }
}

#[test]
fn wireguard_port_is_open_and_initiations_are_metered() {
    if !can_run(
        "wireguard_port_is_open_and_initiations_are_metered",
        &["wireguard-go", "wg", "ping"],
    ) {
        return;
    }
    let net = Net::new('d');
    let pid = std::process::id();
    let (gw_ifname, peer_ifname) = (format!("fwg{pid}"), format!("fwp{pid}"));
    let (gw_private, gw_public) = wg_key_pair();
    let (peer_private, peer_public) = wg_key_pair();
    let dir = net.dir.path().to_owned();
    let wireguard = format!(
        "handshakes_per_second = 10\n\n[[wireguard]]\nname = \"{gw_ifname}\"\n\
         private_key = \"{gw_private}\"\nlisten_port = {WG_GW_PORT}\naddress = [\"10.101.7.1/24\"]\n\n\
         [[wireguard.peer]]\npublic_key = \"{peer_public}\"\nallowed_ips = [\"10.101.7.2/32\"]\n\
         endpoint = \"{CLIENT_IP}:{WG_PEER_PORT}\"\n"
    );
    let path = net.write_config("wg", &config(&dir, &wireguard));
    let mut gw = net.start(&path);
    // pqgate removes its UAPI socket on SIGTERM; this removes it if the test fails first.
    let _gw_socket = SocketFile(PathBuf::from(format!(
        "/var/run/wireguard/{gw_ifname}.sock"
    )));
    let listed = net.nft("list table inet pqgate");
    let accept = format!("udp dport {WG_GW_PORT} accept comment \"wireguard {gw_ifname}\"");
    assert!(listed.contains(&accept), "{listed}");
    assert!(listed.contains("meter wg_init4"), "{listed}");

    let _peer = start_wireguard_go(&net, &peer_ifname, &peer_private, &gw_public);
    let pinged = (0..10).any(|_| {
        let line = format!("ip netns exec {} ping -c 1 -W 1 10.101.7.1", net.cl);
        let args: Vec<&str> = line.split_whitespace().collect();
        run(5, &args).status.success()
    });
    assert!(pinged, "no ping over the tunnel:\n{}", gw.log_text());
    // The handshake initiation went through the meter: the peer's address is in it.
    let meter = net.nft("list meter inet pqgate wg_init4");
    assert!(meter.contains(CLIENT_IP), "{meter}");
    assert!(gw.stop(LIMIT).success(), "pqgate exit status");
}
