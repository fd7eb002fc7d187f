//! Network-namespace plumbing for the tests that run real WireGuard peers: namespaces that are
//! deleted on drop, veth pairs, commands and threads inside a namespace, bounded pings, a
//! byte-exact TCP transfer, UDP junk, wireguard-go and `pqgate wg up` processes and their
//! teardown, and the counters of pqgate's exit summary. Root only: ask [`crate::require_root`]
//! first.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pqgate::net::netns::enter_thread;

use crate::sys::{ok, run};

/// A network namespace with its loopback up; deleted on drop, with every interface in it (so a
/// veth pair goes with either end). Derefs to its name.
pub struct Netns(String);

impl Netns {
    pub fn new(name: impl Into<String>) -> Self {
        // The guard exists before `ip netns add`, so a half-made namespace is deleted too.
        let ns = Netns(name.into());
        ok(&["ip", "netns", "add", &ns.0]);
        ok(&["ip", "-n", &ns.0, "link", "set", "dev", "lo", "up"]);
        ns
    }
}

impl Deref for Netns {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(10, &["ip", "netns", "del", &self.0]);
    }
}

/// Joins namespaces `a` and `b` by a veth pair, both ends up: `dev_a` in `a` gets `{net}.1/24`,
/// `dev_b` in `b` gets `{net}.2/24` (`net` is the first three octets).
pub fn veth(net: &str, (a, dev_a): (&str, &str), (b, dev_b): (&str, &str)) {
    ok(&[
        "ip", "link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b, "netns", b,
    ]);
    for (ns, dev, host) in [(a, dev_a, 1), (b, dev_b, 2)] {
        let addr = format!("{net}.{host}/24");
        ok(&["ip", "-n", ns, "address", "add", &addr, "dev", dev]);
        ok(&["ip", "-n", ns, "link", "set", "dev", dev, "up"]);
    }
}

/// `ip netns exec NS ARGS...` with stdin from /dev/null, for the caller to spawn.
pub fn command_in(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null());
    c
}

/// `ip netns exec NS ARGS...` run to its end, killed after `limit_s` seconds (see `sys::run`).
pub fn run_in(limit_s: u32, ns: &str, args: &[&str]) -> Output {
    run(limit_s, &exec_line(ns, args))
}

/// `ip netns exec NS ARGS...` that must succeed (see `sys::ok`); its stdout.
pub fn ok_in(ns: &str, args: &[&str]) -> String {
    ok(&exec_line(ns, args))
}

fn exec_line<'a>(ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    all
}

/// Runs `f` on a new thread that first enters namespace `ns`: the sockets it opens live there
/// (their file descriptors work from any thread).
pub fn spawn_in<T, F>(ns: &str, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = ns.to_owned();
    thread::spawn(move || {
        enter_thread(&ns).unwrap_or_else(|e| panic!("entering namespace {ns}: {e}"));
        f()
    })
}

/// One ping from `ns` to `to`, waiting at most a second for the reply.
pub fn ping_once(ns: &str, to: &str) -> bool {
    run_in(5, ns, &["ping", "-c", "1", "-W", "1", to])
        .status
        .success()
}

/// Pings `to` from `ns` until one reply, at most `tries` times; runs `check` after each miss (to
/// fail early when a process the tunnel needs has died). Whether a reply came.
pub fn try_ping(ns: &str, to: &str, tries: u32, check: impl Fn()) -> bool {
    for _ in 0..tries {
        if ping_once(ns, to) {
            return true;
        }
        check();
    }
    false
}

/// [`try_ping`] that must get a reply.
pub fn ping(ns: &str, to: &str, tries: u32, check: impl Fn()) {
    if !try_ping(ns, to, tries, check) {
        panic!("{ns}: no ping reply from {to} in {tries} tries");
    }
}

/// `len` xorshift32 bytes from `seed`: deterministic, and far from periodic, so a chunk lost,
/// repeated or reordered in transit cannot compare equal. `seed | 1` keeps the state non-zero.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The bounds of a [`tcp_transfer`]; connecting and the listener's start have 10 s each.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Each socket read and write (the sockets' timeouts).
    pub io: Duration,
    /// The whole receiving side, checked between reads; `None`: only `io` bounds it.
    pub total: Option<Duration>,
}

impl Bounds {
    /// Each read and write within `limit`.
    pub const fn each_io(limit: Duration) -> Self {
        Bounds {
            io: limit,
            total: None,
        }
    }

    /// Each read and write, and the whole transfer, within `limit`.
    pub const fn whole(limit: Duration) -> Self {
        Bounds {
            io: limit,
            total: Some(limit),
        }
    }
}

/// Sends `data` over TCP from a thread in `from_ns` to a listener on `addr` in `to_ns`, and
/// asserts it arrives exactly: the same length, then the same bytes.
pub fn tcp_transfer(from_ns: &str, to_ns: &str, addr: SocketAddr, data: &[u8], bounds: Bounds) {
    let started = Instant::now();
    let len = data.len();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = spawn_in(to_ns, move || -> Vec<u8> {
        let listener = TcpListener::bind(addr).expect("binding the listener");
        ready_tx.send(()).expect("signalling readiness");
        let (mut conn, _) = listener.accept().expect("accepting");
        conn.set_read_timeout(Some(bounds.io)).expect("timeout");
        let deadline = bounds.total.map(|t| Instant::now() + t);
        let mut got = Vec::with_capacity(len);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if let Some(deadline) = deadline {
                assert!(Instant::now() < deadline, "transfer to {addr} too slow");
            }
            match conn.read(&mut buf).expect("reading the transfer") {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener ready");
    let sent = data.to_vec();
    let client = spawn_in(from_ns, move || {
        let mut conn =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connecting");
        conn.set_write_timeout(Some(bounds.io)).expect("timeout");
        conn.write_all(&sent).expect("sending the transfer");
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    });
    client.join().expect("client thread");
    let got = server.join().expect("server thread");
    assert_eq!(got.len(), len, "transfer length to {addr}");
    assert!(got == data, "transfer to {addr} corrupted");
    eprintln!(
        "transfer of {len} bytes to {addr}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Sends each of `datagrams`, in order, to `to` from one UDP socket bound to `from` (any port)
/// in `ns`. Send errors are ignored: the receiver's drop counters are what tests check.
pub fn send_udp(ns: &str, from: &str, to: SocketAddr, datagrams: Vec<Vec<u8>>) {
    let from = from.to_owned();
    spawn_in(ns, move || {
        let sock = UdpSocket::bind((from.as_str(), 0)).expect("binding");
        for d in &datagrams {
            let _ = sock.send_to(d, to);
        }
    })
    .join()
    .expect("UDP sender thread");
}

/// The number after `name ` in pqgate's exit summary, 0 when absent.
pub fn counter(summary: &str, name: &str) -> u64 {
    summary
        .split(&format!("{name} "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Interface `ifname`'s UAPI socket: a host-wide path, not one per namespace.
pub fn uapi_socket(ifname: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"))
}

/// Removes the UAPI sockets a killed wireguard-go or pqgate left behind.
pub fn remove_sockets<'a>(ifnames: impl IntoIterator<Item = &'a str>) {
    for ifname in ifnames {
        let _ = std::fs::remove_file(uapi_socket(ifname));
    }
}

/// Waits up to `limit` for `ifname`'s UAPI socket, made by `child`; fails early when `child`
/// exits, and kills it when the time runs out.
pub fn wait_for_socket(ifname: &str, child: &mut Child, limit: Duration) {
    let sock = uapi_socket(ifname);
    let deadline = Instant::now() + limit;
    while !sock.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{ifname}: process exited before its socket appeared: {status}");
        }
        if Instant::now() >= deadline {
            kill_all([child]);
            panic!("{ifname}: no {sock:?} in {limit:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Starts wireguard-go (in the foreground, output discarded) on a new interface `ifname` in
/// `ns` and waits for its UAPI socket; the caller configures it.
pub fn spawn_wireguard_go(ns: &str, ifname: &str) -> Child {
    let mut child = command_in(ns, &["wireguard-go", "-f", ifname])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning wireguard-go");
    wait_for_socket(ifname, &mut child, Duration::from_secs(10));
    child
}

/// A configured wireguard-go peer: [`spawn_wireguard_go`] on `ifname` in `ns`, `wg setconf`
/// of `conf` (written to `dir/IFNAME.conf`), the addresses in `addrs` (an IPv6 one without
/// duplicate address detection), and the link up.
pub fn wireguard_go_peer(ns: &str, ifname: &str, dir: &Path, conf: &str, addrs: &[&str]) -> Child {
    let child = spawn_wireguard_go(ns, ifname);
    let path = dir.join(format!("{ifname}.conf"));
    std::fs::write(&path, conf).expect("writing the wireguard-go config");
    ok_in(ns, &["wg", "setconf", ifname, &path.to_string_lossy()]);
    for addr in addrs {
        let mut line = vec!["ip", "-n", ns];
        if addr.contains(':') {
            line.push("-6");
        }
        line.extend(["address", "add", addr, "dev", ifname]);
        if addr.contains(':') {
            line.push("nodad");
        }
        ok(&line);
    }
    ok(&["ip", "-n", ns, "link", "set", "dev", ifname, "up"]);
    child
}

/// `pqgate wg up [extra] DIR/IFNAME.conf` in `ns`, the file written from `conf` (its name names
/// the interface); stdout and stderr piped. For the caller to spawn.
pub fn wg_up(ns: &str, dir: &Path, ifname: &str, conf: &str, extra: &[&str]) -> Command {
    let path = dir.join(format!("{ifname}.conf"));
    std::fs::write(&path, conf).expect("writing a config");
    let mut c = command_in(ns, &[crate::pqgate_bin(), "wg", "up"]);
    c.args(extra)
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Stops `child` with SIGTERM (SIGKILL when it has not exited within `limit`); its exit status
/// and whatever it piped.
pub fn terminate(mut child: Child, limit: Duration) -> Output {
    ok(&["kill", "-TERM", &child.id().to_string()]);
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("child output")
}

/// [`terminate`] within 10 s that must end in a clean exit; the child's stderr (`what` names
/// the child in the failure message).
pub fn stop_cleanly(child: Child, what: &str) -> String {
    let out = terminate(child, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {}\n{stderr}", out.status);
    stderr
}

/// SIGKILLs and reaps every child; never panics (for Drop).
pub fn kill_all<'a>(children: impl IntoIterator<Item = &'a mut Child>) {
    for child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// SIGTERM to every child, then [`kill_all`] once each has exited or `grace` has passed: a
/// pqgate given the time removes its interface and UAPI socket itself. Never panics (for Drop).
pub fn terminate_all(mut children: Vec<Child>, grace: Duration) {
    for child in &children {
        let _ = run(5, &["kill", "-TERM", &child.id().to_string()]);
    }
    let deadline = Instant::now() + grace;
    for child in &mut children {
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }
    kill_all(&mut children);
}

/// `GET path` from the admin endpoint at `addr` inside namespace `ns`: the whole HTTP answer,
/// `None` when it cannot be reached or read (bounded: 2 s to connect, 5 s to read).
pub fn http_get(ns: &str, addr: SocketAddr, path: &str) -> Option<String> {
    let path = path.to_owned();
    spawn_in(ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text)
    })
    .join()
    .ok()
    .flatten()
}
