//! WireGuard from the TOML config: `pqgate wg import` of a wg-quick file, then `pqgate run` of
//! the result against Debian's wireguard-go (ping, byte-exact TCP both ways, per-peer metrics
//! and a garbage drop reason on the admin endpoint, only CAP_NET_ADMIN left, clean SIGTERM
//! teardown); SIGHUP adding and removing peers while an untouched peer keeps its session; a key
//! file open to others refused by `check`, at start and on reload (the running tunnel stays).
//! Runs as root in network namespaces joined by veth pairs; every wait is bounded and Drop
//! tears everything down, even on panic.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};
use support::daemon::{NsDaemon, RELOAD_OUTCOMES};
use support::netns::*;
use support::require_root;
use support::sys::*;

const PQ_PORT: u16 = 51830;
const PEER_PORT: u16 = 51831;
const TRANSFER: usize = 4 << 20;
const ADMIN: &str = "127.0.0.1:9851";
/// Seeds [`pattern`] for the transfers and the garbage.
const SEED: u32 = 0x2545_f491;
/// Each read and write of a transfer.
const BOUNDS: Bounds = Bounds::each_io(Duration::from_secs(30));

fn tools_ready(test: &str) -> bool {
    require_root(test, &["wireguard-go", "wg", "ping", "ip", "timeout"])
}

/// A wireguard-go peer in its own namespace, joined to pqgate's namespace by a veth pair.
struct Peer {
    ns: Netns,
    ifname: String,
    private: String,
    public: String,
    /// pqgate's end of the veth (`10.99.N.1`) and the peer's (`10.99.N.2`).
    n: u8,
    tunnel_ip: String,
    child: Option<Child>,
}

/// pqgate's namespace and its peers; everything removed on drop.
struct Lab {
    tag: String,
    ns: Netns,
    ifname: String,
    dir: tempfile::TempDir,
    peers: Vec<Peer>,
    pqgate: Option<NsDaemon>,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        Lab {
            tag: tag.to_owned(),
            ns: Netns::new(format!("pqwc-{pid}-{tag}")),
            ifname: format!("wc{tag}{pid}"),
            dir: tempfile::tempdir().expect("tempdir"),
            peers: Vec::new(),
            pqgate: None,
        }
    }

    /// Adds peer number `n` (namespace, veth, keys); wireguard-go is started separately.
    fn add_peer(&mut self, n: u8) -> usize {
        let pid = std::process::id();
        let (private, public) = wg_key_pair();
        let peer = Peer {
            ns: Netns::new(format!("pqwc-{pid}-{}{n}", self.tag)),
            ifname: format!("wp{}{n}{pid}", self.tag),
            private,
            public,
            n,
            tunnel_ip: format!("10.100.0.{}", n + 1),
            child: None,
        };
        let (va, vb) = (
            format!("va{}{n}{pid}", self.tag),
            format!("vb{}{n}{pid}", self.tag),
        );
        veth(&format!("10.99.{n}"), (&self.ns, &va), (&peer.ns, &vb));
        self.peers.push(peer);
        self.peers.len() - 1
    }

    /// Starts wireguard-go for peer `i`, with pqgate (public key `pq_public`) as its peer.
    fn start_wireguard_go(&mut self, i: usize, pq_public: &str) {
        let p = &self.peers[i];
        let conf = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {PEER_PORT}\n\n[Peer]\nPublicKey = \
             {pq_public}\nAllowedIPs = 10.100.0.1/32\nEndpoint = 10.99.{}.1:{PQ_PORT}\n",
            p.private, p.n
        );
        let addr = format!("{}/24", p.tunnel_ip);
        let child = wireguard_go_peer(&p.ns, &p.ifname, self.dir.path(), &conf, &[&addr]);
        self.peers[i].child = Some(child);
    }

    /// pqgate's `[Peer]` section for peer `i`, wg-quick style.
    fn quick_peer(&self, i: usize) -> String {
        let p = &self.peers[i];
        format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}/32\nEndpoint = 10.99.{}.2:{PEER_PORT}\n",
            p.public, p.tunnel_ip, p.n
        )
    }

    /// pqgate's `[[wireguard.peer]]` for peer `i`.
    fn toml_peer(&self, i: usize) -> String {
        let p = &self.peers[i];
        format!(
            "\n[[wireguard.peer]]\npublic_key = \"{}\"\nallowed_ips = [\"{}/32\"]\n\
             endpoint = \"10.99.{}.2:{PEER_PORT}\"\n",
            p.public, p.tunnel_ip, p.n
        )
    }

    /// Starts `pqgate run -c config` in pqgate's namespace and waits until it is healthy.
    fn start_pqgate(&mut self, config: &Path) {
        let log = self.dir.path().join("pqgate.log");
        let pqgate = NsDaemon::spawn(&self.ns, config, log, &[]);
        pqgate.wait_healthy(ADMIN.parse().expect("admin"), Duration::from_secs(60));
        self.pqgate = Some(pqgate);
    }

    fn pqgate(&self) -> &NsDaemon {
        self.pqgate.as_ref().expect("pqgate running")
    }

    fn log_text(&self) -> String {
        self.pqgate().log_text()
    }

    /// The pid of pqgate itself (`ip netns exec` execs it, so the child's pid).
    fn pqgate_pid(&self) -> u32 {
        self.pqgate().pid()
    }

    /// Sends SIGHUP and waits until the log shows one more reload outcome than before.
    fn reload(&self) -> String {
        self.pqgate()
            .reload(&RELOAD_OUTCOMES, Duration::from_secs(30))
    }

    /// Stops pqgate with SIGTERM; asserts a clean exit that removed the interface and socket.
    fn stop_pqgate(&mut self) {
        let mut pqgate = self.pqgate.take().expect("pqgate running");
        let status = pqgate.stop(Duration::from_secs(20));
        assert!(status.success(), "pqgate: {status}\n{}", pqgate.log_text());
        let gone = run(
            5,
            &["ip", "-n", &self.ns, "link", "show", "dev", &self.ifname],
        );
        assert!(!gone.status.success(), "{} still exists", self.ifname);
        let sock = uapi_socket(&self.ifname);
        assert!(!sock.exists(), "{sock:?} left behind");
    }

    fn ping(&self, to: &str, tries: u32) {
        if !try_ping(&self.ns, to, tries, || self.pqgate().assert_alive()) {
            panic!(
                "no ping reply from {to} in {tries} tries:\n{}",
                self.log_text()
            );
        }
    }

    /// `wg show IFACE latest-handshakes` over pqgate's UAPI socket: public key -> seconds.
    fn latest_handshakes(&self) -> Vec<(String, u64)> {
        let out = ok(&["wg", "show", &self.ifname, "latest-handshakes"]);
        out.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_owned(), f.next()?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // pqgate is killed first (its guard), then the peers.
        self.pqgate = None;
        kill_all(self.peers.iter_mut().filter_map(|p| p.child.as_mut()));
        let peers = self.peers.iter().map(|p| p.ifname.as_str());
        remove_sockets(peers.chain([self.ifname.as_str()]));
        // The namespaces go when their guards drop, after this.
    }
}

/// One HTTP GET to the admin endpoint inside `ns`; the whole response, or None.
fn http_get(ns: &str, path: &str) -> Option<String> {
    support::netns::http_get(ns, ADMIN.parse().ok()?, path)
}

/// The value of the sample of `metric` whose labels include every `labels` pair.
fn sample(metrics: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(metric)?.strip_prefix('{')?;
        let (label_text, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Polls the metrics (sampled each second) until `pred` holds on them; bounded.
fn wait_metrics(ns: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = http_get(ns, "/metrics").unwrap_or_default();
        if pred(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what}:\n{text}"
        );
        thread::sleep(Duration::from_millis(250));
    }
}

/// Sends `TRANSFER` bytes from `from_ns` to a listener in `to_ns` on `addr`; checks them.
fn transfer(from_ns: &str, to_ns: &str, addr: &str) {
    let data = pattern(SEED, TRANSFER);
    tcp_transfer(from_ns, to_ns, addr.parse().expect("addr"), &data, BOUNDS);
}

/// Junk datagrams at pqgate's port from `ns` (source `from`).
fn send_garbage(ns: &str, from: &str, to: &str) {
    let datagrams = [0usize, 1, 7, 33, 200, 1400]
        .into_iter()
        .map(|len| {
            let mut d = pattern(SEED, len);
            if let Some(first) = d.first_mut() {
                *first = 9; // no WireGuard message type
            }
            d
        })
        .collect();
    send_udp(ns, from, to.parse().expect("addr"), datagrams);
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("writing");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `wg import` (keys to files) of a wg-quick file, `pqgate run` of the TOML against
/// wireguard-go: traffic, metrics, capabilities, teardown.
#[test]
fn imported_config_runs_against_wireguard_go() {
    if !tools_ready("imported_config_runs_against_wireguard_go") {
        return;
    }
    let mut lab = Lab::new("i");
    let (pq_private, pq_public) = wg_key_pair();
    let b = lab.add_peer(1);
    lab.start_wireguard_go(b, &pq_public);
    let conf = lab.dir.path().join(format!("{}.conf", lab.ifname));
    let quick = format!(
        "[Interface]\nPrivateKey = {pq_private}\nListenPort = {PQ_PORT}\nAddress = \
         10.100.0.1/24\nDNS = 10.100.0.53\n{}",
        lab.quick_peer(b)
    );
    write_mode(&conf, &quick, 0o600);
    let toml = lab.dir.path().join("imported.toml");
    let keys = lab.dir.path().join("keys");
    let out = run(
        20,
        &[
            support::pqgate_bin(),
            "wg",
            "import",
            &conf.to_string_lossy(),
            "-o",
            &toml.to_string_lossy(),
            "--key-dir",
            &keys.to_string_lossy(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wg import: {stderr}");
    assert!(
        stderr.contains("DNS"),
        "the ignored DNS key is not warned about: {stderr}"
    );
    let text = std::fs::read_to_string(&toml).expect("imported TOML");
    assert!(
        !text.contains(&pq_private),
        "the private key was inlined:\n{text}"
    );
    assert!(text.contains("private_key_file"), "{text}");
    lab.start_pqgate(&toml);

    let status = std::fs::read_to_string(format!("/proc/{}/status", lab.pqgate_pid()))
        .expect("pqgate status");
    let eff = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff");
    assert_eq!(
        eff.split_whitespace().nth(1),
        Some("0000000000001000"),
        "{status}"
    );

    let ns_b = lab.peers[b].ns.to_string();
    lab.ping("10.100.0.2", 20);
    transfer(&ns_b, &lab.ns, "10.100.0.1:5301");
    transfer(&lab.ns, &ns_b, "10.100.0.2:5302");
    let (iface, peer) = (lab.ifname.clone(), lab.peers[b].public.clone());
    let labels = [("interface", iface.as_str()), ("peer", peer.as_str())];
    let floor = TRANSFER as f64;
    let m = wait_metrics(&lab.ns, "per-peer bytes", |m| {
        sample(m, "pqgate_wg_peer_rx_bytes_total", &labels).is_some_and(|v| v > floor)
            && sample(m, "pqgate_wg_peer_tx_bytes_total", &labels).is_some_and(|v| v > floor)
    });
    let handshakes = sample(&m, "pqgate_wg_peer_handshakes_total", &labels);
    assert!(handshakes.is_some_and(|h| h >= 1.0), "{m}");
    let age = sample(&m, "pqgate_wg_peer_last_handshake_age_seconds", &labels);
    assert!(age.is_some_and(|a| a >= 0.0), "{m}");
    assert!(sample(&m, "pqgate_wg_peer_rx_packets_total", &labels).is_some_and(|p| p > 0.0));

    let garbage = [("interface", iface.as_str()), ("reason", "garbage")];
    let before = sample(&m, "pqgate_wg_drops_total", &garbage).unwrap_or(0.0);
    send_garbage(&ns_b, "10.99.1.2", &format!("10.99.1.1:{PQ_PORT}"));
    wait_metrics(&lab.ns, "garbage drops", |m| {
        sample(m, "pqgate_wg_drops_total", &garbage).is_some_and(|v| v > before)
    });
    lab.ping("10.100.0.2", 5);
    lab.stop_pqgate();
}

/// SIGHUP adds one peer and removes another while an untouched peer keeps its session; a
/// key file opened to others makes the next reload fail and changes nothing.
#[test]
fn reload_changes_peers_live_and_a_bad_reload_changes_nothing() {
    if !tools_ready("reload_changes_peers_live_and_a_bad_reload_changes_nothing") {
        return;
    }
    let mut lab = Lab::new("r");
    let (pq_private, pq_public) = wg_key_pair();
    let (old, keep, new) = (lab.add_peer(1), lab.add_peer(2), lab.add_peer(3));
    for i in [old, keep, new] {
        lab.start_wireguard_go(i, &pq_public);
    }
    let key_file = lab.dir.path().join("pq.key");
    write_mode(&key_file, &format!("{pq_private}\n"), 0o640);
    let sections: Vec<String> = (0..lab.peers.len()).map(|i| lab.toml_peer(i)).collect();
    let head = format!(
        "[[wireguard]]\nname = \"{}\"\nprivate_key_file = \"{}\"\nlisten_port = {PQ_PORT}\n\
         address = [\"10.100.0.1/24\"]\n",
        lab.ifname,
        key_file.display()
    );
    let config = |peers: &[usize]| {
        let mut t = head.clone();
        for &i in peers {
            let _ = write!(t, "{}", sections[i]);
        }
        t
    };
    let path = lab.dir.path().join("pqgate.toml");
    write_mode(&path, &config(&[old, keep]), 0o600);
    lab.start_pqgate(&path);
    let (ip_old, ip_keep, ip_new) = (
        lab.peers[old].tunnel_ip.clone(),
        lab.peers[keep].tunnel_ip.clone(),
        lab.peers[new].tunnel_ip.clone(),
    );
    lab.ping(&ip_old, 20);
    lab.ping(&ip_keep, 20);
    let keep_key = lab.peers[keep].public.clone();
    let handshake_of = |lab: &Lab| {
        lab.latest_handshakes()
            .into_iter()
            .find(|(k, _)| *k == keep_key)
            .map(|(_, t)| t)
    };
    let first = handshake_of(&lab).expect("the kept peer is listed");
    assert!(first > 0, "no handshake with the kept peer");
    // wireguard-go's own view of the same session, independent of pqgate's reporting.
    let (keep_ns, keep_if) = (&lab.peers[keep].ns, &lab.peers[keep].ifname);
    let peer_view = || ok_in(keep_ns, &["wg", "show", keep_if, "latest-handshakes"]);
    let peer_first = peer_view();
    // Handshake times have one-second resolution: a session reset by the reload must show.
    thread::sleep(Duration::from_millis(2500));

    // A ping to the kept peer runs across the reload.
    let (ns, target) = (lab.ns.to_string(), ip_keep.clone());
    let pinger = thread::spawn(move || {
        let ping = ["ping", "-c", "16", "-i", "0.25", "-W", "1", &target];
        run_in(30, &ns, &ping)
    });
    thread::sleep(Duration::from_millis(700));
    write_mode(&path, &config(&[keep, new]), 0o600);
    let log = lab.reload();
    assert!(!log.contains("reload rejected"), "{log}");
    let pinged = pinger.join().expect("pinger");
    let ping_out = String::from_utf8_lossy(&pinged.stdout);
    assert!(
        pinged.status.success(),
        "ping across the reload: {ping_out}"
    );
    lab.ping(&ip_new, 20);
    lab.ping(&ip_keep, 5);
    let gone = run_in(20, &lab.ns, &["ping", "-c", "1", "-W", "1", &ip_old]);
    assert!(!gone.status.success(), "the removed peer still answers");
    // Host routes follow the peers' allowed IPs.
    let route = |ip: &str| okw(&format!("ip -n {} route show {ip}/32", lab.ns));
    assert!(
        route(&ip_new).contains(&lab.ifname),
        "no route to the added peer"
    );
    assert!(
        route(&ip_old).trim().is_empty(),
        "the removed peer's route stayed"
    );
    let listed: Vec<String> = lab
        .latest_handshakes()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(listed.contains(&lab.peers[new].public), "{listed:?}");
    assert!(!listed.contains(&lab.peers[old].public), "{listed:?}");
    assert_eq!(
        handshake_of(&lab),
        Some(first),
        "the kept peer's session was reset"
    );
    assert_eq!(peer_view(), peer_first, "wireguard-go saw a new handshake");

    // A key file others may read: the reload is refused, naming the file and the key.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    write_mode(&path, &config(&[keep]), 0o600);
    let log = lab.reload();
    let path_text = key_file.display().to_string();
    assert!(log.contains("reload rejected"), "{log}");
    assert!(log.contains("wireguard[0].private_key_file"), "{log}");
    assert!(log.contains(&path_text) && log.contains("0644"), "{log}");
    lab.ping(&ip_new, 5);
    lab.ping(&ip_keep, 5);
    assert_eq!(
        handshake_of(&lab),
        Some(first),
        "a rejected reload touched the kept peer"
    );
    assert_eq!(peer_view(), peer_first, "wireguard-go saw a new handshake");
    lab.stop_pqgate();
}

/// `check` and `run` refuse a world-readable private key file, naming file and key.
#[test]
fn key_files_open_to_others_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("wg.key");
    write_mode(
        &key,
        "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n",
        0o604,
    );
    let config = dir.path().join("pqgate.toml");
    let text = format!(
        "[admin]\nenabled = false\n\n[[wireguard]]\nname = \"wgbad0\"\nprivate_key_file = \"{}\"\n",
        key.display()
    );
    write_mode(&config, &text, 0o600);
    let path = config.to_string_lossy().into_owned();
    for cmd in ["check", "run"] {
        let out = run(30, &[support::pqgate_bin(), cmd, "-c", &path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} accepted it: {stderr}");
        assert!(
            stderr.contains("wireguard[0].private_key_file"),
            "{cmd}: {stderr}"
        );
        assert!(
            stderr.contains(&key.display().to_string()),
            "{cmd}: {stderr}"
        );
        assert!(stderr.contains("0604"), "{cmd}: {stderr}");
    }
    // Group-readable is the service model, and check never prints a key.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let inline = dir.path().join("inline.toml");
    let psk = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
    let text = format!(
        "{text}\n[[wireguard.peer]]\npublic_key = \"{psk}\"\npreshared_key = \"{psk}\"\n\
         allowed_ips = [\"10.1.0.0/16\"]\n"
    );
    write_mode(&inline, &text.replace("wgbad0", "wgok0"), 0o600);
    let out = run(
        30,
        &[
            support::pqgate_bin(),
            "check",
            "-c",
            &inline.to_string_lossy(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[[wireguard]]") && stdout.contains("(redacted)"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches(psk).count(),
        1,
        "the PSK was printed:\n{stdout}"
    );
}
